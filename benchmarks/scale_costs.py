"""How each method's cost grows with the model: the same small job at several sizes, on this machine.

    .venv/bin/python benchmarks/scale_costs.py                      # prints the table
    .venv/bin/python benchmarks/scale_costs.py --json mini_unlearn/data/results/scale/cpu.json   # what chapter 11b reads

Every size is a real preset or one scaled down with :meth:`~mini_unlearn.models.Preset.scaled`
(``xl/16``: the ~1 B preset's 12 + 16 layers, heads and images at 1/16 of its widths), built
untrained for a 4-person benchmark (ratio 0.25). For each size it times a training step (forward,
backward and AdamW on a batch of 8, the mean of 6 steps after 2 warm-ups) and each method's
:func:`mini_unlearn.unlearn` with a fixed small budget (:data:`BUDGET`: 4 steps, MIP-Editor's paths
with k = m = 2). Untrained weights cost what trained ones do; what is measured is time, not forgetting.
Wall times depend on the machine (named in the output) and its load: run it alone.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import mini_unlearn as mu
from mini_unlearn.models import VLM, build_model, build_processor, build_tokenizer, get_preset
from mini_unlearn.models.train import train
from mini_unlearn.models.train_data import training_examples

SIZES = ("tiny", "base/4", "xl/16", "xl/8")
BUDGET = {"ga": dict(steps=4), "ga_diff": dict(steps=4), "kl_min": dict(steps=4),
          "npo": dict(steps=4, reference="initial"), "manu": dict(alpha=0.05), "mmunlearner": dict(forget_steps=4),
          "rmu": dict(steps=4), "mip_editor": dict(steps=4, k=2, m=2)}
RATIO = 0.25


def untrained(bench, size: str) -> VLM:
    preset = get_preset(size)
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    return VLM(build_model(preset, tokenizer, seed=0), build_processor(tokenizer, preset), {"preset": preset.name})


def step_seconds(vlm: VLM, bench, batch_size: int = 8, warmup: int = 2, steps: int = 6) -> float:
    """Mean seconds of a training step (the loop's own clock, batches prepared in the background)."""
    examples = training_examples(bench)
    train(vlm, examples, steps=warmup, batch_size=batch_size, warmup=1, progress=False, threads=None)
    log = train(vlm, examples, steps=steps, batch_size=batch_size, warmup=1, progress=False, threads=None)
    return log.seconds / steps


def measure(sizes=SIZES, methods=None) -> dict:
    bench = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)
    figures = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "budget": BUDGET, "ratio": RATIO, "sizes": []}
    for size in sizes:
        vlm = untrained(bench, size)
        row = {"preset": size, "parameters": vlm.n_parameters(), "train_step": round(step_seconds(vlm, bench), 4),
               "methods": {}}
        vlm = untrained(bench, size)          # the methods start from the untrained weights again
        for method in methods or mu.methods.available():
            start = time.perf_counter()
            mu.unlearn(vlm, bench, method, RATIO, progress=False, **BUDGET.get(method, {}))
            row["methods"][method] = round(time.perf_counter() - start, 3)
        figures["sizes"].append(row)
        print(f"{size:<7} {row['parameters']:>11,} params  step {row['train_step']:.3f} s  "
              + "  ".join(f"{m} {s:.2f}" for m, s in row["methods"].items()), flush=True)
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=list(SIZES))
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))     # the course machines: 2 cores
    figures = measure(args.sizes, args.methods)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    main()
