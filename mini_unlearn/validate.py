"""Argument validators every stage shares: each returns the value it accepted, or raises an error that
names the argument, before any work starts.

    steps = validate.positive_int(steps, "steps")
    lr = validate.positive(lr, "lr", finite=True)
    seed = validate.seed(seed)
    mean = validate.one_of(mean, "mean", MEANS)
    variant = validate.renamed(variant, "variant", {"official": "released"})   # an old spelling still works

Every error is a ``ValueError``. A value of the wrong type raises :class:`WrongTypeError`, which is a
``TypeError`` too, so code that catches either keeps working.

These validate a caller's arguments; they are not the exercises' checkers (``mu.checks``), which compare
a learner's function with the package's.
"""
from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable, Mapping


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string or a float where a count belongs)."""


def explained(hint: str) -> str:
    """`` (hint)`` after the rule an error states, or nothing."""
    return f" ({hint})" if hint else ""


def is_integer(value) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, but never a count here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An ``int`` or a ``float`` that is not a ``bool`` (NaN and ±inf included: the caller rules on those)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(value, name: str, *, allow_zero: bool = False, hint: str = "") -> int:
    """``value`` if it is an integer ≥ 1 (≥ 0 with ``allow_zero``); else a clear error naming ``name``.

    ``hint`` says what the number counts, in the error: ``positive_int(k, "k", hint="neurons per layer")``."""
    if not is_integer(value) or value < (0 if allow_zero else 1):
        error = ValueError if is_integer(value) else WrongTypeError
        raise error(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer{explained(hint)}; "
                    f"got {value!r}")
    return value


def positive(value, name: str, *, allow_zero: bool = False, finite: bool = False, hint: str = "") -> float:
    """``value`` if it is a number > 0 (≥ 0 with ``allow_zero``), never NaN, and not ±inf with ``finite``."""
    if not is_number(value) or math.isnan(value) or (finite and math.isinf(value)) \
            or (value < 0 if allow_zero else value <= 0):
        error = ValueError if is_number(value) else WrongTypeError
        raise error(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number{explained(hint)}; "
                    f"got {value!r}")
    return value


def seed(value, name: str = "seed") -> int:
    """``value`` if it is an integer (any sign: a seed names a random stream, it counts nothing)."""
    if not is_integer(value):
        raise WrongTypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    return value


def one_of(value, name: str, choices: Iterable, *, hint: str = ""):
    """``value`` if it is one of ``choices``; else an error listing them (``hint``: what they mean)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}{explained(hint)}; got {value!r}")
    return value


def renamed(value, name: str, renames: Mapping[str, str]):
    """The current spelling of ``value``: an old spelling in ``renames`` still works, with a
    ``FutureWarning`` that names the new one (``renamed("official", "variant", {"official": "released"})``
    warns and returns ``"released"``); any other value is returned as it is."""
    if isinstance(value, str) and value in renames:
        new = renames[value]
        deprecated(f"{name}={value!r}", f"{name}={new!r}")
        return new
    return value


def deprecated(old: str, new: str) -> None:
    """A ``FutureWarning``, pointing at the caller's line outside the package, that ``old`` is now ``new``."""
    warnings.warn(f"{old} is now spelled {new} (the same thing); the old spelling will stop working in a later "
                  f"release", FutureWarning, stacklevel=callers_level())


def callers_level() -> int:
    """The ``stacklevel`` of the first frame outside the package, so that a warning names the caller's line
    (not a config's ``__post_init__`` or ``unlearn``)."""
    level, frame = 2, sys._getframe(2)      # 1: the warning's caller (deprecated), 2: who called it
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("mini_unlearn."):
        level, frame = level + 1, frame.f_back
    return level


def names(value, allowed: tuple[str, ...], what: str, hint: str = "") -> tuple[str, ...]:
    """A tuple of known names (a single string is one name), duplicates dropped, order kept."""
    chosen = (value,) if isinstance(value, str) else tuple(value)
    unknown = [n for n in chosen if n not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; expected some of {allowed}{hint}")
    if not chosen:
        raise ValueError(f"no {what} to evaluate; expected some of {allowed}")
    return tuple(dict.fromkeys(chosen))


__all__ = ["WrongTypeError", "callers_level", "deprecated", "is_integer", "is_number", "names", "one_of", "positive",
           "positive_int", "renamed", "seed"]
