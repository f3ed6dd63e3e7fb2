"""mini_unlearn — machine unlearning in vision-language models, built chapter by chapter.

The data flows one way; this line is where the package states it (``tests/test_layering.py`` reads it and
holds every module to it):

    bench → models → neurons, evaluation → methods → attacks → results → course

A stage imports only the stages to its left (``neurons`` and ``evaluation`` stand side by side: neither imports the
other). Stage-free helpers (``seeding``, ``text``, ``validate``, ``distributed``) may be used by any stage.

Chapter 01 builds :mod:`mini_unlearn.bench`, chapter 02 :mod:`mini_unlearn.models`, chapter 03
:mod:`mini_unlearn.evaluation` (``mu.evaluate``), chapter 04 :mod:`mini_unlearn.methods`
(``mu.unlearn``); later chapters add the rest.

The course's tooling (:mod:`mini_unlearn.course`: the exercises' checkers, the live controls, ``show_source``)
sits on top of the library: ``import mini_unlearn`` does not import it, and ``mu.checks``, ``mu.controls``,
``mu.show`` and ``mu.show_source`` import it on first use (:func:`__getattr__` below).
"""
from ._version import VERSION

__version__ = VERSION   # pyproject.toml's version, from the installed metadata (see mini_unlearn._version)

from . import bench, models
from . import attacks, evaluation, methods, neurons
from . import distributed, results
from .evaluation import evaluate   # mu.evaluate(vlm, bench): the function; the subpackage is mu.evaluation
from .methods import unlearn   # mu.unlearn(vlm, bench, method=...): every method, one call
from .methods import unlearn_sequence   # mu.unlearn_sequence(...): the forget people in rounds (chapter 12)
from .seeding import seed_everything

# The course's tooling, by the name the chapters use: mu.checks.check_<name>(fn), mu.controls.pruning_control(...),
# mu.show.pipeline(name) (each method's pipeline, drawn), mu.show_source(fn); mu.course is all of it.
_COURSE_TOOLING = ("checks", "controls", "course", "show", "show_source")


def __getattr__(name: str):
    """``mu.checks``, ``mu.controls``, ``mu.show``, ``mu.show_source`` and ``mu.course``: the course's tooling,
    imported on first use, so that ``import mini_unlearn`` (the library) never imports the course."""
    if name not in _COURSE_TOOLING:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib   # (``from . import course`` would look the name up here first, and call this again)

    course = importlib.import_module(".course", __name__)   # the library's one import of the course (test_layering)
    found = course if name == "course" else getattr(course, name)
    globals()[name] = found   # later look-ups find it without calling __getattr__
    return found


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_COURSE_TOOLING))


__all__ = ["attacks", "bench", "checks", "controls", "distributed", "evaluate", "evaluation", "methods", "models", "neurons",
           "results", "seed_everything", "show", "show_source", "unlearn", "unlearn_sequence",
           "__version__"]
