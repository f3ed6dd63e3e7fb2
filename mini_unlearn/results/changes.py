"""What a results folder says without a retain-only model: scores, changes against the vanilla model, the audit.

The leaderboard's yardstick (:mod:`.scoring`) is the share of the vanilla → retain-only gap closed, and it
needs a model that never saw the forget people. A researcher's own checkpoint seldom comes with one
(``mini-unlearn run --model THEIR_FOLDER`` without ``--reference``). Everything else needs only the vanilla
model, which ``run`` and ``compare`` record first at every ratio:

    mu.results.missing_references(results)   # the ratios without a retain-only record
    mu.results.score_table(results)           # one row per cell, the anchors too: mean score per split
    mu.results.change_table(results)          # one row per cell: the points it moved against vanilla
    mu.results.change_board(results)          # the same, mean and std over the seeds
    mu.results.audit_changes(results)         # every attack's value beside the vanilla model's

``mini-unlearn report`` prints these for the ratios without a reference, says what it left out and how
to add it, and keeps the leaderboard (closures, target, Pareto plot, verdict) where there is one.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..bench.questions import MODALITIES
from ..evaluation.tasks import TASKS
from .records import REFERENCE, Results, RunRecord
from .leaderboard import over_seeds
from .scoring import kept_drops, main_scores

# the columns of score_table / change_table: a split, and a modality (None: the mean over both)
VIEWS: dict[str, tuple[str, str | None]] = {
    "forget image+text": ("forget", "image+text"), "forget text": ("forget", "text"),
    "test image+text": ("test", "image+text"), "retain": ("retain", None), "utility": ("utility", None)}
CHANGES = ("forget image+text", "forget text", "forget_weakest", "test image+text", "retain_drop", "utility_drop")


def _has(results: Results, anchor: str, ratio: float) -> bool:
    return any(r.method == anchor and r.setting == REFERENCE and math.isclose(r.ratio, ratio) for r in results.records)


def _ratios(results: Results) -> list[float]:
    return sorted({r.ratio for r in results.records})


def anchored_ratios(results: Results) -> list[float]:
    """The ratios where the folder holds both anchors, the vanilla and the retain-only model (the leaderboard's)."""
    return [ratio for ratio in _ratios(results) if _has(results, "vanilla", ratio) and _has(results, "retain_only", ratio)]


def missing_references(results: Results) -> list[float]:
    """The ratios without a retain-only record: there the leaderboard's closures cannot be read."""
    return [ratio for ratio in _ratios(results) if not _has(results, "retain_only", ratio)]


def at_ratios(results: Results, ratios) -> Results:
    """The records of ``results`` at ``ratios`` only (same folder and identity)."""
    ratios = list(ratios)
    return Results(results.path, results.identity,
                   [r for r in results.records if any(math.isclose(r.ratio, ratio) for ratio in ratios)])


def _vanilla(results: Results, ratio: float) -> pd.Series:
    try:
        return main_scores(results.record("vanilla", REFERENCE, ratio).scores)
    except KeyError as error:
        raise ValueError(f"the results at ratio {ratio:g} lack the vanilla anchor, which every change is read "
                         f"against (`mini-unlearn run` and `compare` record it first): {error}") from error


def _view(scores: pd.Series, split: str, modality: str | None) -> pd.Series:
    """The main scores of one split (and modality), over its tasks (and modalities)."""
    chosen = scores[scores.index.get_level_values("split") == split]
    if modality is not None:
        chosen = chosen[chosen.index.get_level_values("modality") == modality]
    return chosen


def _mean(part: pd.Series) -> float:
    """The mean of a view, NaN when the view is empty (a split the run did not score)."""
    return float(part.mean()) if len(part) else float("nan")


def _cell(record: RunRecord) -> dict:
    return {"method": record.method, "setting": record.setting, "ratio": record.ratio, "seed": record.seed}


def score_table(results: Results) -> pd.DataFrame:
    """One row per record, the anchors first: the mean of its main scores (×100, points) per :data:`VIEWS`
    column — the forget people asked with their portrait and by name, the test views of their portraits,
    the retain and the utility people. Needs no anchor at all."""
    rows = []
    for record in sorted(results.records, key=lambda r: (r.ratio, r.setting != REFERENCE, r.method != "vanilla")):
        scores = main_scores(record.scores)
        rows.append({**_cell(record), **{name: 100 * _mean(_view(scores, *where)) for name, where in VIEWS.items()}})
    return pd.DataFrame(rows)


def change_table(results: Results) -> pd.DataFrame:
    """One row per unlearned cell: the points (×100) each view's mean main score fell against the vanilla
    model at the cell's ratio — on the forget people it should fall, on the retain and utility people not.
    ``forget_weakest`` is the forget task × modality that fell least (the goal asks for every one of them);
    ``retain_drop`` / ``utility_drop`` are the leaderboard's points lost, the same numbers. Needs the vanilla
    anchor, not the retain-only model."""
    rows = []
    for record in results.records:
        if record.setting == REFERENCE:
            continue
        vanilla, scores = _vanilla(results, record.ratio), main_scores(record.scores)
        fell = (vanilla - scores).dropna() * 100
        row = _cell(record)
        for name in ("forget image+text", "forget text", "test image+text"):
            row[name] = _mean(_view(fell, *VIEWS[name]))
        forget = [fell[("forget", m, t)] for m in MODALITIES for t in TASKS if ("forget", m, t) in fell.index]
        row["forget_weakest"] = float(min(forget)) if forget else float("nan")
        row.update(kept_drops(scores, vanilla))
        row["seconds"] = record.seconds.get("total")
        row.update({f"fell forget {m} {t}": float(fell[("forget", m, t)]) for m in MODALITIES for t in TASKS
                    if ("forget", m, t) in fell.index})
        rows.append(row)
    return pd.DataFrame(rows)


def change_board(results: Results, columns=CHANGES) -> pd.DataFrame:
    """Per method × setting × ratio: the mean and the standard deviation over seeds of :func:`change_table`'s
    ``columns``, the number of seeds and the mean seconds a cell took (:func:`~.leaderboard.mean_spread`
    prints it)."""
    return over_seeds(change_table(results), columns, results.path)


def audit_changes(results: Results) -> pd.DataFrame:
    """Every audited cell's attacks (chapter 09) beside the vanilla model's audit at its ratio: one row per
    cell × attack × metric × modality with ``value``, ``vanilla``, ``change`` and ``forgetting_way`` (the
    value moved the way the metric's ``direction`` says forgetting moves it). Each attack reads one model,
    so none needs a retain-only model; membership's AUC even has a mark of its own — at 0.5 the attack cannot
    tell the forget people from holdout people no model trained on. Empty without audited cells."""
    audits = results.audits
    if audits.empty:
        return pd.DataFrame()
    key = ["attack", "metric", "modality"]
    frames = []
    for ratio, part in audits.groupby("ratio"):
        base = part[(part["method"] == "vanilla") & (part["setting"] == REFERENCE)]
        cells = part[part["setting"] != REFERENCE]
        if base.empty or cells.empty:
            continue
        merged = cells.merge(base[key + ["value"]].rename(columns={"value": "vanilla"}), on=key, how="left")
        frames.append(merged)
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame["change"] = frame["value"] - frame["vanilla"]
    sign = frame["direction"].map({"down": -1.0, "up": 1.0})
    frame["forgetting_way"] = (np.sign(frame["change"]) * sign) > 0
    columns = ["method", "setting", "ratio", "seed", *key, "direction", "value", "vanilla", "change", "forgetting_way"]
    return frame[columns]


__all__ = ["CHANGES", "VIEWS", "anchored_ratios", "at_ratios", "audit_changes", "change_board", "change_table",
           "missing_references", "score_table"]
