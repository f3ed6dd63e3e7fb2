"""Requests that keep coming, recorded: ``mini-unlearn run --rounds N`` and chapter 12's committed sequences.

    record, sequence = run_sequence_cell(vlm, bench, Cell("ga", "default-3rounds", 0.15), rounds=3)
    frame = sequential_results(vlm, bench, "mini_unlearn/data/results/sequential", tuned=read_tuned(...))

:func:`run_sequence_cell` is ``mini-unlearn run``'s cell when the forget people arrive in ``N`` rounds
(:func:`mini_unlearn.methods.unlearn_sequence`): its record holds the scores of the model after the last
round, measured as every other cell is (``mu.evaluate`` at the cell's ratio, the audit with ``--audit``),
so it stands on the leaderboard beside the one-round cells; the scores after each round go to
``OUT/sequences/<cell>.csv`` (:func:`write_sequence`).

:func:`sequential_results` runs every registered method, at its tuned setting, in :data:`ROUNDS` rounds at
ratio :data:`RATIO` on the course model, and writes ``scores.csv`` (method × round × split × modality ×
task), ``costs.csv`` (method × round: people, steps, seconds) and ``settings.json`` (what was run, the
seeds, the versions). The vanilla model and the retain-only model at :data:`RATIO` are scored on the same
people after each round as anchors (they do not change between rounds). Rerun it with

    python3 -c "import mini_unlearn.results.sequential as s; s.main()"

(the committed run took 627 s on 2 CPU cores shared with other jobs).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .. import validate
from ..bench import make_benchmark
from ..bench.splits import require_ratio
from ..evaluation import evaluate
from ..methods.sequence import SEQUENCE_TASKS, SequenceResult, plan_requests, round_scores, unlearn_sequence
from ..models import retain_only, vanilla
from ..models.cache import benchmark_fingerprint
from ..seeding import seed_everything
from .environment import environment
from .records import Cell, RunRecord, course_results, write_atomic
from .running import identity, measure, results_folder, seeded
from .settings import config_dict, jsonable, require_methods, require_overrides
from .tuning import read_tuned

RATIO = 0.15            # 6 of the course's 40 people
ROUNDS = 3              # 2 people a request
SEED = 0
FOLDER = "sequential"   # mini_unlearn/data/results/sequential
# the course benchmark (mini_unlearn.release.COURSE_BENCHMARK, which the results stage may not import;
# tests/test_sequence.py checks that the two agree)
COURSE_BENCHMARK = {"n_profiles": 40, "seed": 0}
SCORE_COLUMNS = ("method", "setting", "round", "split", "modality", "task", "metric", "score", "n")
COST_COLUMNS = ("method", "setting", "round", "people", "steps", "seconds_unlearn", "seconds_evaluate")
ANCHORS = ("vanilla", "retain_only")
COMMAND = 'python3 -c "import mini_unlearn.results.sequential as s; s.main()"'


# ---------------------------------------------------------------------------------------------------
# mini-unlearn run --rounds N

def sequence_setting(setting: str, rounds: int) -> str:
    """The setting's name in the results: ``"default"`` in 3 rounds is ``"default-3rounds"``; 1 round keeps it."""
    return setting if rounds == 1 else f"{setting}-{rounds}rounds"


def run_sequence_cell(vlm, bench, cell: Cell, overrides: dict | None = None, rounds=3, *, audit: bool = False,
                      device=None, evaluation: dict | None = None, progress: bool = False
                      ) -> tuple[RunRecord, SequenceResult]:
    """``cell.method`` at ``cell.ratio`` in ``rounds`` requests (:func:`~mini_unlearn.methods.unlearn_sequence`,
    with ``overrides`` and the cell's seed), then the model after the last round measured as
    :func:`~.running.run_cell` measures a one-round cell (``evaluation``: ``mu.evaluate``'s options).

    The record's ``steps`` and ``seconds["unlearn"]`` add up every round; ``seconds["rounds_evaluate"]`` is
    the scoring after each round. Every argument is checked before any weight changes."""
    require_ratio(cell.ratio)
    overrides = require_overrides(cell.method, dict(overrides or {}))
    hyperparameters = seeded(cell.method, overrides, cell.seed)
    plan_requests(bench, rounds, cell.ratio)
    seed_everything(cell.seed)
    sequence = unlearn_sequence(vlm, bench, cell.method, cell.ratio, rounds, progress=progress, device=device,
                                **hyperparameters)
    seconds = {"unlearn": round(float(sequence.costs["seconds_unlearn"].sum()), 2),
               "rounds_evaluate": round(float(sequence.costs["seconds_evaluate"].sum()), 2)}
    scores, audited, more = measure(sequence.vlm, bench, cell.ratio, audit=audit, evaluation=evaluation)
    seconds.update(more)
    seconds["total"] = round(sum(seconds.values()), 2)
    record = RunRecord(cell.method, cell.setting, cell.ratio, cell.seed, overrides,
                       config_dict(cell.method, hyperparameters), scores, seconds, environment(sequence.vlm.device),
                       identity(vlm, bench, evaluation), steps=int(sequence.costs["steps"].sum()), audit=audited)
    return record, sequence


def sequence_frame(sequence: SequenceResult) -> pd.DataFrame:
    """The scores after each round with that round's cost beside them (people, steps, seconds)."""
    return sequence.to_frame().merge(sequence.costs, on="round", how="left")


def write_sequence(folder, cell: Cell, sequence: SequenceResult) -> Path:
    """``folder/sequences/<cell>.csv``: :func:`sequence_frame`, beside the results folder's records."""
    path = Path(folder) / "sequences" / f"{cell.name}.csv"
    write_atomic(path, sequence_frame(sequence).to_csv(index=False))
    return path


# ---------------------------------------------------------------------------------------------------
# Chapter 12's committed sequences

def sequential_results(vlm, bench, out, *, methods=None, tuned: dict | None = None, ratio: float = RATIO,
                       rounds=ROUNDS, reference=None, seed: int = SEED, progress: bool = True) -> pd.DataFrame:
    """Every method of ``methods`` (default: every registered one) at its ``tuned`` overrides (``{method:
    overrides}``, as :func:`~.tuning.read_tuned` returns; a method missing from it runs at its defaults) in
    ``rounds`` requests at ``ratio``, each seeded with ``seed``; writes ``scores.csv``, ``costs.csv`` and
    ``settings.json`` under ``out`` and returns the scores.

    ``reference``: the retain-only model at ``ratio``, scored after each round as an anchor beside the
    vanilla model ``vlm`` (``None``: the vanilla model only). Every argument is checked before anything runs.
    """
    methods, tuned = require_methods(methods, tuned)
    ratio = require_ratio(ratio)
    requests = plan_requests(bench, rounds, ratio)
    validate.seed(seed)
    out = results_folder(out)

    everyone = [pid for people in requests for pid in people]
    scored = bench.request(everyone, ratio=ratio)
    score_frames, cost_rows = [], []
    anchors = {"vanilla": vlm, **({"retain_only": reference} if reference is not None else {})}
    for name, model in anchors.items():
        report = evaluate(model, scored, ratio, splits=("forget", "retain", "utility"), tasks=SEQUENCE_TASKS,
                          progress=False)
        for number in range(1, len(requests) + 1):
            so_far = everyone[:sum(len(people) for people in requests[:number])]
            frame = round_scores(report, so_far, everyone[len(so_far):])
            score_frames.append(frame.assign(method=name, setting="reference", round=number))
    for method in methods:
        overrides = dict(tuned.get(method, {}))
        setting = "tuned" if method in tuned else "default"
        if progress:
            print(f"{method} ({setting}: {overrides}) in {len(requests)} rounds …", flush=True)
        seed_everything(seed)
        sequence = unlearn_sequence(vlm, bench, method, ratio, requests, progress=False,
                                    **seeded(method, overrides, seed))
        score_frames.append(sequence.to_frame().assign(method=method, setting=setting))
        cost_rows += sequence.costs.assign(method=method, setting=setting).to_dict("records")

    scores = pd.concat(score_frames, ignore_index=True)[list(SCORE_COLUMNS)]
    scores["score"] = scores["score"].round(6)
    costs = pd.DataFrame(cost_rows)[list(COST_COLUMNS)]
    write_atomic(out / "scores.csv", scores.to_csv(index=False))
    write_atomic(out / "costs.csv", costs.to_csv(index=False))
    about = {m: {"setting": "tuned" if m in tuned else "default",
                 "overrides": {k: jsonable(v) for k, v in tuned.get(m, {}).items()},
                 "config": config_dict(m, seeded(m, dict(tuned.get(m, {})), seed))} for m in methods}
    settings = {"command": COMMAND, "ratio": ratio, "rounds": len(requests), "requests": requests, "seed": seed,
                "tasks": list(SEQUENCE_TASKS), "methods": about,
                "anchors": {name: identity(model, bench)["model"] for name, model in anchors.items()},
                "benchmark": {"name": bench.name, "fingerprint": benchmark_fingerprint(bench)},
                "environment": environment(vlm.device)}
    write_atomic(out / "settings.json", json.dumps(settings, indent=1, sort_keys=True) + "\n")
    return scores


def summary(scores: pd.DataFrame, costs: pd.DataFrame | None = None, task: str = "cloze") -> pd.DataFrame:
    """Method × round: ``task``'s score of the forget people so far and of the retain people, per modality
    (``i+t``: image+text), and the round's seconds when ``costs`` is given."""
    rows = scores[(scores["task"] == task) & scores["split"].isin(["forget", "retain"])]
    table = rows.pivot_table(index=["method", "round"], columns=["split", "modality"], values="score",
                             aggfunc="first", sort=False)
    table.columns = [f"{split} {'i+t' if modality == 'image+text' else modality}" for split, modality in table.columns]
    table = table[sorted(table.columns, key=lambda c: (c.split()[0] != "forget", c))]
    if costs is not None:
        seconds = costs.set_index(["method", "round"])[["seconds_unlearn"]].rename(columns={"seconds_unlearn": "s"})
        table = table.join(seconds)
    return table


def main(out=None, methods=None) -> pd.DataFrame:
    """Chapter 12's committed sequences: the course benchmark and its shipped vanilla model, every method at
    its tuned setting (the committed ``tuning`` results), 3 rounds at ratio 0.15; writes
    ``mini_unlearn/data/results/sequential`` (or ``out``) and prints a summary per task."""
    bench = make_benchmark(**COURSE_BENCHMARK)
    tuned = read_tuned(course_results("tuning"))
    out = Path(out) if out is not None else Path(__file__).resolve().parents[1] / "data" / "results" / FOLDER
    vlm = vanilla(bench, device="cpu")
    reference = retain_only(bench, RATIO, device="cpu")
    started = time.perf_counter()
    scores = sequential_results(vlm, bench, out, methods=methods, tuned=tuned, reference=reference)
    costs = pd.read_csv(out / "costs.csv", dtype={"people": str})
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        for task in SEQUENCE_TASKS:
            print(f"\n{task} after each round (forget: everyone forgotten so far; s: the round's unlearning seconds)")
            print(summary(scores, costs, task).to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"\nwrote {out} in {time.perf_counter() - started:.0f} s")
    return scores


__all__ = ["ANCHORS", "COMMAND", "COST_COLUMNS", "COURSE_BENCHMARK", "FOLDER", "RATIO", "ROUNDS", "SCORE_COLUMNS",
           "SEED", "main", "run_sequence_cell", "sequence_frame", "sequence_setting", "sequential_results", "summary",
           "write_sequence"]
