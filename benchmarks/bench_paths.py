"""What IGI / IFI path attribution costs per sample, relative to plain passes (prints figures; not a test).

    .venv/bin/python benchmarks/bench_paths.py            # the cached tiny vanilla model, CPU

For each forget sample (text-only for IGI, image+text for IFI) MIP-Editor's greedy path search runs
one forward + backward pass per layer of the tower, on a batch of the m interpolation steps. This
prints, per sample, that time against **m plain forward + backward passes** of the same sample
(batch 1, no hooks) — the cost of evaluating the m steps one by one for a single layer — and the
per-layer ratio. The goal for the per-layer ratio is ≤ 1.2×: the gates and the batching should
cost no more than the passes they replace. The load average is printed with the timings.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import mini_unlearn as mu
from mini_unlearn.models.train import answer_loss
from mini_unlearn.neurons import paths
from mini_unlearn.neurons.saliency import forget_examples
from mini_unlearn.models.train_data import one_pass_batches, training_examples


def plain_passes(model, batch, m: int) -> float:
    start = time.perf_counter()
    for _ in range(m):
        model.zero_grad(set_to_none=True)
        answer_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--n-profiles", type=int, default=40)
    parser.add_argument("--m", type=int, default=paths.M)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    mu.seed_everything(0)
    bench = mu.bench.make_benchmark(n_profiles=args.n_profiles, seed=0)
    vlm = mu.models.vanilla(bench, preset=args.preset, seed=0)
    model = vlm.model
    people = bench.split("forget", 0.05).ids
    text = [e for e in training_examples(bench, people, practice=False) if e.modality == "text"]
    image = forget_examples(bench, 0.05)
    print(f"device {vlm.device}, threads {torch.get_num_threads()}, m = {args.m}, preset {args.preset}")
    for branch, examples in (("igi", text), ("ifi", image)):
        sites = paths.tower_sites(model, paths.BRANCHES[branch])
        batches = [{k: v.to(vlm.device) for k, v in b.items()}
                   for b in one_pass_batches(vlm.processor, examples, 1)]
        ours, plain = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for batch in batches:
                paths.attribute_sample(model, batch, sites, m=args.m, fisher=branch == "ifi")
            ours.append((time.perf_counter() - start) / len(batches))
            plain.append(sum(plain_passes(model, batch, args.m) for batch in batches) / len(batches))
        best_ours, best_plain = min(ours), min(plain)
        layers = len(sites)
        print(f"{branch}: {len(batches)} samples, {layers} layers | per sample {best_ours * 1e3:.1f} ms; "
              f"{args.m} plain fwd+bwd passes {best_plain * 1e3:.1f} ms | "
              f"per sample {best_ours / best_plain:.2f}×, per layer {best_ours / layers / best_plain:.2f}× "
              f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
