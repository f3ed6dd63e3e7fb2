"""One process or two, the same numbers: everything data parallelism touches, on a CPU (chapter 11b).

    python -m mini_unlearn.distributed.check                      # both runs, then the comparison
    python -m mini_unlearn.distributed.check run OUT              # one run, on one process
    torchrun --nproc_per_node 2 -m mini_unlearn.distributed.check run OUT   # the same run on two (gloo)

``run`` is an ordinary script that uses the package; under a launcher the package notices and goes
data-parallel (:mod:`mini_unlearn.distributed`). From the same initial weights it takes one
gradient as training does (accelerate's DDP wrapper) and as the methods do (an all-reduce after
backward), MANU's statistics, MMUnlearner's saliency, two steps of GA_Diff, NPO, RMU,
MMUnlearner and stranger matching, and three training steps.
Rank 0 writes ``OUT/tensors.safetensors`` and ``OUT/figures.json`` (the logged losses, the rows each
process computed). :func:`launch` runs it from Python, :func:`compare` lines two runs up; chapter 11b
and the package's tests run it both ways and check every figure.

It runs from an installed package as from a source checkout, and it exercises the stages that use
the data-parallel helpers (bench, models, neurons, methods), so it sits at the end of the data flow:
no module of the package imports it.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

from . import average_gradients, data_parallel_step, world_size, wrap
from .runs import load_run, run_command, save_run, statistic_tensors
from .. import validate
from ..bench import make_benchmark
from ..methods import unlearn, unlearning_sets
from ..methods.data import example_batches
from ..methods.manu import manu_statistics
from ..models import VLM, build_model, build_processor, build_tokenizer, get_preset
from ..models.train import answer_loss, train
from ..models.train_data import training_batches, training_examples
from ..neurons import compute_saliency

MODULE = "mini_unlearn.distributed.check"     # what ``python -m`` and ``torchrun -m`` run
USAGE = f"usage: python -m {MODULE} [run OUT]"
RATIO = 0.25
# two steps of each loop and loss form: the shared loop (GA_Diff: token means; NPO: row means; RMU:
# representation means) and MMUnlearner's own loop (masked forget steps, retain steps). NPO's batch of 3
# splits 1 + 2: a per-process row mean would then differ from the batch's (with 2 + 2 it would not)
# stranger matching at GA_Diff's learning rate, as in :mod:`.sharded_check` (which says why)
UNLEARNING = {"ga_diff": dict(steps=2), "npo": dict(steps=2, reference="initial", batch_size=3), "rmu": dict(steps=2),
              "mmunlearner": dict(forget_steps=2, retain_per_forget=1), "stranger": dict(steps=2, lr=3e-5)}
NOISE_ONLY = "self_attn.k_proj.bias"      # CLIP's key biases: softmax ignores them, their gradient is rounding noise

__all__ = ["MODULE", "NOISE_ONLY", "UNLEARNING", "compare", "launch", "load", "one_gradient", "run"]


def one_gradient(vlm, batch, through_ddp: bool) -> dict[str, torch.Tensor]:
    """The gradient of the answer cross-entropy of ``batch`` (this process's rows of it), as the
    training step takes it (``through_ddp``: accelerate's DDP wrapper) or as the methods' loop does
    (a plain backward, then :func:`~mini_unlearn.distributed.average_gradients`)."""
    model = vlm.model
    model.zero_grad(set_to_none=True)
    forward = wrap(model) if through_ddp else model     # the DDP wrapper must outlive backward
    with data_parallel_step():
        loss = answer_loss(forward, batch)
    loss.backward()
    if not through_ddp:
        average_gradients(list(model.parameters()))
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def run(out: str | Path) -> None:
    """One run on this process (and, under a launcher, on every other): rank 0 writes ``out``."""
    out = Path(out)
    torch.set_num_threads(1)                 # two processes on two cores; one process uses one thread too
    bench = make_benchmark(n_profiles=4, seed=0, n_utility=1)
    preset = get_preset("tiny")
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    vlm = VLM(build_model(preset, tokenizer, seed=0), build_processor(tokenizer, preset), {})
    tensors, figures = {}, {"processes": world_size()}
    # each stage starts from the same initial weights, so a difference cannot be carried from one to the next

    # one seeded batch of 8 forget + retain pairs, as the methods draw it: this process's rows of it
    forget, retain = unlearning_sets(bench, RATIO)
    batch = next(example_batches(vlm.processor, forget + retain, 8, random.Random(0)))
    figures["rows_per_process"] = {      # how many rows of an 8-row batch this process computes
        "methods": len(batch["input_ids"]),
        "training": len(next(training_batches(vlm.processor, training_examples(bench), 8, random.Random(0)))["input_ids"])}
    for route in ("ddp", "all_reduce"):
        grads = one_gradient(vlm, batch, through_ddp=route == "ddp")
        tensors.update({f"gradient_{route}/{name}": g for name, g in grads.items()})

    for method, options in UNLEARNING.items():
        result = unlearn(vlm, bench, method, RATIO, progress=False, **{"batch_size": 4, **options})
        figures[f"{method}_losses"] = result.log.losses
        tensors.update({f"{method}/{name}": p.detach().clone() for name, p in result.vlm.model.named_parameters()})

    tensors.update(statistic_tensors(manu_statistics(vlm, bench, RATIO, batch_size=2)))

    saliency = compute_saliency(vlm, bench, RATIO, batch_size=2)
    for name in saliency.masks:
        tensors[f"saliency/forget/{name}"] = saliency.forget[name]
        tensors[f"saliency/preserve/{name}"] = saliency.preserve[name]
        tensors[f"saliency/mask/{name}"] = saliency.masks[name].to(torch.uint8)

    # last, as it changes the model in place (everything above starts from the same initial weights)
    log = train(vlm, training_examples(bench), steps=3, batch_size=8, lr=1e-3, warmup=1, seed=0, threads=1,
                progress=False)
    figures["train_losses"] = log.losses
    tensors.update({f"trained/{name}": p.detach().clone() for name, p in vlm.model.named_parameters()})

    save_run(out, tensors, figures)


def launch(out: str | Path, processes: int, timeout: float = 600) -> None:
    """``run`` into ``out`` on ``processes`` CPU processes (torchrun, as ``accelerate launch`` calls it;
    one process without a launcher)."""
    validate.positive_int(processes, "processes")
    out = Path(out).resolve()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + ["-m", MODULE, "run", str(out)]
    run_command(command, processes, timeout)


def load(out: str | Path) -> tuple[dict, dict]:
    """The tensors and the figures one run wrote into ``out``."""
    return load_run(out, MODULE)


def compare(one: str | Path, two: str | Path):
    """Per stage: the largest gap between the runs, relative to the stage's largest value (the key
    biases apart), and for the losses the largest relative gap of a logged loss."""
    import pandas as pd
    (a, first), (b, second) = load(one), load(two)
    rows = {}
    for name, t in a.items():
        stage = name.split("/")[0] + ("/" + name.split("/")[1] if name.startswith("saliency") else "")
        if NOISE_ONLY in name or name.endswith("/count"):
            continue
        x, y = t.double(), b[name].double()
        gap = float((x - y).abs().max() / x.abs().max().clamp(min=1e-30))
        rows[stage] = max(rows.get(stage, 0.0), gap)
    # the logged losses: training's, and GA_Diff's two cross-entropies (its total, −forget + retain, is a
    # difference of nearly equal numbers, so a relative gap of it says nothing)
    pairs = list(zip(first["train_losses"], second["train_losses"]))
    pairs += [(p[k], q[k]) for method in UNLEARNING for p, q in zip(first[f"{method}_losses"], second[f"{method}_losses"])
              for k in p if k != "loss"]
    rows["logged losses"] = max(abs(p - q) / max(abs(p), 0.1) for p, q in pairs)   # (terms near 0: absolute)
    return pd.Series(rows, name="largest relative gap").sort_index(), (first, second)


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and len(argv) == 2:
        run(argv[1])
        return 0
    if argv:
        print(f"{USAGE}\n  expected no arguments (both runs, then the comparison) or `run OUT`; got {argv}",
              file=sys.stderr)
        return 2
    import tempfile
    folder = Path(tempfile.mkdtemp())
    launch(folder / "one", 1)
    launch(folder / "two", 2)
    gaps, _ = compare(folder / "one", folder / "two")
    print(gaps.to_string(float_format=lambda v: f"{v:.1e}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
