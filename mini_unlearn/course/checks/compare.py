"""How every checker works: run the learner's function and the package's on the same cases, and say
what is wrong when they differ.

A checker knows the *usual wrong answers* to its exercise (a dropped absolute value, a flipped sign,
a mean where a sum belongs, an off-by-one): each is a :class:`Slip`, a function that makes the
mistake and the sentence a learner who made it should read. When the learner's output differs from
the package's, :func:`compare` runs the slips on the same case; if one gives exactly the learner's
output, the message names the mistake. The tests feed every slip to its checker and expect that
sentence, and feed every stub and expect a failure.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Case = tuple[str, tuple]  # (a description, the positional arguments)


@dataclass(frozen=True)
class Slip:
    """A usual wrong answer: ``fn`` makes it (same signature as the exercise), ``says`` explains it."""
    fn: Callable
    says: str


def slips(*known: Slip) -> Callable:
    """Decorator: attach a checker's usual wrong answers to it (``checker.slips``)."""
    def attach(checker: Callable) -> Callable:
        checker.slips = tuple(known)
        return checker
    return attach


def _max_difference(expected: Any, got: Any) -> float | None:
    """Largest absolute difference between two numbers / sequences of numbers, or None if not numeric.

    NaN where both have NaN counts as equal (0); NaN on one side only makes the difference NaN.
    """
    try:
        import numpy as np
        e = np.asarray(getattr(expected, "detach", lambda: expected)(), dtype=float)
        g = np.asarray(getattr(got, "detach", lambda: got)(), dtype=float)
    except (TypeError, ValueError):
        return None
    if e.shape != g.shape:
        raise AssertionError(f"expected an output of shape {tuple(e.shape)}, got shape {tuple(g.shape)}")
    if not e.size:
        return 0.0
    both_nan = np.isnan(e) & np.isnan(g)
    return float(np.max(np.where(both_nan, 0.0, np.abs(e - g))))


def _same(expected: Any, got: Any, atol: float | None) -> bool:
    if atol is None:
        return got == expected
    try:
        difference = _max_difference(expected, got)
    except AssertionError:   # different shapes
        return False
    return difference is not None and not math.isnan(difference) and difference <= atol


def which_slip(known: Sequence[Slip], args: tuple, got: Any, *, atol: float | None = None,
               adapt: Callable = lambda f: f) -> Slip | None:
    """The first usual wrong answer that gives exactly ``got`` on ``args``, or None."""
    for slip in known:
        # a slip that cannot run on this case is not the one the learner made
        try:
            made = adapt(slip.fn)(*args)
        except Exception:  # noqa: BLE001, S112
            continue
        if _same(made, got, atol):
            return slip
    return None


def explain(slip: Slip | None) -> str:
    """The sentence a checker adds to its message when a known slip matches."""
    return f"\n  This looks like a usual slip: {slip.says}" if slip is not None else ""


def compare(name: str, learner: Callable, reference: Callable, cases: Sequence[Case], *,
            atol: float | None = None, slips: Sequence[Slip] = (), adapt: Callable = lambda f: f) -> None:
    """Run ``learner`` and ``reference`` on every case; raise AssertionError at the first difference.

    ``atol=None`` asks for exact equality; a number compares numerically within that tolerance.
    ``adapt`` wraps the learner, the reference and each slip alike (e.g. ``float(...)`` of a tensor).
    When a known slip gives the learner's output on the failing case, the message says which.
    """
    learner, reference = adapt(learner), adapt(reference)
    for description, args in cases:
        expected = reference(*args)
        try:
            got = learner(*args)
        except NotImplementedError:
            raise AssertionError(f"{name} is not implemented yet (it raised NotImplementedError)") from None
        if _same(expected, got, atol):
            continue
        hint = explain(which_slip(slips, args, got, atol=atol, adapt=adapt))
        if atol is None:
            raise AssertionError(f"{name} differs on {description}:\n  expected {expected!r}\n  got      {got!r}{hint}")
        difference = _max_difference(expected, got)
        raise AssertionError(f"{name} differs on {description}: max |difference| = {difference} "
                             f"(tolerance {atol})\n  expected {expected!r}\n  got      {got!r}{hint}")
    print(f"✓ {name} matches mini_unlearn on {len(cases)} cases.")


def as_float(f: Callable) -> Callable:
    """``float(f(...))``: compare a scalar tensor (or number) answer as a Python float."""
    return lambda *args: float(f(*args))


def as_list(f: Callable) -> Callable:
    """``f(...).tolist()``: compare a tensor answer exactly, element by element."""
    return lambda *args: f(*args).tolist()
