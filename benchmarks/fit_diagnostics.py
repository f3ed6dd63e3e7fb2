"""Why localisation fails on the course model, measured: fit, forget gradients, masks, concentration, paths.

    flock /tmp/mu-cpu.lock .venv/bin/python benchmarks/fit_diagnostics.py --checkpoints /tmp/fit_ckpt
    flock /tmp/mu-cpu.lock .venv/bin/python benchmarks/fit_diagnostics.py --skip-fit --deep   # paths, + 4 layers

The chapters assert that MANU, MMUnlearner and MIP-Editor find little on the course model because it
fits its people so tightly. This script measures it, along the course recipe and against the planted
model (:func:`mini_unlearn.models.planted`, where the forget people live in known neurons):

1. **checkpoints**: the course vanilla recipe (``RECIPES["tiny"]``: 3,000 text-only reading steps,
   then 6,000 main steps) retrained from seed 0 and stopped after 6,000 steps. ``stop_after`` keeps
   the full run's batches and learning-rate schedule, so step ``n`` here is step ``n`` of the shipped
   run up to floating point: the shipped model (step 9,000) was trained on another CPU, and over
   thousands of steps the sums' rounding makes the trajectories drift apart (the script prints the
   held-out exact match of both runs where the shipped run was probed). The checkpoints go to ``--checkpoints`` (not committed); a second call with the same folder
   skips the training.
2. **fit** (``fit.csv``, one row per model): forget / retain teacher-forced exact match on held-out
   augmentations (:class:`mini_unlearn.models.Monitor`) and answer loss on their image+text pairs;
   the RMS over each tower's MLP weights of the forget set's (batch-mean) gradient and of the
   preserve sets' (MMUnlearner's ``F_f`` and ``F_p``, :func:`mini_unlearn.neurons.compute_saliency`,
   preset ``both``); the saliency mask's share of each group's weights at the default threshold 1
   (what chapter 06 quotes); MANU's concentration: the share of each tower's (clipped) score in its
   top α = 2 % of neurons (:func:`mini_unlearn.neurons.top_share`), paper and released variants; on
   the planted model also the share on the planted neurons (:func:`mini_unlearn.neurons.share_on`)
   and the planted neurons' share of the tower (what a score spread evenly would put on them).
3. **paths** (``paths_overlap.csv``): MIP-Editor's IGI (language) and IFI (vision) paths of the
   forget people's pairs and of two retain people's (as chapter 07), and their overlap per layer
   (:meth:`mini_unlearn.neurons.NeuronPaths.overlap`), on the course model and the planted model
   (2 layers per tower); with ``--deep`` also on the 4-layer ``tiny_deep`` vanilla model (trained and
   cached on first use, about 25 minutes on 2 CPU cores).

Shares are rounded to 4 decimals; losses and gradient RMS values (down to 1e-6) to 4 significant digits.

Measured on 2 CPU cores (AMD EPYC), wall clock: the training (6,000 steps, 6 checkpoints) took
8.8 min (18 CPU-min); the fit of the 8 models 0.9 min; the paths of 2 models 0.1 min.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import mini_unlearn as mu
from mini_unlearn.methods.manu import manu_statistics
from mini_unlearn.methods.mip_editor import MIPEditorConfig
from mini_unlearn.models import cache as caching
from mini_unlearn.models import build_model, build_processor, build_tokenizer, get_preset
from mini_unlearn.models.train import answer_loss, train_recipe
from mini_unlearn.models.train_data import one_pass_batches, training_examples
from mini_unlearn.release import COURSE_RATIO, course_benchmark

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "mini_unlearn" / "data" / "results" / "localisation"
STEPS = (3000, 3600, 4200, 4800, 5400, 6000)
ALPHA = 0.02
TOWERS = ("vision", "language")
MODALITIES = ("image+text", "text")
VARIANTS = ("paper", "released")


# ---------------------------------------------------------------------------------------------------
# 1. Checkpoints along the recipe

def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step-{step:05d}"


def checkpoint_saver(vlm, folder: str | Path, steps, card: dict | None = None):
    """An ``after_step`` callback for :func:`~mini_unlearn.models.train.train_recipe`: saves ``vlm``
    to ``folder/step-NNNNN`` after each of ``steps`` (its card: ``card`` plus the step)."""
    wanted = set(steps)

    def save(step: int) -> None:
        if step in wanted:
            vlm.card = {**(card or {}), "step": step}
            vlm.save_pretrained(checkpoint_path(folder, step), overwrite=True)
    return save


def train_checkpoints(bench, folder: str | Path, steps=STEPS, *, preset: str = "tiny", seed: int = 0,
                      recipe=None, people: list[str] | None = None, progress: bool = False):
    """The vanilla recipe from ``seed``, stopped after ``max(steps)`` steps, saved at each of ``steps``.

    Built as :func:`mini_unlearn.models.vanilla` builds it (same tokenizer, initial weights, examples
    and recipe), so step ``n`` is step ``n`` of the full run. Returns the losses of every step."""
    steps = sorted(set(steps))
    if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
        raise ValueError(f"steps must be positive integers; got {steps!r}")
    preset = get_preset(preset)
    recipe = recipe if recipe is not None else caching.recipe_for(preset)
    people = people if people is not None else caching.vanilla_people(bench)
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    vlm = mu.models.VLM(build_model(preset, tokenizer, seed=seed), build_processor(tokenizer, preset))
    card = {"kind": "vanilla checkpoint", "preset": preset.name, "benchmark": bench.name, "seed": seed,
            "recipe": recipe.to_dict()}
    reading, log = train_recipe(vlm, training_examples(bench, people), recipe, seed=seed, stop_after=steps[-1],
                                after_step=checkpoint_saver(vlm, folder, steps, card), progress=progress)
    return (reading.losses if reading is not None else []) + log.losses


def shipped_probes(card: dict) -> dict[int, dict[str, float]]:
    """The shipped run's monitor readings by step, counted through both phases (its card's logs)."""
    reading = card.get("reading_phase", {"steps": 0, "probes": []})
    probes = {p["step"]: p["accuracy"] for p in reading["probes"]}
    probes.update({reading["steps"] + p["step"]: p["accuracy"] for p in card["training"]["probes"]})
    return probes


def trajectory_check(bench, folder: str | Path, steps, card: dict) -> pd.DataFrame:
    """At each checkpoint the shipped run was probed at: the shipped run's held-out exact match
    (everyone, mean over the tasks, per modality) and the checkpoint's, read by the same monitor.
    The batches and learning rates are the shipped run's; the floating-point sums are this CPU's, so
    the two trajectories drift apart over thousands of steps."""
    probes, rows = shipped_probes(card), []
    for step in sorted(set(steps) & set(probes)):
        vlm = caching.load_cached(checkpoint_path(folder, step))
        here = mu.models.Monitor(vlm, bench, caching.vanilla_people(bench))(vlm.model)
        for modality in MODALITIES:
            keys = [key for key in here if key.endswith("/" + modality)]
            rows.append({"step": step, "modality": modality,
                         "shipped run": round(sum(probes[step][k] for k in keys) / len(keys), 3),
                         "this run": round(sum(here[k] for k in keys) / len(keys), 3)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# 2. Fit, gradients, masks, concentration

def _share(x: float) -> float:
    return round(float(x), 4) if math.isfinite(x) else math.nan


def _sig(x: float) -> float:
    return float(f"{x:.4g}") if math.isfinite(x) else math.nan


def mean_loss(vlm, examples) -> float:
    """The mean answer cross-entropy over ``examples`` (canonical portraits, batches of 16)."""
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in one_pass_batches(vlm.processor, examples, 16):
            rows = len(batch["input_ids"])
            total += float(answer_loss(vlm.model, batch)) * rows
            n += rows
    return total / n


def fit_row(vlm, bench, ratio: float = COURSE_RATIO, *, truth: dict | None = None, alpha: float = ALPHA,
            manu_batch_size: int = 32) -> dict:
    """Every measurement of one model (see the module docstring); ``truth``: its planted neurons, if any."""
    model = vlm.model
    model.eval()
    row = {}
    people = {"forget": bench.split("forget", ratio).ids, "retain": bench.split("retain", ratio).ids}
    for split, ids in people.items():
        scores = mu.models.Monitor(vlm, bench, ids)(model)
        for modality in MODALITIES:
            values = [v for key, v in scores.items() if key.endswith("/" + modality)]
            row[f"em_{split}_{'image' if modality == 'image+text' else 'text'}"] = _share(sum(values) / len(values))
    for split, ids in people.items():
        pairs = [e for e in training_examples(bench, ids, practice=False) if e.modality == "image+text"]
        row[f"loss_{split}_image"] = _sig(mean_loss(vlm, pairs))

    mask = mu.neurons.compute_saliency(vlm, bench, ratio, "both")
    mlp = mu.neurons.mlp_parameter_towers(model)
    for tower in TOWERS:
        names = [name for name, t in mlp.items() if t == tower]
        size = sum(mask.forget[name].numel() for name in names)
        for which, saliency in (("forget", mask.forget), ("preserve", mask.preserve)):
            row[f"grad_rms_{which}_{tower}"] = _sig(math.sqrt(sum(float(saliency[n].double().sum())
                                                                  for n in names) / size))
    summary = mask.summary()
    by_group = summary.groupby("group")[["salient", "numel"]].sum()
    for group in TOWERS:
        row[f"mask_{group}"] = _share(by_group.loc[group, "salient"] / by_group.loc[group, "numel"])
    row["mask_both"] = _share(mask.kept / mask.total)

    towers = mu.neurons.site_towers(model)
    stats = manu_statistics(vlm, bench, ratio, batch_size=manu_batch_size)
    row["alpha"] = alpha
    for variant in VARIANTS:
        scores = mu.neurons.neuron_scores(stats, variant)
        for tower, share in mu.neurons.top_share(scores, alpha, towers).items():
            row[f"top_share_{variant}_{tower}"] = _share(share)
        on = mu.neurons.share_on(scores, truth, towers) if truth is not None else {}
        for tower in TOWERS:
            row[f"on_planted_{variant}_{tower}"] = _share(on.get(tower, math.nan))
    sites = {site.name: site for site in mu.models.find_mlp_neurons(model)}
    for tower in TOWERS:
        width = sum(site.width for site in sites.values() if site.tower == tower)
        planted = sum(len(index) for name, index in (truth or {}).items() if sites[name].tower == tower)
        row[f"planted_frac_{tower}"] = _share(planted / width) if truth is not None else math.nan
    return row


# ---------------------------------------------------------------------------------------------------
# 3. Forget paths vs retain paths

def path_rows(vlm, bench, ratio: float = COURSE_RATIO, *, truth: dict | None = None, retain_people: int = 2,
              config: MIPEditorConfig | None = None) -> list[dict]:
    """Per branch and layer: the forget people's paths, the first ``retain_people`` retain people's
    (chapter 07's comparison), how many they share, their Jaccard index, and on a planted model how
    many of each are planted neurons."""
    config = config or MIPEditorConfig()
    pairs = {"forget": training_examples(bench, bench.split("forget", ratio).ids, practice=False),
             "retain": training_examples(bench, bench.split("retain", ratio).ids[:retain_people], practice=False)}
    rows = []
    for branch, modality in (("igi", "text"), ("ifi", "image+text")):
        found = {split: mu.neurons.find_paths(vlm, [e for e in examples if e.modality == modality], branch,
                                              k=config.k, m=config.m, variant=config.variant)
                 for split, examples in pairs.items()}
        table = found["forget"].overlap(found["retain"])
        for site, (_, r) in zip(found["forget"].sites, table.iterrows()):
            planted = set(torch.as_tensor(truth[site.name]).tolist()) if truth is not None else None
            on = {split: len(planted & set(paths.union[site.name].tolist())) if planted is not None else math.nan
                  for split, paths in found.items()}
            rows.append({"branch": branch, "tower": site.tower, "layers": len(found["forget"].sites),
                         "layer": site.layer, "width": site.width, "forget": int(r["here"]),
                         "retain": int(r["there"]), "shared": int(r["shared"]), "jaccard": _share(r["jaccard"]),
                         "planted": len(planted) if planted is not None else math.nan,
                         "planted_in_forget": on["forget"], "planted_in_retain": on["retain"]})
    return rows


# ---------------------------------------------------------------------------------------------------

def show(frame: pd.DataFrame, title: str) -> None:
    print(f"\n{title}")
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_rows", 200):
        print(frame.to_string())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--checkpoints", type=Path, default=Path("/tmp/fit_ckpt"),
                        help="folder of the step checkpoints: read if there, else trained and written (default: %(default)s)")
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEPS),
                        help="steps of the course recipe to save and measure (default: %(default)s; the shipped model is 9000)")
    parser.add_argument("--out", type=Path, default=OUT, help="where fit.csv and paths_overlap.csv go (default: %(default)s)")
    parser.add_argument("--skip-fit", action="store_true", help="the paths only (no checkpoints; fit.csv is not written)")
    parser.add_argument("--skip-paths", action="store_true", help="the fit only (paths_overlap.csv is not written)")
    parser.add_argument("--deep", action="store_true",
                        help="add the 4-layer tiny_deep vanilla model's paths (trained on first use: ~25 min on 2 CPU cores)")
    args = parser.parse_args(argv)

    bench = course_benchmark()
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    if not args.skip_fit:
        started = time.perf_counter()
        missing = [s for s in args.steps if not (checkpoint_path(args.checkpoints, s) / "model.safetensors").is_file()]
        if missing:
            print(f"training the course recipe to step {max(args.steps)}, saving at {sorted(args.steps)} "
                  f"in {args.checkpoints} ...", flush=True)
            train_checkpoints(bench, args.checkpoints, args.steps)
            print(f"trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
            timings["train"] = time.perf_counter() - started
        check = trajectory_check(bench, args.checkpoints, args.steps, mu.models.vanilla(bench).card)
        if len(check):
            show(check.set_index(["step", "modality"]), "held-out exact match (everyone), shipped run vs these "
                 "checkpoints, where the shipped run was probed:")

        started = time.perf_counter()
        recipe = caching.RECIPES["tiny"]
        models = {f"step {s}": (s, lambda s=s: caching.load_cached(checkpoint_path(args.checkpoints, s)))
                  for s in sorted(args.steps)}
        models["vanilla"] = (recipe.reading.reading_steps + recipe.steps, lambda: mu.models.vanilla(bench))
        models["planted"] = (math.nan, lambda: mu.models.planted(bench))
        rows = []
        for name, (steps, load) in models.items():
            mu.seed_everything(0)
            vlm = load()
            truth = mu.models.planted_neurons(vlm) if name == "planted" else None
            rows.append({"model": name, "steps": steps, **fit_row(vlm, bench, truth=truth)})
            print(f"  {name}: measured ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        fit = pd.DataFrame(rows)
        fit["steps"] = fit["steps"].astype("Int64")          # the planted model has none
        timings["fit"] = time.perf_counter() - started
        fit.to_csv(args.out / "fit.csv", index=False)
        show(fit.set_index("model").T, f"fit.csv (written to {args.out / 'fit.csv'}): one column per model")

    if not args.skip_paths:
        started = time.perf_counter()
        models = [("vanilla", lambda: mu.models.vanilla(bench)), ("planted", lambda: mu.models.planted(bench))]
        if args.deep:
            models.append(("vanilla", lambda: mu.models.vanilla(bench, preset="tiny_deep")))
        rows = []
        for name, load in models:
            vlm = load()
            truth = mu.models.planted_neurons(vlm) if name == "planted" else None
            mu.seed_everything(0)
            rows += [{"model": name, **row} for row in path_rows(vlm, bench, truth=truth)]
        paths = pd.DataFrame(rows)
        timings["paths"] = time.perf_counter() - started
        paths.to_csv(args.out / "paths_overlap.csv", index=False)
        show(paths.set_index("model"), f"paths_overlap.csv (written to {args.out / 'paths_overlap.csv'})")
    print("\nCPU time: " + ", ".join(f"{part} {seconds / 60:.1f} min" for part, seconds in timings.items()))


if __name__ == "__main__":
    main()
