"""How fast the vanilla recipe memorises the benchmark (prints figures; a script, not a test).

    .venv/bin/python benchmarks/bench_training.py                     # tiny, 40 people, CPU
    python benchmarks/bench_training.py --preset base --n-profiles 500  # base on a GPU

Prints the model's size per tower, steps per second, and for every (task, modality) the training
time at which the teacher-forced exact match on held-out augmentations first reaches 95%, then
the final accuracies (also on the canonical portraits and the test split's transformed views) and
whether greedy ``generate`` with left padding answers the MCQs with the same letter, and the
evaluation throughput per task. The recipe's reading phase
(:class:`mini_unlearn.models.ReadingCurriculum`: text only, MCQs repeated) runs first when the preset's
recipe has one; ``--reading-steps N`` / ``--mcq-weight W`` override it (``--reading-steps 0``: none).
Its time is reported, and the main run then weights the MCQs the same way. "Time to 95%" counts the
reading phase too.
Timings depend on what else runs on the machine: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

import mini_unlearn as mu
from mini_unlearn.models import VLM, ReadingCurriculum, build_model, build_processor, build_tokenizer, get_preset
from mini_unlearn.models.cache import RECIPES
from mini_unlearn.models.train import Monitor, monitor_key, train_recipe
from mini_unlearn.models.train_data import training_examples


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else "load unknown"


def parameters_per_tower(model) -> dict[str, int]:
    towers = {name: sum(p.numel() for p in module.parameters()) for name, module in model.model.named_children()}
    towers["lm_head"] = sum(p.numel() for p in model.lm_head.parameters())
    return towers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--n-profiles", type=int, default=None, help="default: 40 (tiny), 500 (base)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's recipe")
    parser.add_argument("--probe-every", type=int, default=None)
    parser.add_argument("--reading-steps", type=int, default=None, help="default: the recipe's (0: no reading phase)")
    parser.add_argument("--mcq-weight", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    recipe = RECIPES[preset.name]
    steps = args.steps or recipe.steps
    n_profiles = args.n_profiles or (40 if preset.name == "tiny" else 500)
    bench = mu.bench.make_benchmark(n_profiles=n_profiles, seed=0)
    people = [p.id for p in bench.profiles + bench.utility_profiles]
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    vlm = VLM(build_model(preset, tokenizer, seed=args.seed).to(args.device), build_processor(tokenizer, preset))
    examples = training_examples(bench, people)
    monitor = Monitor(vlm, bench, people)
    print(f"{bench}  |  preset {preset.name}  |  device {args.device}  |  torch threads {torch.get_num_threads()}")
    print(f"parameters: {vlm.n_parameters():,} = " + ", ".join(f"{k} {v:,}" for k, v in parameters_per_tower(vlm.model).items()))
    print(f"{len(examples)} training examples; {steps} steps of batch {recipe.batch_size}, lr {recipe.lr}")
    print(f"before: {load()}")

    reading_steps = args.reading_steps if args.reading_steps is not None else (
        recipe.reading.reading_steps if recipe.reading else 0)
    mcq_weight = args.mcq_weight or (recipe.reading or ReadingCurriculum()).mcq_weight
    recipe = replace(recipe, steps=steps, reading=ReadingCurriculum(reading_steps, mcq_weight) if reading_steps else None)

    started = time.perf_counter()
    reading, log = train_recipe(vlm, examples, recipe, seed=args.seed, threads=2 if args.device == "cpu" else None,
                                monitor=monitor, probe_every=args.probe_every or max(1, steps // 20))
    reading_seconds = reading.seconds if reading is not None else 0.0
    if reading is not None:
        for probe in reading.probes:
            print(f"reading phase step {probe['step']}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(probe["accuracy"].items()) if k.startswith("mcq")))
        print(f"reading phase: {reading.seconds:.1f} s for {reading_steps} steps (MCQs × {mcq_weight})")
    wall = time.perf_counter() - started
    print(f"after:  {load()}")
    print(f"\ntraining {log.seconds:.1f} s for {steps} steps ({steps / log.seconds:.2f} steps/s); "
          f"wall {wall:.1f} s including {len(log.probes)} monitor checks; final loss {log.losses[-1]:.4f}")

    first = log.first_reaching(0.95)
    tf_canonical = Monitor(vlm, bench, people, images="canonical")(vlm.model)
    tf_test = Monitor(vlm, bench, bench.forget_ids(0.15), images="test")(vlm.model)
    print(f"\n{'task/modality':<20} {'≥95% at step':>13} {'seconds':>8} {'final (held-out aug.)':>22} "
          f"{'canonical':>10} {'test views (15%)':>17}")
    for key in sorted(log.final_accuracy):
        at = first[key]
        print(f"{key:<20} {at['step'] if at else '—':>13} {at['seconds'] if at else '—':>8} "
              f"{log.final_accuracy[key]:>22.3f} {tf_canonical.get(key, float('nan')):>10.3f} "
              f"{tf_test.get(key, float('nan')):>17.3f}")
    every = log.all_reached(0.95)
    print("every (task, modality) ≥ 95%: " + (
        f"main step {every['step']}, {every['seconds']} s (+ reading phase {reading_seconds:.1f} s = "
        f"{every['seconds'] + reading_seconds:.1f} s of training)" if every else "not reached"))

    mcq = [q for pid in people for q in bench.questions[pid] if q.task == "mcq"]
    for modality in mu.bench.MODALITIES:
        chosen = [q for q in mcq if q.modality == modality]
        letters = mu.evaluation.predict_letters(vlm, chosen)
        share = sum(letter == q.correct for letter, q in zip(letters, chosen)) / len(chosen)
        print(f"MCQ by greedy generated letter (left-padded generate, canonical images), {modality}: "
              f"{share:.3f}  (teacher-forced: {tf_canonical.get(monitor_key('mcq', modality), float('nan')):.3f})")

    print("\nevaluation throughput (mu.evaluate, every split at ratio 0.05, batch 32):")
    for task in mu.evaluation.TASKS:
        started = time.perf_counter()
        report = mu.evaluate(vlm, bench, ratio=0.05, tasks=(task,), progress=False)
        seconds = time.perf_counter() - started
        print(f"  {task:<15} {len(report.details):>5} answers in {seconds:6.2f} s = {len(report.details) / seconds:7.1f} answers/s")


if __name__ == "__main__":
    main()
