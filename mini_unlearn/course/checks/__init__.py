"""Exercise checkers: compare a learner's function with the package's on small seeded cases.

Every exercise of a chapter ends with ``mu.checks.check_<name>(your_function)``. A checker runs both
functions on a few fixed cases and either prints one success line or raises ``AssertionError``
saying which case failed, what was expected and what came back (exactly, or within a tolerance
with the largest difference for numbers), and, when the answer is one of the exercise's usual
wrong answers (``check_<name>.slips``), which mistake it is. It never reports timings or memory
addresses, so its output is the same on every run.

One module per chapter (``ch05_manu`` holds chapter 05's checkers); :mod:`.compare` is the machinery, and
:mod:`.plug` runs a chapter's experiment on the learner's function (``with mu.checks.use(fn, checker):``).
"""
from .compare import Slip, compare
from .plug import plugs_into, use
from .ch01_benchmark import *
from .ch02_vlm import *
from .ch03_measuring import *
from .ch04_gradient_ascent import *
from .ch05_manu import *
from .ch06_mmunlearner import *
from .ch07_neuron_paths import *
from .ch08_mip_editor import *
from .ch09_attacks import *
from .ch10_leaderboard import *
from .ch11_real_vlms import *
from .ch11b_scale import *
from .ch12_lasting import *
from .ch13_strangers import *
from . import (ch01_benchmark, ch02_vlm, ch03_measuring, ch04_gradient_ascent, ch05_manu, ch06_mmunlearner,
               ch07_neuron_paths, ch08_mip_editor, ch09_attacks, ch10_leaderboard, ch11_real_vlms, ch11b_scale, ch12_lasting,
               ch13_strangers)

CHAPTERS = (ch01_benchmark, ch02_vlm, ch03_measuring, ch04_gradient_ascent, ch05_manu, ch06_mmunlearner,
            ch07_neuron_paths, ch08_mip_editor, ch09_attacks, ch10_leaderboard, ch11_real_vlms, ch11b_scale,
            ch12_lasting, ch13_strangers)


def all_checkers() -> dict:
    """Every ``check_<name>`` of every chapter, by name."""
    return {name: getattr(module, name) for module in CHAPTERS for name in module.__all__}


__all__ = ["CHAPTERS", "Slip", "all_checkers", "compare", "plugs_into", "use",  # noqa: PLE0604 (every chapter's checkers)
           *(name for module in CHAPTERS for name in module.__all__)]
