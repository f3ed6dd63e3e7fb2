"""The package's one version number: ``version`` in ``pyproject.toml``, nowhere else.

An installed package (``pip install``, a wheel, ``pip install -e .``) reads it from its metadata with
:mod:`importlib.metadata`. A source tree that was never installed (the checkout on ``PYTHONPATH``) has no
metadata: it reads the ``pyproject.toml`` beside the package instead. Anything else says
:data:`UNKNOWN`, a valid PEP 440 version that sorts before every release.
"""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "mini_unlearn"
UNKNOWN = "0+unknown"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def source_tree_version(pyproject: Path | None = None) -> str | None:
    """``version`` of the ``[project]`` table of ``pyproject`` (default :data:`PYPROJECT`) when that table
    names this package; None when there is no such file, table or key.

    A regular expression rather than :mod:`tomllib`, which Python 3.10 (still supported) lacks."""
    pyproject = Path(pyproject) if pyproject is not None else PYPROJECT
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    if project is None or not re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', project.group(1), re.MULTILINE):
        return None
    found = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
    return found.group(1) if found else None


def package_version() -> str:
    """The installed distribution's version; else the source tree's ``pyproject.toml``; else :data:`UNKNOWN`."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return source_tree_version() or UNKNOWN


VERSION = package_version()   # read once, when the package is imported: mini_unlearn.__version__

__all__ = ["DISTRIBUTION", "PYPROJECT", "UNKNOWN", "VERSION", "package_version", "source_tree_version"]
