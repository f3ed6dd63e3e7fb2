"""Every localiser of the package against a known answer: the planted model (prints the tables).

    .venv/bin/python benchmarks/localisation.py               # writes mini_unlearn/data/results/localisation/localisation.csv
    .venv/bin/python benchmarks/localisation.py --no-write    # print only

The planted model (:mod:`mini_unlearn.models.planting`, shipped) keeps its two forget people in a few
planted neurons per MLP layer: 8 per vision layer, 16 per language layer (1/33 of each tower). This
script asks every localiser where those people live and scores the answer against the planted neurons,
per tower:

* MANU (chapter 05): the paper's and the released code's scores, and each of the four importance
  functions alone (the paper's, language tower only: the paper scores vision neurons by σ alone; the
  released code's, both towers), each at MANU's own budget (the top α = 2 % of each tower) and at the
  planted share (α = 1/33, where a perfect localiser finds every planted neuron and nothing else);
  the released code's rows as that code computes them: statistics per batch of 4 samples, averaged,
  and ``int(α·N)`` neurons selected with every tie at the threshold (so a row may find more);
* MMUnlearner's saliency mask (chapter 06), both groups, at its default threshold: a mask of weights,
  so its precision and recall count MLP weights (a planted neuron owns its input rows and its
  output column);
* MIP-Editor's neuron paths (chapter 07): IGI (language) and IFI (vision), the paper's path score and
  the released code's attribution, and point-wise attribution instead of paths, at k = 5 per layer
  and sample, united over the forget samples;
* random neurons, as many per layer as MANU's 2 %, and the planted neurons themselves (the oracle).

``random precision`` is what a random choice of that size expects: the planted share of the tower.
Then each answer is *edited*: the neurons found switched off (the weights found zeroed, for the
mask), on a copy, and the forget and retain people's cloze questions scored by exact match (canonical
portraits). The oracle row shows what a perfect localiser achieves.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

import mini_unlearn as mu
from mini_unlearn.methods.manu import BATCH_SIZES, manu_statistics
from mini_unlearn.methods.mip_editor import MIPEditorConfig, localise, selection as path_selection
from mini_unlearn.neurons.importance import METRICS, SELECTIONS, paper_importance, relative_score, released_importance
from mini_unlearn.release import COURSE_RATIO, course_benchmark

OUT = Path(__file__).resolve().parents[1] / "mini_unlearn" / "data" / "results" / "localisation"
MANU_ALPHA = 0.02
COLUMNS = ["forget/image+text", "forget/text", "retain/image+text", "retain/text"]


def single_function_scores(stats, variant: str, metric: str) -> dict[str, torch.Tensor]:
    """Per site: one importance function's forget/retain ratio (the paper's for language sites only)."""
    scores = {}
    for name, forget_multi in stats["forget"]["image+text"].items():
        tower = forget_multi.site.tower
        if variant == "paper":
            if tower == "vision":
                continue
            forget = paper_importance(forget_multi, stats["forget"]["text"][name])[metric]
            retain = paper_importance(stats["retain"]["image+text"][name], stats["retain"]["text"][name])[metric]
            scores[name] = relative_score(forget, retain)
        else:
            view = "image+text" if tower == "vision" else "text"
            forget = released_importance(stats["forget"][view][name])[metric]
            retain = released_importance(stats["retain"][view][name])[metric]
            scores[name] = forget / (retain + 1e-5) - 1
    return scores


def neuron_localisers(vlm, bench, truth, towers) -> dict[str, dict[str, torch.Tensor]]:
    """Name → selection (site → indices) for every neuron localiser.

    Each MANU variant is run as its method runs it: statistics in batches of ``BATCH_SIZES[variant]``
    (the paper's sums over samples do not depend on it; the released code's per-batch averages do, and
    its scripts read 4 samples a batch), and the top α selected by the variant's rule: ``round(α·N)``
    (``select_top``) for the paper's, ``int(α·N)`` and every tie at the threshold (``select_released``)
    for the released code's."""
    found = {"planted (oracle)": truth}
    share = sum(len(v) for v in truth.values()) / sum(s.width for s in mu.models.find_mlp_neurons(vlm.model))
    for variant in ("paper", "released"):
        stats = manu_statistics(vlm, bench, COURSE_RATIO, batch_size=BATCH_SIZES[variant])
        select = SELECTIONS[variant]
        scores = mu.neurons.neuron_scores(stats, variant)
        found[f"MANU {variant}"] = select(scores, MANU_ALPHA, "per_tower", towers)
        found[f"MANU {variant} @ planted share"] = select(scores, share, "per_tower", towers)
        for metric in METRICS:
            single = single_function_scores(stats, variant, metric)
            found[f"MANU {variant}: {metric} only"] = select(single, MANU_ALPHA, "per_tower",
                                                             {n: towers[n] for n in single})
    for variant, localise_as in (("paper", "path"), ("released", "path"), ("paper", "point")):
        name = {"path": f"MIP-Editor paths ({variant})", "point": "point-wise attribution"}[localise_as]
        found[name] = path_selection(localise(vlm, bench, COURSE_RATIO,
                                              MIPEditorConfig(localise=localise_as, variant=variant)))
    manu_counts = {n: len(v) for n, v in found["MANU paper"].items()}
    found["random (MANU's 2 %)"] = mu.neurons.random_selection(vlm, manu_counts, seed=0)
    return found


def edited(vlm, probe, selection=None, mask=None) -> dict[str, float]:
    """Exact match after switching off ``selection`` (or zeroing the ``mask``'s weights) on a copy."""
    copy = vlm.copy()
    if selection is not None:
        mu.neurons.prune_neurons(copy.model, selection)
    if mask is not None:
        parameters = dict(copy.model.named_parameters())
        with torch.no_grad():
            for name, salient in mask.items():
                parameters[name].masked_fill_(salient.to(parameters[name].device), 0.0)
    return probe(copy.model)


def localisation_table(vlm, bench, *, progress=print) -> pd.DataFrame:
    """One row per localiser and tower: found, planted, hits, precision, recall, random precision, and
    the exact match of the forget and retain people after the edit."""
    truth = mu.models.planted_neurons(vlm)
    towers = mu.neurons.site_towers(vlm.model)
    probe = mu.methods.split_monitor(vlm, bench, COURSE_RATIO, retain_people=None)
    rows = []
    before = probe(vlm.model)
    rows.append({"localiser": "none (the planted model)", "tower": "-", **before})
    started = time.perf_counter()
    found = neuron_localisers(vlm, bench, truth, towers)
    progress(f"neuron localisers: {time.perf_counter() - started:.0f} s")
    for name, selection in found.items():
        after = edited(vlm, probe, selection=selection)
        for _, row in mu.neurons.neuron_precision_recall(vlm, selection, truth).iterrows():
            rows.append({"localiser": name, "unit": "neurons", **row.to_dict(), **after})
    started = time.perf_counter()
    mask = mu.neurons.compute_saliency(vlm, bench, COURSE_RATIO, "both")
    progress(f"saliency mask: {time.perf_counter() - started:.0f} s")
    after = edited(vlm, probe, mask=mask.masks)
    owners = mu.neurons.mlp_parameter_towers(vlm)
    for _, row in mu.neurons.weight_precision_recall(vlm, mask.masks, truth, owners).iterrows():
        rows.append({"localiser": "MMUnlearner saliency mask", "unit": "MLP weights", **row.to_dict(), **after})
    table = pd.DataFrame(rows)
    for column in ("precision", "recall", "random precision", *COLUMNS):
        table[column] = table[column].astype(float).round(4)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the tables; write nothing")
    args = parser.parse_args()
    mu.seed_everything(0)
    bench = course_benchmark()
    vlm = mu.models.planted(bench)
    started = time.perf_counter()
    table = localisation_table(vlm, bench)
    shown = table.drop(columns=["unit"]).fillna("")
    with pd.option_context("display.width", 250, "display.max_rows", 200):
        print(shown[["localiser", "tower", "found", "planted", "hits", "precision", "recall", "random precision"]]
              .to_string(index=False))
        print()
        print(table.drop_duplicates("localiser")[["localiser", *COLUMNS]].to_string(index=False))
    print(f"\n{time.perf_counter() - started:.0f} s on {mu.models.cache.cpu_name()}")
    if not args.no_write:
        OUT.mkdir(parents=True, exist_ok=True)
        table.to_csv(OUT / "localisation.csv", index=False)
        print(f"wrote {OUT / 'localisation.csv'}")


if __name__ == "__main__":
    main()
