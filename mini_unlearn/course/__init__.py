"""``mini_unlearn.course`` — the course's tooling, on top of the library: the library never imports it.

* :mod:`.checks` — the exercises' checkers, one module per chapter (``mu.checks.check_<name>``);
* :mod:`.exercises` — the exercise editions of the chapter notebooks (``mini-unlearn exercises``);
* :mod:`.classroom` — the chapters as nbgrader assignments (``mini-unlearn classroom``);
* :mod:`.controls` — the chapters' live controls, sliders that rerun a measurement (``mu.controls``);
* :mod:`.show` — ``mu.show_source`` and the methods' pipelines drawn (``mu.show.pipeline``);
* :mod:`.retrain` — rebuilding the shipped course models (``mini-unlearn retrain``).

``import mini_unlearn`` leaves this package unimported; ``mu.checks``, ``mu.controls``, ``mu.show`` and
``mu.show_source`` import it on first use (``mini_unlearn.__getattr__``), so the chapters read as before.
Any stage of the library may be used here; ``tests/test_layering.py`` keeps the arrow one way.
"""
from . import checks, classroom, controls, exercises, retrain, show
from .show import show_source

__all__ = ["checks", "classroom", "controls", "exercises", "retrain", "show", "show_source"]
