"""Several models side by side, and which way each column should move for each goal (chapter 06 onwards).

    reports = {"vanilla": mu.evaluate(vlm, bench), "ga": mu.evaluate(result.vlm, bench)}
    table = mu.evaluation.score_table(reports, tasks=("cloze",))
    print(mu.evaluation.mark_goals(table).to_string())

Whether a lower forget-text score is a success depends on the goal (:data:`GOALS`): MLLMU-Bench,
MANU and MIP-Editor want the person forgotten in both modalities; MMUnlearner wants the portrait
link gone and the name-based knowledge kept. :func:`mark_goals` adds one row per goal under the
numbers, so a reader sees, column by column, which goal rewards what.
"""
from __future__ import annotations

import pandas as pd

from .report import GOALS, Report

CELLS: tuple[tuple[str, str], ...] = (("forget", "image+text"), ("forget", "text"), ("retain", "image+text"),
                                      ("retain", "text"), ("utility", "image+text"), ("utility", "text"))
ARROWS = {"down": "↓", "up": "↑"}


def score_table(reports: dict[str, Report], tasks=("cloze",), cells=CELLS) -> pd.DataFrame:
    """One row per model, one column per (split / modality, task): each task's main metric."""
    if not reports:
        raise ValueError("reports is empty: pass {name: mu.evaluate(...)} for at least one model")
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    rows = {name: {(f"{split} / {modality}", task): report.score(split, modality, task)
                   for split, modality in cells for task in tasks}
            for name, report in reports.items()}
    table = pd.DataFrame(rows).T
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["split / modality", "task"])
    return table


def mark_goals(table: pd.DataFrame, goals=tuple(GOALS), digits: int = 2) -> pd.DataFrame:
    """``table`` (from :func:`score_table`) as text, with one row per goal: ↓ should fall, ↑ should stay up."""
    unknown = [goal for goal in goals if goal not in GOALS]
    if unknown:
        raise ValueError(f"unknown goal {unknown[0]!r}; expected one of {tuple(GOALS)}")
    shown = table.map(lambda x: f"{x:.{digits}f}")
    for goal in goals:
        direction = GOALS[goal]["direction"]
        shown.loc[f"{goal} wants"] = [ARROWS[direction[tuple(cell.split(" / "))]] for cell, _ in table.columns]
    return shown


__all__ = ["ARROWS", "CELLS", "mark_goals", "score_table"]
