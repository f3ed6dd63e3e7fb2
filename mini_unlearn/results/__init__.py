"""``mini_unlearn.results`` — runs you can cite: the leaderboard of chapter 10 and the ``mini-unlearn`` command.

    mini-unlearn run --method mip_editor --ratio 0.05 --seed 0 --out results/
    mini-unlearn tune --methods all --out results/tuning
    mini-unlearn compare --methods all --ratios 0.05 0.10 0.15 --seeds 0 1 2 --tuned results/tuning --out results/
    mini-unlearn report results/

>>> results = mu.results.load("results/")       # the records: scores, configs, versions, hardware, times
>>> mu.results.leaderboard(results)             # mean ± std over seeds of the gap closed and the points lost

Data flows bench → models → methods → evaluation → attacks → results: this is the last stage.
"""
from .environment import environment
from .records import ANCHORS, REFERENCE, Cell, Results, ResultsFolder, RunRecord, course_results, load
from .running import EVALUATED_SPLITS, anchor_cell, identity, run_cell
from .scoring import TARGET, closure_summary, main_scores, progress
from .settings import SETTINGS, parse_overrides
from .sweep import compare, plan
from .tuning import GRIDS, VALIDATION_RATIO, Validation, candidates, choose, read_tuned, tune, validation_benchmark
from .leaderboard import best, cell_table, leaderboard, mean_spread, pareto_plot, verdict_table
from .report import board_text, write_report

__all__ = ["ANCHORS", "EVALUATED_SPLITS", "GRIDS", "REFERENCE", "SETTINGS", "TARGET", "VALIDATION_RATIO", "Cell",
           "Results", "ResultsFolder", "RunRecord", "Validation", "anchor_cell", "best", "board_text", "candidates",
           "cell_table", "choose", "closure_summary", "compare", "course_results", "environment", "identity",
           "leaderboard", "load", "main_scores", "mean_spread", "parse_overrides", "pareto_plot", "plan", "progress",
           "read_tuned", "run_cell", "tune", "validation_benchmark", "verdict_table", "write_report"]
