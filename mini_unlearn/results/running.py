"""One cell of the leaderboard: unlearn, evaluate, optionally audit, and record it all (``mini-unlearn run``).

    record = run_cell(vlm, bench, Cell("mip_editor", "default", 0.05, seed=0), overrides={})

The method runs on a copy (``mu.unlearn`` never modifies its input); the scores are
``mu.evaluate``'s at the cell's ratio; with ``audit=True`` every attack of chapter 09 runs on the
unlearned model too (:func:`mini_unlearn.attacks.findings`). The anchors — the vanilla model and the
retain-only model, which never saw the forget people — are recorded the same way by
:func:`anchor_cell`, so every number of the leaderboard is read from records of one format.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .. import validate
from ..attacks.auditing import findings, metrics
from ..bench.splits import require_ratio
from ..evaluation import evaluate
from ..methods import get, unlearn
from ..models.cache import benchmark_fingerprint, key_hash
from ..seeding import seed_everything
from .environment import environment
from .records import ANCHORS, REFERENCE, RETRAIN, SCORE_COLUMNS, Cell, RunRecord
from .settings import require_overrides, config_dict, jsonable

EVALUATED_SPLITS: tuple[str, ...] = ("forget", "retain", "test", "utility")


def identity(vlm, bench, evaluation: dict | None = None) -> dict:
    """What a results folder is about: the model (its training key, or the folder it was loaded from), the
    benchmark (its name and content fingerprint) and the evaluation options (``{}``: ``mu.evaluate``'s
    defaults on :data:`EVALUATED_SPLITS`) — cells measured otherwise cannot share a leaderboard."""
    card = getattr(vlm, "card", {}) or {}
    if card.get("cache_key"):
        model = {"name": f"{card['cache_key']['kind']}-{card.get('preset', '?')}-seed{card.get('seed', '?')}",
                 "key": key_hash(card["cache_key"])}
    else:
        source = card.get("loaded_from")
        model = {"name": Path(source).name if source else "an unnamed model", "path": str(source)}
    return {"model": model, "benchmark": {"name": bench.name, "fingerprint": benchmark_fingerprint(bench)},
            "evaluation": jsonable(dict(sorted((evaluation or {}).items())))}


def seeded(method: str, overrides: dict, seed: int) -> dict:
    """``overrides`` with the cell's seed, for the methods whose config has one (MANU is deterministic)."""
    names = {f.name for f in dataclasses.fields(get(method).config)}
    return {**overrides, "seed": seed} if "seed" in names else dict(overrides)


def method_setting(method: str, tuned: dict, seed: int) -> tuple[dict, str, dict, dict]:
    """For a run of every method at its tuned setting: ``method``'s overrides in ``tuned`` (``{}`` when it has
    none), the setting's name (``"tuned"`` or ``"default"``), the seeded hyperparameters (:func:`seeded`) and
    the entry ``settings.json`` records for it."""
    overrides = dict(tuned.get(method, {}))
    setting = "tuned" if method in tuned else "default"
    hyperparameters = seeded(method, overrides, seed)
    entry = {"setting": setting, "overrides": {name: jsonable(v) for name, v in overrides.items()},
             "config": config_dict(method, hyperparameters)}
    return overrides, setting, hyperparameters, entry


def results_folder(out) -> Path:
    """``out`` as a Path, refused when it names a file: a results run writes a folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out {str(out)!r} is a file; expected a folder for the results")
    return out


def printer(progress: bool):
    """``print`` (flushed) when ``progress``, else a function that prints nothing."""
    return (lambda text: print(text, flush=True)) if progress else (lambda text: None)


def score_rows(report) -> list[dict]:
    frame = report.to_frame()
    return [{column: (str(row[column]) if column in ("split", "modality", "task", "metric") else
                      (int(row[column]) if column == "n" else round(float(row[column]), 6)))
             for column in SCORE_COLUMNS} for _, row in frame.iterrows()]


def audit_rows(vlm, bench, ratio: float) -> list[dict]:
    frame = metrics(findings(vlm, bench, ratio, progress=False))
    return [{**row, "value": round(float(row["value"]), 6)} for row in frame.to_dict("records")]


def measure(vlm, bench, ratio: float, *, audit: bool, evaluation: dict | None = None) -> tuple[list[dict], list[dict], dict]:
    """The scores (and the audit) of ``vlm`` at ``ratio``, with the seconds each took. ``evaluation``:
    keyword arguments of ``mu.evaluate`` (e.g. ``tasks``, ``max_new_tokens``; ``splits`` defaults to
    :data:`EVALUATED_SPLITS`)."""
    options = {"splits": EVALUATED_SPLITS, **(evaluation or {})}
    started = time.perf_counter()
    scores = score_rows(evaluate(vlm, bench, ratio=ratio, progress=False, **options))
    seconds = {"evaluate": round(time.perf_counter() - started, 2)}
    audited = []
    if audit:
        started = time.perf_counter()
        audited = audit_rows(vlm, bench, ratio)
        seconds["audit"] = round(time.perf_counter() - started, 2)
    return scores, audited, seconds


def run_cell(vlm, bench, cell: Cell, overrides: dict | None = None, *, audit: bool = False, device=None,
             evaluation: dict | None = None, progress: bool = False) -> tuple[RunRecord, object]:
    """Unlearn ``cell.method`` at ``cell.ratio`` with ``overrides`` and the cell's seed, then measure it.

    Returns the record and the :class:`~mini_unlearn.methods.UnlearnResult` (its ``vlm`` for ``--save``).
    Every argument is checked before any weight changes."""
    if cell.is_anchor:
        raise ValueError(f"cell: {cell.method!r} is an anchor; record it with anchor_cell")
    require_ratio(cell.ratio)
    overrides = require_overrides(cell.method, dict(overrides or {}))
    hyperparameters = seeded(cell.method, overrides, cell.seed)
    seed_everything(cell.seed)
    started = time.perf_counter()
    result = unlearn(vlm, bench, method=cell.method, ratio=cell.ratio, device=device, progress=progress,
                     **hyperparameters)
    seconds = {"unlearn": round(time.perf_counter() - started, 2)}
    scores, audited, more = measure(result.vlm, bench, cell.ratio, audit=audit, evaluation=evaluation)
    seconds.update(more)
    seconds["total"] = round(sum(seconds.values()), 2)
    record = RunRecord(cell.method, cell.setting, cell.ratio, cell.seed, overrides,
                       config_dict(cell.method, hyperparameters), scores, seconds,
                       environment(result.vlm.device), identity(vlm, bench, evaluation), steps=len(result.log.losses),
                       audit=audited)
    return record, result


def anchor_cell(anchor: str, model, vlm, bench, ratio: float, *, seed: int = 0, audit: bool = False,
                evaluation: dict | None = None) -> RunRecord:
    """The record of an anchor: ``"vanilla"`` (``model`` is ``vlm``), ``"retain_only"`` (the model that
    never saw the forget people at ``ratio``) or ``"retrain"`` (the same recipe at training ``seed``: scored
    like an unlearned model, it shows how close another exact unlearning comes). ``vlm`` is the folder's
    model, which names the folder."""
    validate.one_of(anchor, "anchor", (*ANCHORS, RETRAIN))
    validate.seed(seed)
    require_ratio(ratio)
    scores, audited, seconds = measure(model, bench, ratio, audit=audit, evaluation=evaluation)
    seconds["total"] = round(sum(seconds.values()), 2)
    about = {"model": identity(model, bench)["model"]}
    return RunRecord(anchor, REFERENCE, ratio, seed, {}, about, scores, seconds, environment(model.device),
                     identity(vlm, bench, evaluation), audit=audited)


__all__ = ["EVALUATED_SPLITS", "anchor_cell", "identity", "measure", "run_cell", "seeded"]
