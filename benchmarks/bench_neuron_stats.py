"""What collecting per-neuron statistics costs, relative to plain inference (prints figures; not a test).

    .venv/bin/python benchmarks/bench_neuron_stats.py            # the cached tiny vanilla model, CPU

MANU (chapter 05) runs the forget and retain pairs through the model with a hook on every MLP of
both towers, streaming count / sum / |sum| / sum of squares / counts above τ per neuron. This
prints the throughput of that pass and of the same forward passes without hooks, on the same
batches, and their ratio (the goal is ≥ 0.9×: the hooks should cost little next to the model).
The load average is printed with the timings.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import mini_unlearn as mu
from mini_unlearn.methods.data import unlearning_sets
from mini_unlearn.methods.manu import pair_batches
from mini_unlearn.neurons import collect_stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--n-profiles", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    mu.seed_everything(0)
    bench = mu.bench.make_benchmark(n_profiles=args.n_profiles, seed=0)
    vlm = mu.models.vanilla(bench, preset=args.preset, seed=0)
    forget, retain = unlearning_sets(bench, 0.05, "both")
    batches = list(pair_batches(vlm.processor, forget + retain, args.batch_size))   # encoded once, shared by both
    batches = [{k: v.to(vlm.device) for k, v in b.items() if k != "labels"} for b in batches]
    samples = sum(len(b["input_ids"]) for b in batches)

    def plain():
        with torch.inference_mode():
            for batch in batches:
                vlm.model(**batch)

    def with_stats():
        collect_stats(vlm, batches)

    plain()                               # warm-up
    timings = {"plain inference": [], "with neuron statistics": []}
    for _ in range(args.repeats):          # interleaved, so drifting load hits both alike
        for name, run in (("plain inference", plain), ("with neuron statistics", with_stats)):
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)
    print(f"{vlm}; {samples} samples in {len(batches)} batches; device {vlm.device}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    best = {name: min(values) for name, values in timings.items()}
    for name, seconds in best.items():
        print(f"  {name:<24} {samples / seconds:8.1f} samples/s  (best of {args.repeats}: {seconds:.2f} s)")
    print(f"  ratio (with statistics / plain): {best['plain inference'] / best['with neuron statistics']:.2f}x")


if __name__ == "__main__":
    main()
