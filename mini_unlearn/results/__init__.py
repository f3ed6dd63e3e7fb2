"""``mini_unlearn.results`` — runs you can cite: the leaderboard of chapter 10 and the ``mini-unlearn`` command.

    mini-unlearn run --method mip_editor --ratio 0.05 --seed 0 --out results/
    mini-unlearn tune --methods all --out results/tuning
    mini-unlearn compare --methods all --ratios 0.05 0.10 0.15 --seeds 0 1 2 --tuned results/tuning --out results/
    mini-unlearn report results/

>>> results = mu.results.load("results/")       # the records: scores, configs, versions, hardware, times
>>> mu.results.leaderboard(results)             # mean ± std over seeds of the gap closed and the points lost
>>> mu.results.change_board(results)            # no retain-only model: the points moved against the vanilla model

The last stage of the library's data flow (stated once, in :mod:`mini_unlearn`'s docstring); only the course's
tooling comes after it.
"""
from .environment import environment
from .records import ANCHORS, REFERENCE, RETRAIN, Cell, Results, ResultsFolder, RunRecord, course_results, load
from .running import EVALUATED_SPLITS, anchor_cell, identity, run_cell
from .scoring import TARGET, closure_summary, kept_drops, main_scores, progress
from .settings import SETTINGS, parse_overrides
from .sweep import compare, plan
from .tuning import GRIDS, VALIDATION_RATIO, Validation, candidates, choose, read_tuned, tune, validation_benchmark
from .leaderboard import against_retraining, best, cell_table, leaderboard, mean_spread, pareto_plot, verdict_table
from .changes import anchored_ratios, at_ratios, audit_changes, change_board, change_table, missing_references, score_table
from .report import board_text, reference_note, report_sections, write_report

__all__ = ["ANCHORS", "EVALUATED_SPLITS", "GRIDS", "REFERENCE", "RETRAIN", "SETTINGS", "TARGET", "VALIDATION_RATIO", "Cell",
           "Results", "ResultsFolder", "RunRecord", "Validation", "against_retraining", "anchor_cell", "anchored_ratios", "at_ratios",
           "audit_changes", "best", "board_text", "candidates", "cell_table", "change_board", "change_table", "choose",
           "closure_summary", "compare", "course_results", "environment", "identity", "kept_drops", "leaderboard", "load",
           "main_scores", "mean_spread", "missing_references", "parse_overrides", "pareto_plot", "plan", "progress",
           "read_tuned", "reference_note", "report_sections", "run_cell", "score_table", "tune",
           "validation_benchmark", "verdict_table", "write_report"]
