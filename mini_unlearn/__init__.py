"""mini_unlearn — machine unlearning in vision-language models, built chapter by chapter.

    bench → models → methods → evaluate → attacks

Chapter 01 builds :mod:`mini_unlearn.bench`; later chapters add the rest.
"""
from . import bench, checks
from .seeding import seed_everything
from .show import show_source

__version__ = "0.1.0"
__all__ = ["bench", "checks", "seed_everything", "show_source", "__version__"]
