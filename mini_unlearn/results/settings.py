"""A method's *setting*: which hyperparameters a leaderboard row used, and how ``--set`` text becomes them.

Every method has two named settings on the leaderboard (chapter 10):

* ``"default"`` — the registered defaults (``mu.methods.describe()``): the papers' values where they
  apply to a model this size;
* ``"tuned"`` — what :mod:`.tuning` chose for it on the validation people, with the same budget for
  every method (:data:`.tuning.GRIDS`).

A setting is stored as the overrides only (``{}`` for the defaults), so a result says exactly what
differs from the registered method.
"""
from __future__ import annotations

import ast
import dataclasses

from ..methods import get, make_config

SETTINGS: tuple[str, ...] = ("default", "tuned")


def parse_value(text: str):
    """``"1e-4"`` → 1e-4, ``"40"`` → 40, ``"true"`` → True, ``"none"`` → None, ``"a,b"`` → ("a", "b"),
    anything else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return tuple(part.strip() for part in text.split(",")) if "," in text else text.strip()
    return tuple(value) if isinstance(value, list) else value


def parse_overrides(method: str, assignments) -> dict:
    """``["lr=1e-4", "steps=40"]`` as the method's hyperparameters, checked by its dataclass.

    A clear error for text without ``=``, a name the method does not have, or a value its config refuses.
    """
    overrides = {}
    for text in assignments or ():
        name, sep, value = str(text).partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set expects NAME=VALUE (e.g. lr=1e-4); got {text!r}")
        overrides[name.strip()] = parse_value(value)
    require_overrides(method, overrides)
    return overrides


def require_overrides(method: str, overrides: dict) -> dict:
    """``overrides`` if the method accepts them (its dataclass validates the values); else a clear error."""
    make_config(method, **overrides)
    return overrides


def require_methods(methods, tuned: dict | None) -> tuple[list[str], dict]:
    """``(methods, tuned)`` checked: ``methods`` (default: every registered one) non-empty and registered, each
    method's ``tuned`` overrides (``{method: overrides}``; a method missing from it runs at its defaults) valid."""
    from ..methods import available
    methods = list(available() if methods is None else methods)
    if not methods:
        raise ValueError("methods is empty: give at least one method")
    tuned = dict(tuned or {})
    for method in methods:
        get(method)
        require_overrides(method, dict(tuned.get(method, {})))
    return methods, tuned


def config_dict(method: str, overrides: dict) -> dict:
    """Every hyperparameter of ``method`` under ``overrides``, as JSON-ready values."""
    config = make_config(method, **overrides)
    return {f.name: jsonable(getattr(config, f.name)) for f in dataclasses.fields(get(method).config)}


def jsonable(value):
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


__all__ = ["SETTINGS", "require_overrides", "config_dict", "jsonable", "parse_overrides", "parse_value"]
