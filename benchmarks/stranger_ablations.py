"""Chapter 13's ablations: the stranger method with each part removed in turn, audited (writes a results folder).

    .venv/bin/python benchmarks/stranger_ablations.py      # writes mini_unlearn/data/results/stranger_ablations/

Every setting starts from the tuned stranger setting (the committed ``tuning`` results) and changes one
thing: no answer term, no state term, no retain term, no multiple-choice twins, or the language side
only (no weight of the vision tower or the projector moves). Each runs at 5 % on unlearning seeds
0, 1 and 2, scored and audited like the leaderboard (``mini-unlearn compare``'s cells), beside the
anchors and the retrain row. Resumable: a finished cell is read, not recomputed (about 15 minutes on
2 cores from nothing).
"""
from __future__ import annotations

import time
from pathlib import Path

import mini_unlearn as mu
from mini_unlearn.release import RETRAIN_SEEDS, course_benchmark

OUT = Path(__file__).resolve().parents[1] / "mini_unlearn" / "data" / "results" / "stranger_ablations"
RATIO = 0.05
SEEDS = (0, 1, 2)
REMOVED = {"no answer term": {"answer_weight": 0.0}, "no state term": {"state_weight": 0.0},
           "no retain term": {"retain_weight": 0.0}, "no multiple-choice twins": {"multiple_choice": False},
           "language side only": {"train": "language"}}


def settings(tuned: dict) -> dict[str, dict]:
    """The setting name → ``{"stranger": overrides}`` of every ablation, the tuned setting first."""
    return {"tuned": {"stranger": tuned}, **{name: {"stranger": {**tuned, **change}} for name, change in REMOVED.items()}}


def main(out: Path = OUT) -> None:
    bench = course_benchmark()
    tuned = mu.results.read_tuned(mu.results.course_results("tuning"))["stranger"]
    vlm = mu.models.vanilla(bench, device="cpu", progress=False)
    started = time.perf_counter()
    mu.results.compare(vlm, bench, out, ["stranger"], [RATIO], SEEDS, settings(tuned),
                       reference=lambda ratio: mu.models.retain_only(bench, ratio, device="cpu", progress=False),
                       retrains=mu.models.retrains(bench, RETRAIN_SEEDS, device="cpu", progress=False),
                       audit=True)
    results = mu.results.load(out)
    board = mu.results.leaderboard(results)
    print(board[[("closure", "mean"), ("closure_mean", "mean"), ("retain_drop", "mean"), ("utility_drop", "mean")]]
          .round(3).to_string())
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
