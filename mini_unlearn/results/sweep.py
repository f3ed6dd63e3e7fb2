"""``mini-unlearn compare``: every method × setting × ratio × seed, resumable, into one results folder.

    compare(vlm, bench, "results/", methods=["ga_diff", "manu"], ratios=[0.05], seeds=[0, 1, 2],
            settings={"default": None, "tuned": tuned}, reference=lambda ratio: retain_only(bench, ratio))

The two anchors are recorded first at each ratio (the vanilla model; the retain-only model when a
``reference`` is given; the ``retrains``, when given), then the cells in a fixed order. A finished cell (its record exists) is
read, not recomputed, so a stopped sweep continues where it stopped. The progress bar counts the
cells still to run, so its time estimate is the sweep's time left.
"""
from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

from .. import validate
from ..bench.splits import require_ratio
from ..methods import get
from .records import REFERENCE, RETRAIN, Cell, ResultsFolder, RunRecord
from .running import anchor_cell, identity, run_cell
from .settings import require_overrides


def plan(methods, ratios, seeds, settings: dict[str, dict | None]) -> list[tuple[Cell, dict]]:
    """Every (cell, overrides) of the sweep, anchors first at each ratio; checked before anything runs.

    ``settings``: name → ``None`` (every method at its registered defaults) or ``{method: overrides}``
    (as :func:`~.tuning.read_tuned` returns); a method missing from such a table is skipped there."""
    methods, ratios, seeds = list(methods), [require_ratio(r) for r in ratios], list(seeds)
    for name, values in (("methods", methods), ("ratios", ratios), ("seeds", seeds), ("settings", list(settings))):
        if not values:
            raise ValueError(f"{name} is empty: the sweep needs at least one")
    for method in methods:
        get(method)
    for seed in seeds:
        validate.seed(seed, "each of seeds")
    if REFERENCE in settings:
        raise ValueError(f"settings: {REFERENCE!r} names the anchors; choose another setting name")
    cells = []
    for ratio in ratios:
        for method in methods:
            for name, table in settings.items():
                if table is not None and method not in table:
                    continue
                overrides = require_overrides(method, dict(table[method]) if table is not None else {})
                cells += [(Cell(method, name, ratio, seed), overrides) for seed in seeds]
    return cells


def compare(vlm, bench, out, methods, ratios, seeds, settings: dict[str, dict | None], *,
            reference: Callable | None = None, retrains: dict[int, Callable] | None = None, audit: bool = False,
            device=None, evaluation: dict | None = None, progress: bool = True) -> list[RunRecord]:
    """Run the sweep into ``out`` (see the module doc); returns every record, read or computed.
    ``evaluation``: ``mu.evaluate``'s options for every cell (part of the folder's identity). ``retrains``:
    ``{training seed: ratio -> the retain-only model trained at that seed}``, each recorded beside the
    anchors as a ``"retrain"`` cell (chapter 13: how close another exact unlearning comes)."""
    cells = plan(methods, ratios, seeds, settings)
    retrains = dict(retrains or {})
    for seed in retrains:
        validate.seed(seed, "each seed of retrains")
    if retrains and reference is None:
        raise ValueError("retrains: a retrain cell is read against the retain-only model; pass reference too")
    folder = ResultsFolder(out, identity(vlm, bench, evaluation))
    ratios = list(dict.fromkeys(cell.ratio for cell, _ in cells))
    anchors = [(Cell(name, REFERENCE, ratio), ratio) for ratio in ratios
               for name in (("vanilla", "retain_only") if reference is not None else ("vanilla",))]
    anchors += [(Cell(RETRAIN, REFERENCE, ratio, seed), ratio) for ratio in ratios for seed in retrains]
    pending = [c for c, _ in anchors if not folder.done(c)] + [c for c, _ in cells if not folder.done(c)]
    records = []
    with tqdm(total=len(pending), desc="compare", unit="cell", disable=not progress) as bar:
        for cell, ratio in anchors:
            if folder.done(cell):
                records.append(folder.read(cell))
                continue
            bar.set_postfix_str(cell.name, refresh=True)
            if cell.method == "vanilla":
                model = vlm
            else:
                model = reference(ratio) if cell.method == "retain_only" else retrains[cell.seed](ratio)
            record = anchor_cell(cell.method, model, vlm, bench, ratio, seed=cell.seed, audit=audit,
                                 evaluation=evaluation)
            folder.write(record)
            records.append(record)
            bar.update(1)
        for cell, overrides in cells:
            if folder.done(cell):
                records.append(folder.read(cell))
                continue
            bar.set_postfix_str(cell.name, refresh=True)
            record, _ = run_cell(vlm, bench, cell, overrides, audit=audit, device=device, evaluation=evaluation)
            folder.write(record)
            records.append(record)
            bar.update(1)
    return records


__all__ = ["compare", "plan"]
