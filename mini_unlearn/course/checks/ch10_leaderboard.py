"""Chapter 10 · the leaderboard: the exercises' checkers."""
from __future__ import annotations

import math
from collections.abc import Callable

from .compare import Case, Slip, compare, slips

__all__ = ["check_gap_closed", "check_closure_summary", "check_choose"]

NAN = float("nan")


def _rounded_or_none(value) -> float | None:
    """A float rounded to 12 decimals, or None for NaN: so that "no answer" compares equal to itself."""
    value = float(value)
    return None if math.isnan(value) else round(value, 12)


# ---------------------------------------------------------------------------------------------------
# Exercise 10.1 · the gap closed

def _gap_cases() -> list[Case]:
    return [("half of the gap closed", (0.5, 1.0, 0.0)),
            ("all of it, to a never-seen score of 0.25", (0.25, 1.0, 0.25)),
            ("nothing changed", (0.9, 0.9, 0.2)),
            ("past the never-seen score (over-unlearning)", (0.0, 1.0, 0.25)),
            ("a metric that rises when forgetting works", (0.6, 0.2, 0.8)),
            ("anchors 0.02 apart: the metric does not separate them", (0.3, 0.3, 0.28))]


def _gap_flipped(value, vanilla, never_seen):
    if abs(never_seen - vanilla) < 0.05:
        return NAN
    return (value - vanilla) / (vanilla - never_seen)


def _gap_left(value, vanilla, never_seen):
    if abs(never_seen - vanilla) < 0.05:
        return NAN
    return (value - never_seen) / (vanilla - never_seen)


def _gap_signed_floor(value, vanilla, never_seen):
    if never_seen - vanilla < 0.05:
        return NAN
    return (vanilla - value) / (vanilla - never_seen)


def _gap_no_floor(value, vanilla, never_seen):
    return (vanilla - value) / (vanilla - never_seen)


@slips(Slip(_gap_flipped, "the sign is flipped: the share closed is (vanilla − value) / (vanilla − never_seen), "
                          "positive when the model moved from vanilla towards never-seen"),
       Slip(_gap_left, "this is the share of the gap still LEFT, (value − never_seen) / (vanilla − never_seen): "
                       "the share closed is one minus it, (vanilla − value) / (vanilla − never_seen)"),
       Slip(_gap_signed_floor, "the 0.05 floor is on the size of the gap, |never_seen − vanilla| < 0.05: without "
                               "the absolute value every metric that falls when forgetting works becomes NaN"),
       Slip(_gap_no_floor, "the NaN rule is missing: when the anchors are less than 0.05 apart the metric does "
                           "not separate them, and the share is NaN rather than a division by almost nothing"))
def check_gap_closed(fn: Callable) -> None:
    """Chapter 10: ``fn(value, vanilla, never_seen)`` → the share of the vanilla → never-seen gap closed,
    NaN when the two anchors are less than 0.05 apart."""
    from ...attacks.auditing import gap_closed
    compare("gap_closed", fn, gap_closed, _gap_cases(), slips=check_gap_closed.slips,
            adapt=lambda f: lambda *a: _rounded_or_none(f(*a)))


# ---------------------------------------------------------------------------------------------------
# Exercise 10.2 · the weakest task and the capped mean

def _summary_cases() -> list[Case]:
    return [("four tasks, one past a stranger's score", ([0.2, 0.9, 1.4, 0.5],)),
            ("a task the anchors do not separate (NaN)", ([NAN, 0.3, 1.2, 0.6],)),
            ("every task past a stranger's score", ([1.3, 1.1],)),
            ("one task, the model moved away from a stranger", ([-0.2],)),
            ("eight tasks, two of them NaN", ([0.1, 0.45, NAN, 0.8, 1.0, 2.5, NAN, 0.05],)),
            ("no task separates the anchors", ([NAN, NAN],))]


def _summary_uncapped(shares):
    import numpy as np
    finite = [s for s in shares if math.isfinite(s)]
    return (min(finite), float(np.mean(finite))) if finite else (NAN, NAN)


def _summary_nan_kept(shares):
    import numpy as np
    return float(np.min(shares)), float(np.mean(np.minimum(shares, 1.0)))


def _summary_both_capped(shares):
    import numpy as np
    capped = [min(s, 1.0) for s in shares if math.isfinite(s)]
    return (min(capped), float(np.mean(capped))) if capped else (NAN, NAN)


def _summary_as_compared(f: Callable) -> Callable:
    def summary(shares):
        closure, closure_mean = f(list(shares))
        return _rounded_or_none(closure), _rounded_or_none(closure_mean)
    return summary


@slips(Slip(_summary_uncapped, "the mean is not capped: each share counts at most 1 in closure_mean, since going "
                               "past a stranger's score is over-unlearning, not extra credit"),
       Slip(_summary_nan_kept, "the NaN shares are kept: a task whose anchors are less than 0.05 apart is left out, "
                               "and one NaN must not make the whole summary NaN"),
       Slip(_summary_both_capped, "the weakest share is capped too: only the mean caps each share at 1, the "
                                  "closure is the smallest share as it is"))
def check_closure_summary(fn: Callable) -> None:
    """Chapter 10: ``fn(shares)`` → ``(closure, closure_mean)``: the smallest share that is not NaN, and
    the mean of those shares each capped at 1 (NaN, NaN when every share is NaN)."""
    from ...results.scoring import closure_summary
    compare("closure_summary", fn, closure_summary, _summary_cases(), slips=check_closure_summary.slips,
            adapt=_summary_as_compared)


# ---------------------------------------------------------------------------------------------------
# Exercise 10.3 · the rule

def _choose_cases() -> list[Case]:
    def rows(*triples):
        return ([{"closure": c, "closure_mean": m, "worst_drop": d} for c, m, d in triples],)

    return [("the most forgetting loses 30 points", rows((1.0, 1.0, 30.0), (0.4, 0.5, 1.0), (0.7, 0.8, 4.0))),
            ("a tie on the weakest task: the larger mean", rows((0.0, 0.1, 1.0), (0.0, 0.6, 4.0), (0.0, 0.3, 0.0))),
            ("a tie on both: fewer points lost", rows((0.7, 0.8, 4.0), (0.7, 0.8, 2.0))),
            ("no setting keeps the retain people", rows((1.0, 1.0, 30.0), (0.9, 0.9, 8.0))),
            ("a setting whose closure is undefined", rows((NAN, NAN, 0.0), (0.1, 0.2, 0.0))),
            ("exactly 5 points lost is kept", rows((0.2, 0.3, 0.0), (0.8, 0.9, 5.0)))]


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _best(rows, kept, finite=_finite):
    if not kept:
        return min(range(len(rows)), key=lambda i: (rows[i]["worst_drop"], i))
    return max(kept, key=lambda i: (finite(rows[i]["closure"]), finite(rows[i]["closure_mean"]),
                                    -rows[i]["worst_drop"], -i))


def _choose_any_cost(rows):
    return _best(rows, list(range(len(rows))))


def _choose_under_5(rows):
    return _best(rows, [i for i, row in enumerate(rows) if row["worst_drop"] < 5])


def _choose_no_mean(rows):
    kept = [i for i, row in enumerate(rows) if row["worst_drop"] <= 5]
    if not kept:
        return _best(rows, kept)
    return max(kept, key=lambda i: _finite(rows[i]["closure"]))


def _choose_nan_as_is(rows):
    return _best(rows, [i for i, row in enumerate(rows) if row["worst_drop"] <= 5], finite=lambda value: value)


def _choose_fewest_points(rows):
    return min(range(len(rows)), key=lambda i: (rows[i]["worst_drop"], i))


@slips(Slip(_choose_any_cost, "the 5-point limit is ignored: only the settings that lose at most 5 points on the "
                              "retain people compete (the most forgetting at any cost is not a fair choice)"),
       Slip(_choose_under_5, "\"at most 5 points\" includes 5: a setting that loses exactly 5 points is kept "
                             "(<= 5, not < 5)"),
       Slip(_choose_no_mean, "the tie-break on closure_mean is missing: settings tied on the weakest task go to "
                             "the larger mean share, then to fewer points lost, before the earlier row"),
       Slip(_choose_nan_as_is, "a NaN closure is compared as it is: NaN is neither larger nor smaller than a "
                               "number, so treat it as the lowest value (−∞), never as a winner"),
       Slip(_choose_fewest_points, "this is the setting that loses fewest points, whatever it forgets: that rule "
                                   "applies only when no setting stays within the 5 points"))
def check_choose(fn: Callable) -> None:
    """Chapter 10: ``fn(rows)`` → the index of the setting the tuning rule chooses (each row has
    ``closure``, ``closure_mean`` and ``worst_drop``)."""
    from ...results.tuning import choose
    compare("choose", fn, choose, _choose_cases(), slips=check_choose.slips, adapt=lambda f: lambda rows: int(f(rows)))
