"""One process, or two processes holding half a model each, the same numbers: FSDP2 on a CPU (chapter 11b).

    python -m mini_unlearn.distributed.sharded_check                 # both runs of every family, compared
    python -m mini_unlearn.distributed.sharded_check run OUT FAMILY  # one run, on this process
    accelerate launch --config_file CONFIG -m mini_unlearn.distributed.sharded_check run OUT FAMILY

``run`` is an ordinary script: launched with the package's FSDP2 config (:mod:`mini_unlearn.models.sharding`)
``unlearn`` shards its copy of the model and every frozen model it reads. From the same tiny model of
``FAMILY`` it takes two steps of GA_Diff (token means), NPO on the vision side against the sharded initial model (row
means, the embeddings frozen), RMU against the sharded input (hidden states) and MMUnlearner (its saliency mask applied to
each process's shard), MIP-Editor's RMisU along its IGI/IFI paths (found on a sharded copy), stranger matching
(its twins' rows split with the forget rows, the frozen input sharded), MANU
(its statistics on a sharded copy, its pruning on an ordinary one), and MANU's statistics on a sharded
model (the neuron hooks must see whole activations). Rank 0 writes ``OUT/tensors.safetensors`` and ``OUT/figures.json``: the final weights,
the logged losses, the statistics, the weights each process held, whether the input stayed as it was,
and whether the saved result loads back as an ordinary checkpoint.

The CPU launch uses the committed config with ``use_cpu: true`` (:func:`cpu_config`): accelerate's
``--cpu`` flag would fall back to one process for an FSDP config.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
import yaml

from . import is_main, is_sharded, local, world_size
from .runs import load_run, run_command, save_run, statistic_tensors
from .. import validate
from ..bench import make_benchmark
from ..methods import unlearn
from ..methods.base import get, sharded_copies
from ..methods.manu import manu_statistics
from ..models import VLM, load_vlm, sharding

MODULE = "mini_unlearn.distributed.sharded_check"
FAMILIES = ("llava", "qwen2_vl")     # a CLIP tower + Llama (flat pixels), a ViT + Qwen2 (packed patches, mrope)
RATIO = 0.25
UNLEARNING = {"ga_diff": dict(steps=2), "npo": dict(steps=2, reference="initial", batch_size=3, train="vision"), "rmu": dict(steps=2),
              "mmunlearner": dict(forget_steps=2, retain_per_forget=1), "mip_editor": dict(steps=2, k=2, m=2),
              "stranger": dict(steps=2, lr=3e-5)}
# stranger matching at GA_Diff's learning rate: AdamW scales a rounding-sized gradient difference up to a
# step of order lr, so the tests' weight tolerance (1e-6) means the same for both (measured at its own 3e-4:
# the largest gap 8.6e-6, ten times the 8.6e-7 at 3e-5, in the embedding rows; the losses agree at both)

__all__ = ["FAMILIES", "MODULE", "UNLEARNING", "compare", "cpu_config", "held", "launch", "load", "run"]


def held(model: torch.nn.Module) -> dict[str, int]:
    """How many weights this process holds of ``model``: of its sharded parameters, and of its whole ones."""
    sharded = sum(local(p).numel() for p in model.parameters() if is_sharded(p))
    whole = sum(p.numel() for p in model.parameters() if not is_sharded(p))
    return {"sharded": sharded, "whole": whole}


def run(out: str | Path, family: str) -> None:
    """One run on this process (and, under a launcher, on every other): rank 0 writes ``out``."""
    out = Path(out)
    torch.set_num_threads(1)
    bench = make_benchmark(n_profiles=4, seed=0, n_utility=1)
    vlm = VLM.tiny(family, bench)
    before = {name: p.detach().clone() for name, p in vlm.model.named_parameters()}
    tensors, figures = {}, {"processes": world_size(), "sharded": sharding.requested(), "family": family}

    for method, options in UNLEARNING.items():
        result = unlearn(vlm, bench, method, RATIO, progress=False, **{"batch_size": 4, **options})
        figures[f"{method}_losses"] = result.log.losses
        tensors.update({f"{method}/{name}": p.detach().clone() for name, p in result.vlm.model.named_parameters()})
        if method == "mmunlearner":            # the mask (which weights may move) and those weights before
            for name, mask in result.log.details["mask"].masks.items():
                tensors[f"mask/{name}"] = mask.to(torch.uint8)
                tensors[f"input/{name}"] = before[name]
        if method == "mip_editor":             # the IGI/IFI path neurons, found on a sharded copy
            for name, neurons in result.log.details["selection"].items():
                tensors[f"paths/{name}"] = neurons
        if method == "ga_diff" and is_main():  # the result is an ordinary model: saved and loaded back
            folder = Path(tempfile.mkdtemp()) / "ga_diff"
            result.vlm.save_pretrained(folder)
            loaded = load_vlm(folder)
            figures["loads_back"] = all(torch.equal(p, dict(result.vlm.model.named_parameters())[name])
                                        for name, p in loaded.model.named_parameters())
    # a method that trains nothing: its statistics pass on a sharded copy, its pruning on an ordinary one
    pruned = unlearn(vlm, bench, "manu", RATIO, progress=False, alpha=0.05)
    figures["pruned_sharded"] = sharding.is_sharded(pruned.vlm.model)
    tensors.update({f"pruned/{name}": p.detach().clone() for name, p in pruned.vlm.model.named_parameters()})
    figures["input_unchanged"] = all(torch.equal(before[name], p) for name, p in vlm.model.named_parameters())
    # what unlearn edits and reads: RMU's frozen input, NPO's reference (here the initial model itself)
    edited, frozen, context = sharded_copies(vlm, get("rmu"), {"reference": vlm}) if sharding.requested() \
        else (vlm, vlm, {"reference": vlm})
    figures["sharded_models"] = {"copy": sharding.is_sharded(edited.model), "input": sharding.is_sharded(vlm.model),
                                 "frozen input": sharding.is_sharded(frozen.model),
                                 "reference": sharding.is_sharded(context["reference"].model)}

    with sharding.for_pass(vlm) as statistics_model:       # under the launcher: a sharded copy
        figures["held"] = held(statistics_model.model)
        tensors.update(statistic_tensors(manu_statistics(statistics_model, bench, RATIO, batch_size=2)))
    save_run(out, tensors, figures)


def cpu_config(folder: str | Path) -> Path:
    """The package's FSDP2 accelerate config (:data:`~mini_unlearn.models.sharding.CONFIG`) with
    ``use_cpu: true``, written into ``folder``: the same settings, on CPU processes (gloo)."""
    settings = yaml.safe_load(sharding.CONFIG.read_text())
    settings["use_cpu"] = True
    path = Path(folder) / "fsdp2_cpu.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def launch(out: str | Path, family: str, processes: int, timeout: float = 600) -> None:
    """``run`` into ``out`` on one process (no launcher), or sharded on ``processes`` CPU processes
    (``accelerate launch`` with the package's config)."""
    validate.positive_int(processes, "processes")
    out = Path(out).resolve()
    if processes == 1:
        command = [sys.executable, "-m", MODULE, "run", str(out), family]
    else:
        out.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cpu_config(out)),
                   "--num_processes", str(processes), "--main_process_port", "0", "-m", MODULE, "run", str(out), family]
    run_command(command, processes, timeout)


def load(out: str | Path) -> tuple[dict, dict]:
    """The tensors and the figures one run wrote into ``out``."""
    return load_run(out, MODULE)


def compare(one: str | Path, two: str | Path):
    """Per stage, the largest gap between the runs: of a weight after unlearning (absolute: the weights
    are of order 0.01–1, and a bias that starts at 0 has no scale of its own), of MANU's statistics
    (relative to each tensor's largest value), of a logged loss (relative, absolute near 0)."""
    import pandas as pd
    (a, first), (b, second) = load(one), load(two)
    rows = {}
    for name, t in a.items():
        stage = name.split("/")[0]
        if stage in ("mask", "input", "paths"):
            continue
        x, y = t.double(), b[name].double()
        scale = x.abs().max().clamp(min=1e-30) if stage == "manu" else 1.0
        rows[stage] = max(rows.get(stage, 0.0), float((x - y).abs().max() / scale))
    pairs = [(p[k], q[k]) for method in UNLEARNING for p, q in zip(first[f"{method}_losses"], second[f"{method}_losses"])
             for k in p if k != "loss"]
    rows["logged losses"] = max(abs(p - q) / max(abs(p), 0.1) for p, q in pairs)
    return pd.Series(rows, name="largest gap").sort_index(), (first, second)


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and len(argv) == 3:
        run(argv[1], argv[2])
        return 0
    if argv:
        print(f"usage: python -m {MODULE} [run OUT FAMILY]; got {argv}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp())
    for family in FAMILIES:
        launch(folder / family / "one", family, 1)
        launch(folder / family / "two", family, 2)
        gaps, _ = compare(folder / family / "one", folder / family / "two")
        print(family, gaps.to_string(float_format=lambda v: f"{v:.1e}"), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
