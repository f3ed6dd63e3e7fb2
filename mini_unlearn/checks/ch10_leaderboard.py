"""Chapter 10 · the leaderboard: the exercises' checkers."""
from __future__ import annotations

import math
from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_gap_closed", "check_choose"]


def _rounded_or_none(value) -> float | None:
    """A float rounded to 12 decimals, or None for NaN: so that "no answer" compares equal to itself."""
    value = float(value)
    return None if math.isnan(value) else round(value, 12)


def _gap_cases() -> list[Case]:
    return [("half of the gap closed", (0.5, 1.0, 0.0)),
            ("all of it, to a never-seen score of 0.25", (0.25, 1.0, 0.25)),
            ("nothing changed", (0.9, 0.9, 0.2)),
            ("past the never-seen score (over-unlearning)", (0.0, 1.0, 0.25)),
            ("a metric that rises when forgetting works", (0.6, 0.2, 0.8)),
            ("anchors 0.02 apart: the metric does not separate them", (0.3, 0.3, 0.28))]


def check_gap_closed(fn: Callable) -> None:
    """Chapter 10: ``fn(value, vanilla, never_seen)`` → the share of the vanilla → never-seen gap closed,
    NaN when the two anchors are less than 0.05 apart."""
    from ..attacks.auditing import gap_closed
    compare("gap_closed", lambda *a: _rounded_or_none(fn(*a)), lambda *a: _rounded_or_none(gap_closed(*a)),
            _gap_cases())


def _choose_cases() -> list[Case]:
    nan = float("nan")

    def rows(*triples):
        return ([{"closure": c, "closure_mean": m, "worst_drop": d} for c, m, d in triples],)

    return [("the most forgetting loses 30 points", rows((1.0, 1.0, 30.0), (0.4, 0.5, 1.0), (0.7, 0.8, 4.0))),
            ("a tie on the weakest task: the larger mean", rows((0.0, 0.1, 1.0), (0.0, 0.6, 4.0), (0.0, 0.3, 0.0))),
            ("a tie on both: fewer points lost", rows((0.7, 0.8, 4.0), (0.7, 0.8, 2.0))),
            ("no setting keeps the retain people", rows((1.0, 1.0, 30.0), (0.9, 0.9, 8.0))),
            ("a setting whose closure is undefined", rows((nan, nan, 0.0), (0.1, 0.2, 0.0))),
            ("exactly 5 points lost is kept", rows((0.2, 0.3, 0.0), (0.8, 0.9, 5.0)))]


def check_choose(fn: Callable) -> None:
    """Chapter 10: ``fn(rows)`` → the index of the setting the tuning rule chooses (each row has
    ``closure``, ``closure_mean`` and ``worst_drop``)."""
    from ..results.tuning import choose
    compare("choose", lambda rows: int(fn(rows)), choose, _choose_cases())
