"""mini_unlearn — machine unlearning in vision-language models, built chapter by chapter.

    bench → models → methods → evaluate → attacks

Chapter 01 builds :mod:`mini_unlearn.bench`, chapter 02 :mod:`mini_unlearn.models`, chapter 03
:mod:`mini_unlearn.evaluation` (``mu.evaluate``), chapter 04 :mod:`mini_unlearn.methods`
(``mu.unlearn``); later chapters add the rest.
"""
from ._version import package_version

__version__ = package_version()   # pyproject.toml's version, from the installed metadata (see mini_unlearn._version)

from . import bench, checks, models
from . import attacks, evaluation, methods, neurons
from . import distributed, results
from .evaluation import evaluate   # mu.evaluate(vlm, bench): the function; the subpackage is mu.evaluation
from .methods import unlearn   # mu.unlearn(vlm, bench, method=...): every method, one call
from .seeding import seed_everything
from . import show   # mu.show.pipeline(name): each method's pipeline, drawn
from .show import show_source

__all__ = ["attacks", "bench", "checks", "distributed", "evaluate", "evaluation", "methods", "models", "neurons", "results", "seed_everything", "show", "show_source", "unlearn",
           "__version__"]
