"""How far one model got: the share of the gap closed on the forget people, the points lost on the rest.

The leaderboard's yardstick (chapter 10). For each task × modality of the forget people,

    closed = (vanilla − model) / (vanilla − never seen)

is 0 when unlearning changed nothing and 1 when the forget people score like people the model never
saw (the retain-only model on the leaderboard, the holdout people during tuning). ``closure`` is the
*smallest* of these — the goal asks for every task in both modalities — ``closure_mean`` their mean
with each share capped at 1 (how far it got on average; going past a stranger's score earns nothing:
that is over-unlearning, chapter 09), and ``retain_drop`` /
``utility_drop`` are the points (×100) the model lost against the vanilla model, averaged over the
tasks and modalities of those splits. :data:`TARGET` is the course's goal: at least 90 % closed,
at most 5 points lost.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..attacks.auditing import gap_closed
from ..bench.questions import MODALITIES
from ..evaluation.report import GOALS
from ..evaluation.tasks import METRIC, TASKS

TARGET = {"closure": 0.9, "drop": 5.0}
KEPT_SPLITS: tuple[str, ...] = ("retain", "utility")


def main_scores(rows) -> pd.Series:
    """(split, modality, task) → the task's main metric, from tidy score rows (records or a frame)."""
    frame = pd.DataFrame(rows)
    frame = frame[frame["metric"] == frame["task"].map(METRIC)]
    return frame.set_index(["split", "modality", "task"])["score"].astype(float)


def progress(model: pd.Series, vanilla: pd.Series, never_seen: pd.Series, *, goal: str = "forget_both",
             kept: tuple[str, ...] = KEPT_SPLITS, tasks=TASKS) -> dict:
    """``model``'s progress towards ``goal`` (a key of ``mu.evaluation.GOALS``), from :func:`main_scores`.

    ``never_seen`` holds the forget split's scores of a model that never saw the forget people. Under
    ``"forget_visual"`` (MMUnlearner) the forget people's text scores count as kept, not forgotten."""
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {tuple(GOALS)}; got {goal!r}")
    directions = GOALS[goal]["direction"]
    closures, kept_forget = {}, []
    for modality in MODALITIES:
        for task in tasks:
            key = ("forget", modality, task)
            if key not in model.index:
                continue
            if directions[("forget", modality)] == "down":
                closures[f"{modality} {task}"] = gap_closed(model[key], vanilla[key], never_seen[key])
            else:
                kept_forget.append(vanilla[key] - model[key])
    closure, closure_mean = closure_summary(list(closures.values()))
    out = {"closure": closure, "closure_mean": closure_mean, "closures": closures,
           **kept_drops(model, vanilla, kept, tasks)}
    if kept_forget:
        out["forget_kept_drop"] = 100 * float(np.mean(kept_forget))
    out["meets_target"] = meets_target(out)
    return out


def kept_drops(model: pd.Series, vanilla: pd.Series, kept: tuple[str, ...] = KEPT_SPLITS, tasks=TASKS) -> dict:
    """``{"<split>_drop": points}`` for each split of ``kept``: 100 × the mean drop of ``model`` against
    ``vanilla`` over the tasks and modalities the forget people were scored on too. Needs no retain-only
    model (the leaderboard's points lost, and :func:`~.changes.change_table`'s)."""
    drops = {split: [] for split in kept}
    for modality in MODALITIES:
        for task in tasks:
            if ("forget", modality, task) not in model.index:
                continue
            for split in kept:
                other = (split, modality, task)
                if other in model.index:
                    drops[split].append(vanilla[other] - model[other])
    return {f"{split}_drop": 100 * float(np.mean(values)) if values else float("nan")
            for split, values in drops.items()}


def closure_summary(shares) -> tuple[float, float]:
    """``(closure, closure_mean)`` of the shares of the gap closed, one per task × modality (chapter 10).

    NaN shares (a task that does not separate the anchors) are left out; ``closure`` is the smallest of
    the rest, ``closure_mean`` their mean with each share capped at 1 (NaN, NaN when none is left)."""
    finite = [value for value in shares if math.isfinite(value)]
    if not finite:
        return float("nan"), float("nan")
    return min(finite), float(np.mean(np.minimum(finite, 1.0)))


def worst_drop(result: dict) -> float:
    drops = [value for key, value in result.items() if key.endswith("_drop") and math.isfinite(value)]
    return max(drops) if drops else float("nan")


def meets_target(result: dict) -> bool:
    return bool(result["closure"] >= TARGET["closure"] and worst_drop(result) <= TARGET["drop"])


__all__ = ["KEPT_SPLITS", "TARGET", "closure_summary", "kept_drops", "main_scores", "meets_target", "progress", "worst_drop"]
