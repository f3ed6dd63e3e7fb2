"""Every method on CLEAR, recorded: chapter 12's committed CLEAR board.

    frame = clear_results(vlm, clear, "mini_unlearn/data/results/clear", references={0.05: gold}, tuned=...)

:func:`clear_results` unlearns the course's CLEAR model (:func:`mini_unlearn.models.vanilla` of
``make_clear(n_profiles=40, seed=0)``: the course model taught CLEAR's captions and answers) with every
registered method, at its tuned setting (chosen on the course benchmark's validation people, chapter 10: none
is tuned again on CLEAR), at each of :data:`RATIOS` (CLEAR's forget05 and forget10), and scores each with
CLEAR's own metrics (:func:`mini_unlearn.evaluation.clear.evaluate_clear`), forget quality against the
retain-only model of the same ratio. The vanilla and retain-only models are scored too, as anchors. It writes
``scores.csv`` (method × ratio × split × modality × task × metric, :meth:`ClearReport.to_frame`'s rows),
``costs.csv`` (method × ratio: steps, seconds) and ``settings.json`` (what was run, the versions). Rerun it with

    python3 -c "import mini_unlearn.results.clear as c; c.main()"
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from ..bench import make_clear
from ..bench.splits import require_ratio
from ..evaluation import evaluate
from ..methods import unlearn
from ..models import retain_only, vanilla
from ..models.cache import benchmark_fingerprint
from ..seeding import seed_everything
from .environment import environment
from .records import course_results, write_atomic
from .running import identity, method_setting, printer, results_folder
from .settings import require_methods
from .tuning import read_tuned

RATIOS = (0.05, 0.10)   # CLEAR's forget05 and forget10: 2 and 4 of the course's 40 people
SEED = 0
FOLDER = "clear"        # mini_unlearn/data/results/clear
# the course benchmark's people (mini_unlearn.release.COURSE_BENCHMARK, which the results stage may not import;
# tests/test_clear_results.py checks that the two agree)
COURSE_BENCHMARK = {"n_profiles": 40, "seed": 0}
SCORE_COLUMNS = ("method", "setting", "ratio", "split", "modality", "task", "metric", "score", "n")
COST_COLUMNS = ("method", "setting", "ratio", "steps", "seconds_unlearn", "seconds_evaluate")
ANCHORS = ("vanilla", "retain_only")
COMMAND = 'python3 -c "import mini_unlearn.results.clear as c; c.main()"'
# the board's columns, (split, modality, task) → its short name: f. the forget people, r. the retain people,
# FQ forget quality per modality
BOARD = {("forget", "image+text", "rougeL_recall"): "f.caption",
         ("forget", "image+text", "name_mcq_likelihood"): "f.name",
         ("forget", "text", "rougeL_recall"): "f.QA",
         ("forget", "image+text", "forget_quality"): "FQ i+t",
         ("forget", "text", "forget_quality"): "FQ text",
         ("retain", "image+text", "rougeL_recall"): "r.caption",
         ("retain", "text", "rougeL_recall"): "r.QA",
         ("all", "all", "model_utility"): "utility"}


def report_rows(report, method: str, setting: str, ratio: float) -> pd.DataFrame:
    """A :class:`~mini_unlearn.evaluation.clear.ClearReport`'s rows (:meth:`~.ClearReport.to_frame`) labelled
    with the method, its setting and the ratio, as ``scores.csv`` holds them and :func:`board` reads them."""
    frame = report.to_frame().assign(method=method, setting=setting, ratio=ratio)
    return frame[list(SCORE_COLUMNS)]


def clear_results(vlm, clear, out, *, references: dict, methods=None, tuned: dict | None = None,
                  ratios=RATIOS, seed: int = SEED, progress: bool = True) -> pd.DataFrame:
    """Every method of ``methods`` (default: every registered one) at its ``tuned`` overrides (``{method:
    overrides}``; a method missing from it runs at its defaults), seeded with ``seed``, unlearned from ``vlm``
    at each of ``ratios`` and scored with CLEAR's metrics, forget quality against ``references[ratio]`` (the
    retain-only model at that ratio); writes ``scores.csv``, ``costs.csv`` and ``settings.json`` under ``out``
    and returns the scores. Every argument is checked before anything runs."""
    methods, tuned = require_methods(methods, tuned)
    ratios = tuple(require_ratio(r) for r in ratios)
    if not ratios:
        raise ValueError("ratios is empty: name at least one forget ratio")
    missing = [r for r in ratios if r not in references]
    if missing:
        raise ValueError(f"references: no retain-only model for ratios {missing}; pass {{ratio: model}} for each "
                         f"of {list(ratios)}")
    if any(references[r] is vlm for r in ratios):
        raise ValueError("references: a retain-only model never saw the forget people; the vanilla model is not one")
    out, say = results_folder(out), printer(progress)
    frames, costs, configs = [], [], {}
    for ratio in ratios:
        gold = evaluate(references[ratio], clear, ratio, progress=False)
        frames += [report_rows(evaluate(vlm, clear, ratio, reference=gold, progress=False), "vanilla", "reference",
                               ratio),
                   report_rows(gold.against(gold), "retain_only", "reference", ratio)]
        for method in methods:
            overrides, setting, hyperparameters, configs[method] = method_setting(method, tuned, seed)
            seed_everything(seed)
            started = time.perf_counter()
            result = unlearn(vlm, clear, method=method, ratio=ratio, progress=False, **hyperparameters)
            unlearned_s = time.perf_counter() - started
            started = time.perf_counter()
            report = evaluate(result.vlm, clear, ratio, reference=gold, progress=False)
            evaluated_s = time.perf_counter() - started
            frames.append(report_rows(report, method, setting, ratio))
            costs.append({"method": method, "setting": setting, "ratio": ratio, "steps": len(result.log.losses),
                          "seconds_unlearn": round(unlearned_s, 1), "seconds_evaluate": round(evaluated_s, 1)})
            say(f"{method} at {ratio} ({setting}: {overrides}): {unlearned_s:.0f} s + {evaluated_s:.0f} s")
    frame = pd.concat(frames, ignore_index=True)
    frame["score"] = frame["score"].astype(float).round(6)
    write_atomic(out / "scores.csv", frame.to_csv(index=False))
    write_atomic(out / "costs.csv", pd.DataFrame(costs, columns=list(COST_COLUMNS)).to_csv(index=False))
    settings = {"command": COMMAND, "ratios": list(ratios), "seed": seed, "methods": configs,
                "anchors": {"vanilla": identity(vlm, clear)["model"],
                            **{f"retain_only@{r:g}": identity(references[r], clear)["model"] for r in ratios}},
                "benchmark": {"name": clear.name, "fingerprint": benchmark_fingerprint(clear)},
                "environment": environment(vlm.device)}
    write_atomic(out / "settings.json", json.dumps(settings, indent=1, sort_keys=True) + "\n")
    return frame


def board(scores: pd.DataFrame, ratio: float = 0.05) -> pd.DataFrame:
    """Method × :data:`BOARD`'s columns at ``ratio``: the anchors first, then the methods in the order run."""
    ratio = require_ratio(ratio)
    rows = scores[(scores["ratio"] - ratio).abs() < 1e-9]
    if rows.empty:
        raise ValueError(f"ratio={ratio}: no scores at this ratio; the results hold {sorted(scores['ratio'].unique())}")
    main = rows[rows["metric"] != "rouge1_recall"]
    table = main.pivot_table(index="method", columns=["split", "modality", "task"], values="score", aggfunc="first",
                             sort=False)
    table = table[[column for column in BOARD if column in table.columns]]
    table.columns = [BOARD[column] for column in table.columns]
    return table.reindex(list(dict.fromkeys(rows["method"])))


def read(name: str = FOLDER) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The committed results: ``scores.csv``, ``costs.csv`` and ``settings.json``."""
    folder = course_results(name)
    return (pd.read_csv(folder / "scores.csv"), pd.read_csv(folder / "costs.csv"),
            json.loads((folder / "settings.json").read_text()))


def main(out=None, methods=None) -> pd.DataFrame:
    """Chapter 12's committed CLEAR board: the course's CLEAR and its shipped models, every method at its tuned
    setting (the committed ``tuning`` results) at 5 and 10 %; writes ``mini_unlearn/data/results/clear`` (or
    ``out``) and prints the board at each ratio."""
    clear = make_clear(**COURSE_BENCHMARK)
    tuned = read_tuned(course_results("tuning"))
    out = Path(out) if out is not None else Path(__file__).resolve().parents[1] / "data" / "results" / FOLDER
    vlm = vanilla(clear, device="cpu")
    references = {ratio: retain_only(clear, ratio, device="cpu") for ratio in RATIOS}
    started = time.perf_counter()
    scores = clear_results(vlm, clear, out, references=references, methods=methods, tuned=tuned)
    with pd.option_context("display.width", 200):
        for ratio in RATIOS:
            print(f"\nCLEAR at {ratio:.0%}")
            print(board(scores, ratio).to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"\nwrote {out} in {time.perf_counter() - started:.0f} s")
    return scores


__all__ = ["ANCHORS", "BOARD", "COMMAND", "COST_COLUMNS", "COURSE_BENCHMARK", "FOLDER", "RATIOS", "SCORE_COLUMNS",
           "SEED", "board", "clear_results", "main", "read", "report_rows"]
