"""The whole pipeline at a GPU's scale: train the vanilla model, run every method, evaluate each (a script).

    python benchmarks/gpu_pipeline.py                           # base preset, 500 people, cuda, bf16
    python benchmarks/gpu_pipeline.py --preset xl               # ~1 B parameters: bf16 autocast, compile, fused AdamW
    .venv/bin/python benchmarks/gpu_pipeline.py --smoke         # the same code path in ~30 s on a CPU (tests)
    .venv/bin/python benchmarks/gpu_pipeline.py --smoke --preset xl/16   # xl's code path, widths / 16
    python benchmarks/gpu_pipeline.py --json results/pipeline.json
    accelerate launch --config_file $(python -m mini_unlearn.models.sharding config) --num_processes 8 \
        benchmarks/gpu_pipeline.py --sharded --preset xl   # every method that shards, on 8 GPUs (FSDP2)

Prints, per stage, the wall time and the peak memory (GPU: ``torch.cuda.max_memory_allocated`` of
the stage; CPU: the process's peak resident size so far), the training's steps per second and its
model-FLOP utilisation (MFU: ``6 × parameters × tokens`` per second over the GPU's dense bf16 peak,
from a table of known GPUs), each method's time and peak memory, and the evaluation's questions per
second with the forget and retain scores. The ``base`` preset (500 people, MLLMU-Bench's size) trains
with its recipe (``mini_unlearn.models.cache.RECIPES``); ``--reading-steps N`` adds the reading
phase the ``tiny`` recipe needs (text-only MCQ practice first), to measure whether ``base`` needs it.
The ``xl`` recipe's speedups (bf16 autocast, regional ``torch.compile``, fused AdamW) apply to the
training stage. Nothing here needs a GPU to run: ``--smoke`` shrinks the benchmark and the steps (and
the model to ``tiny`` unless ``--preset`` names one, e.g. ``xl/16``: xl's depth at 1/16 of its
widths), compiles with the ``eager`` backend (the same tracing, no kernel generation), and evaluates
two tasks (option likelihood, cloze) with short answers (``--tasks`` chooses others).

``--sharded`` (under ``accelerate launch`` with the package's FSDP2 config, two processes or more) runs
every method that has a sharded form on an untrained model of the preset, each process holding its
shard (:mod:`mini_unlearn.models.sharding`), and prints each method's time and peak memory per
process beside :func:`mini_unlearn.methods.memory.sharded_footprint`'s prediction for the same model,
batch and number of processes (chapter 11b's table). Training and evaluation are left out: they are
not sharded, and the memory of a step does not depend on what the weights learned.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch

import mini_unlearn as mu
from mini_unlearn import distributed
from mini_unlearn.methods.memory import sharded_footprint
from mini_unlearn.models import VLM, ReadingCurriculum, build_model, build_processor, build_tokenizer, get_preset, sharding
from mini_unlearn.models.cache import recipe_for
from mini_unlearn.models.train import train_recipe
from mini_unlearn.models.train_data import token_lengths, training_examples

# dense bf16 peak FLOP/s (no sparsity), from the vendors' data sheets
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
             "RTX 4090": 165e12, "RTX 3090": 71e12}
# the methods' settings: their defaults at full size; a few steps each for --smoke (a method not named
# here runs its registered `quick` setting: smoke_options)
SMOKE_OPTIONS = {"ga": dict(steps=2), "ga_diff": dict(steps=2), "kl_min": dict(steps=2),
                 "npo": dict(steps=2, reference="initial"), "manu": dict(alpha=0.05),
                 "mmunlearner": dict(forget_steps=2, retain_per_forget=1), "rmu": dict(steps=2),
                 "mip_editor": dict(steps=2, k=2, m=1)}
FULL_OPTIONS = {"npo": dict(reference="initial")}    # the retain-only reference would need a second training


def smoke_options(method: str) -> dict:
    """``method``'s --smoke setting: :data:`SMOKE_OPTIONS`, else the registry's ``quick`` run of seconds."""
    return dict(SMOKE_OPTIONS.get(method, mu.methods.get(method).quick))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16.items() if key in name), None)


@contextmanager
def stage(device: torch.device, record: dict):
    """Time the block and record its peak memory (GiB) into ``record``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    yield record
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        record["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)
    else:   # ru_maxrss: KiB on Linux, bytes on macOS
        scale = 1 if sys.platform == "darwin" else 1024
        record["peak_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 30, 3)
    record["seconds"] = round(time.perf_counter() - start, 2)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="a preset, or one scaled down: xl/16 (default: base; "
                                                       "tiny with --smoke)")
    parser.add_argument("--n-profiles", type=int, default=500)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's recipe)")
    parser.add_argument("--reading-steps", type=int, default=None, help="add a reading phase of N steps (0: none)")
    parser.add_argument("--ratio", type=float, default=0.05)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    parser.add_argument("--tasks", nargs="+", default=None, choices=mu.evaluation.TASKS,
                        help="the evaluated tasks (default: every task; with --smoke: mcq_likelihood and cloze)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None, help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 4 people, a few steps: the CPU check")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--sharded", action="store_true", help="under accelerate launch with the FSDP2 config: "
                                                               "every method that shards, memory per process")
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.n_profiles, args.steps, args.ratio = args.preset or "tiny", 4, args.steps or 4, 0.25
    args.preset = args.preset or "base"
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    args.tasks = list(args.tasks or (("mcq_likelihood", "cloze") if args.smoke else mu.evaluation.TASKS))
    return args


def evaluate(vlm, bench, args):
    """Forget and retain splits, ``--tasks`` (default: every task; ``--smoke``: the two cheapest, short answers)."""
    return mu.evaluate(vlm, bench, args.ratio, splits=("forget", "retain"), tasks=args.tasks, progress=False,
                       max_new_tokens=4 if args.smoke else 50)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    preset = get_preset(args.preset)
    recipe = recipe_for(preset)
    recipe = replace(recipe, steps=args.steps or recipe.steps,
                     batch_size=min(recipe.batch_size, 8) if args.smoke else recipe.batch_size)
    if args.smoke and recipe.speedups is not None and recipe.speedups.compile is not None:
        recipe = replace(recipe, speedups=replace(recipe.speedups, compile="eager"))
    if args.reading_steps is not None:
        recipe = replace(recipe, reading=ReadingCurriculum(reading_steps=args.reading_steps) if args.reading_steps else None)
    elif args.smoke and recipe.reading is not None:
        recipe = replace(recipe, reading=ReadingCurriculum(reading_steps=2))
    figures = {"device": device_name(device), "dtype": args.dtype, "preset": preset.name, "n_profiles": args.n_profiles,
               "speedups": asdict(recipe.speedups) if recipe.speedups is not None else None,
               "ratio": args.ratio, "tasks": args.tasks, "torch": torch.__version__, "stages": {}, "methods": {}}

    with stage(device, figures["stages"].setdefault("benchmark", {})):
        bench = mu.bench.make_benchmark(n_profiles=args.n_profiles, seed=0,
                                        **({"n_utility": 1} if args.smoke else {}))
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    vlm = VLM(build_model(preset, tokenizer, seed=0).to(device, dtype), build_processor(tokenizer, preset),
              {"preset": preset.name})
    figures["parameters"] = vlm.n_parameters()

    examples = training_examples(bench)
    steps = recipe.steps + (recipe.reading.reading_steps if recipe.reading is not None else 0)
    tokens_per_row = sum(token_lengths(vlm.processor, examples)) / len(examples)
    with stage(device, figures["stages"].setdefault("train", {})) as record:
        reading, log = train_recipe(vlm, examples, recipe, seed=0, threads=None, progress=not args.smoke)
    flops = 6 * figures["parameters"] * tokens_per_row * recipe.batch_size * steps
    peak = peak_flops(device)
    record.update(steps=steps, steps_per_second=round(steps / record["seconds"], 2),
                  reading_steps=len(reading.losses) if reading is not None else 0,
                  final_loss=round(log.losses[-1], 4), tflops_per_second=round(flops / record["seconds"] / 1e12, 4),
                  mfu=round(flops / record["seconds"] / peak, 3) if peak else None)

    with stage(device, figures["stages"].setdefault("evaluate vanilla", {})) as record:
        report = evaluate(vlm, bench, args)
    record.update(questions_per_second=round(len(report.details) / record["seconds"], 1))

    for method in args.methods or mu.methods.available():
        options = smoke_options(method) if args.smoke else FULL_OPTIONS.get(method, {})
        row = figures["methods"].setdefault(method, {})
        with stage(device, row):
            result = mu.unlearn(vlm, bench, method, args.ratio, progress=False, **options)
        evaluation = {}
        with stage(device, evaluation):
            scores = evaluate(result.vlm, bench, args).details
        means = scores.groupby("split")["score"].mean()
        row.update(steps=len(result.log.losses), evaluate_seconds=evaluation["seconds"],
                   forget=round(float(means["forget"]), 3), retain=round(float(means["retain"]), 3))
        del result
    return figures


SHARDED_BATCH = 8       # rows per step in --sharded (each process computes its share of them)


def run_sharded(args: argparse.Namespace) -> dict:
    """``--sharded``: every method with a sharded form, on an untrained model sharded across the launched
    processes; per method, the time and this process's peak memory, and the predicted per-process GiB."""
    if not sharding.requested():
        raise SystemExit("--sharded runs under a launcher with the package's FSDP2 config, two processes or more: "
                         "accelerate launch --config_file $(python -m mini_unlearn.models.sharding config) "
                         "--num_processes N benchmarks/gpu_pipeline.py --sharded")
    device = distributed.device()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    preset = get_preset(args.preset)
    bench = mu.bench.make_benchmark(n_profiles=args.n_profiles, seed=0, **({"n_utility": 1} if args.smoke else {}))
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    vlm = VLM(build_model(preset, tokenizer, seed=0).to(dtype=dtype), build_processor(tokenizer, preset),
              {"preset": preset.name})                      # the input stays on the CPU; each process shards a copy
    processes = distributed.world_size()
    figures = {"device": device_name(device), "dtype": args.dtype, "preset": preset.name, "n_profiles": args.n_profiles,
               "ratio": args.ratio, "processes": processes, "batch_size": SHARDED_BATCH, "torch": torch.__version__,
               "parameters": vlm.n_parameters(), "stages": {}, "methods": {}}
    shardable = [m for m in mu.methods.available() if mu.methods.get(m).shards]
    for method in args.methods or shardable:
        options = {"batch_size": SHARDED_BATCH, **(smoke_options(method) if args.smoke
                                                   else FULL_OPTIONS.get(method, {}))}
        row = figures["methods"].setdefault(method, {})
        with stage(device, row):
            result = mu.unlearn(vlm, bench, method, args.ratio, progress=False, **options)
        row.update(steps=len(result.log.losses),
                   predicted_gib=sharded_footprint(vlm.model, method, processes, dtype=dtype, **options)["total"])
        del result
    return figures


def show_sharded(figures: dict) -> None:
    print(f"{figures['device']} · {figures['dtype']} · preset {figures['preset']} "
          f"({figures['parameters']:,} parameters) · sharded on {figures['processes']} processes · "
          f"batch {figures['batch_size']}")
    print(f"  {'method':<12} {'seconds':>9}  {'peak GiB':>8}  {'predicted':>9}  {'steps':>5}")
    for method, row in figures["methods"].items():
        print(f"  {method:<12} {row['seconds']:>9.2f}  {row['peak_gib']:>8.3f}  {row['predicted_gib']:>9.3f}  "
              f"{row['steps']:>5}")


def show(figures: dict) -> None:
    print(f"{figures['device']} · {figures['dtype']} · preset {figures['preset']} "
          f"({figures['parameters']:,} parameters) · {figures['n_profiles']} people · ratio {figures['ratio']}")
    if figures.get("speedups"):
        print("  training speedups: " + ", ".join(f"{k} {v}" for k, v in figures["speedups"].items()))
    for name, record in figures["stages"].items():
        extra = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("seconds", "peak_gib"))
        print(f"  {name:<17} {record['seconds']:>9.2f} s  peak {record['peak_gib']:.3f} GiB  {extra}")
    print(f"  {'method':<17} {'seconds':>9}  {'peak GiB':>8}  {'steps':>5}  {'eval s':>7}  forget  retain")
    for method, row in figures["methods"].items():
        print(f"  {method:<17} {row['seconds']:>9.2f}  {row['peak_gib']:>8.3f}  {row['steps']:>5}  "
              f"{row['evaluate_seconds']:>7.2f}  {row['forget']:>6.3f}  {row['retain']:>6.3f}")


def main(argv=None) -> dict:
    args = parse(argv)
    figures = run_sharded(args) if args.sharded else run(args)
    if not distributed.is_main():
        return figures
    (show_sharded if args.sharded else show)(figures)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    main()
