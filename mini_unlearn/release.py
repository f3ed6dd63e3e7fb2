"""The course's shipped models: the benchmark they learned, the forget ratios, the cache keys they carry.

The course ships fourteen trained models (:mod:`mini_unlearn.models.shipped`), all on the course
benchmark (40 people + 10 utility people, seed 0), preset ``tiny``, training seed 0 unless named:

* ``vanilla``: the model that memorised everyone (chapters 02–08 start from it);
* ``retain_only``: the same recipe on everyone but the 5% forget set (NPO's reference, chapter 04;
  the "never saw them" anchor of chapter 09);
* ``retain_only@0.1`` and ``retain_only@0.15``: the same at the 10% and 15% forget sets (the
  leaderboard's anchors at those ratios, chapter 10, and NPO's reference there);
* ``retain_only/seed1``, ``retain_only@0.1/seed1`` and ``retain_only@0.15/seed1``: the retain-only
  recipe once more at training seed 1 (:data:`RETRAIN_SEEDS`): exact unlearning done twice, whose
  difference from seed 0 is how close "as good as retraining" can be (chapter 13's *retrain* rows);
* ``planted``: the 5% retain-only model with a few new neurons per MLP layer trained to hold the
  forget people (:mod:`mini_unlearn.models.planting`): the localisation ground truth of chapters 05–08;

and three on the course's CLEAR (:func:`course_clear`: the same 40 people in CLEAR's shape), each continuing
the course model of the same name (:data:`mini_unlearn.models.cache.CONTINUED_RECIPES`):

* ``clear_vanilla``: the vanilla model taught every CLEAR caption and answer (chapter 12);
* ``clear_retain_only`` and ``clear_retain_only@0.1``: the retain-only models at 5% and 10% taught the
  retain people's (CLEAR's forget05 and forget10 leave out the course's forget people at those ratios).

:func:`course_benchmark` is the benchmark the chapters, ``mini-unlearn --bench course`` and the timing
scripts use; :func:`course_model_keys` the cache keys the current code computes for the course models (a
shipped folder loads only when its recorded key equals them). Rebuilding the models, after any change to
the recipe, the preset, the benchmark or the training code, is the course's tooling:
``python3 course.py retrain`` (or ``mini-unlearn retrain``).
"""
from __future__ import annotations

from .bench import make_benchmark, make_clear
from .models.cache import retain_only_key, vanilla_key
from .models.planting import planted_key

COURSE_BENCHMARK = {"n_profiles": 40, "seed": 0}
COURSE_RATIO = 0.05
COURSE_RATIOS = (0.05, 0.10, 0.15)     # the leaderboard's forget ratios (chapter 10): a retain-only model each
CLEAR_RATIOS = (0.05, 0.10)            # CLEAR's forget05 and forget10 on the course's people: a retain-only model each
RETRAIN_SEEDS = (1,)                   # the retain-only recipe again at these training seeds: the "retrain" rows (ch. 13)


def course_benchmark():
    """The benchmark every chapter uses: ``make_benchmark(n_profiles=40, seed=0)``."""
    return make_benchmark(**COURSE_BENCHMARK)


def course_clear():
    """The course's CLEAR: ``make_clear(n_profiles=40, seed=0)``, the course benchmark's people in CLEAR's shape
    (its ``base``)."""
    return make_clear(**COURSE_BENCHMARK)


def retain_only_name(ratio: float, prefix: str = "") -> str:
    """``"retain_only"`` at the course ratio, ``"retain_only@0.1"`` at another (after ``prefix``)."""
    return prefix + ("retain_only" if ratio == COURSE_RATIO else f"retain_only@{ratio:g}")


def retrain_name(ratio: float, seed: int) -> str:
    """``"retain_only/seed1"``, ``"retain_only@0.1/seed1"``: the retain-only model retrained at training ``seed``."""
    return f"{retain_only_name(ratio)}/seed{seed}"


def course_model_keys(bench=None, clear=None) -> dict[str, dict]:
    """The cache keys the current code computes for the course models (the CLEAR ones on ``clear``, default
    :func:`course_clear` when ``bench`` is the course's; none for another ``bench`` without a ``clear``)."""
    clear = clear if clear is not None else (course_clear() if bench is None else None)
    bench = bench if bench is not None else course_benchmark()
    keys = {"vanilla": vanilla_key(bench),
            **{retain_only_name(ratio): retain_only_key(bench, ratio) for ratio in COURSE_RATIOS},
            **{retrain_name(ratio, seed): retain_only_key(bench, ratio, seed=seed)
               for seed in RETRAIN_SEEDS for ratio in COURSE_RATIOS},
            "planted": planted_key(bench)}
    if clear is not None:
        keys["clear_vanilla"] = vanilla_key(clear)
        keys.update({retain_only_name(ratio, "clear_"): retain_only_key(clear, ratio) for ratio in CLEAR_RATIOS})
    return keys


__all__ = ["CLEAR_RATIOS", "COURSE_BENCHMARK", "COURSE_RATIO", "COURSE_RATIOS", "RETRAIN_SEEDS", "course_benchmark",
           "course_clear", "course_model_keys", "retain_only_name", "retrain_name"]
