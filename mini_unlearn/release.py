"""Rebuilding the course's shipped models: train from scratch, check the bars, write ``mini_unlearn/data/models/``.

The course ships five trained models (:mod:`mini_unlearn.models.shipped`), all on the course
benchmark (40 people + 10 utility people, seed 0), preset ``tiny``, seed 0:

* ``vanilla``: the model that memorised everyone (chapters 02–08 start from it);
* ``retain_only``: the same recipe on everyone but the 5% forget set (NPO's reference, chapter 04;
  the "never saw them" anchor of chapter 09);
* ``retain_only@0.1`` and ``retain_only@0.15``: the same at the 10% and 15% forget sets (the
  leaderboard's anchors at those ratios, chapter 10, and NPO's reference there);
* ``planted``: the 5% retain-only model with a few new neurons per MLP layer trained to hold the
  forget people (:mod:`mini_unlearn.models.planting`): the localisation ground truth of chapters 05–08.

``python3 course.py retrain`` (or ``mini-unlearn retrain``) calls :func:`rebuild_course_models`: it
trains them from scratch in a temporary cache (15 to 24 minutes each on the CPU that trained the
shipped ones: see the ``wall_seconds`` of each card), evaluates
them with :func:`mini_unlearn.evaluate`, refuses to ship a model below the bars chapter 03 asserts
(≥95% on every task in both modalities: forget and retain people for ``vanilla``, retain people for
``retain_only``), and only then replaces the shipped folders. Run it after any change to the recipe,
the preset, the benchmark or the training code (the tests say when). ``mini-unlearn retrain
--planted-only`` (:func:`rebuild_planted`) rebuilds the planted model alone from the shipped
retain-only model, in about 3 minutes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .bench import make_benchmark
from .evaluation import evaluate
from .models import TrainConfig
from .models.cache import retain_only, retain_only_key, vanilla, vanilla_key
from .models.planting import PlantedConfig, make_planted, planted_key
from .models.shipped import writable_shipped_dir, write_shipped

COURSE_BENCHMARK = {"n_profiles": 40, "seed": 0}
COURSE_RATIO = 0.05
COURSE_RATIOS = (0.05, 0.10, 0.15)     # the leaderboard's forget ratios (chapter 10): a retain-only model each
BAR = 0.95
BAR_TASKS = ("mcq_letter", "mcq_likelihood", "gen", "cloze")
# which people each course model must know (retain_only never met the forget people)
KNOWS = {"vanilla": ("forget", "retain"), "retain_only": ("retain",), "planted": ("forget", "retain")}


def course_benchmark():
    """The benchmark every chapter uses: ``make_benchmark(n_profiles=40, seed=0)``."""
    return make_benchmark(**COURSE_BENCHMARK)


def retain_only_name(ratio: float) -> str:
    """``"retain_only"`` at the course ratio, ``"retain_only@0.1"`` at another."""
    return "retain_only" if ratio == COURSE_RATIO else f"retain_only@{ratio:g}"


def course_model_keys(bench=None) -> dict[str, dict]:
    """The cache keys the current code computes for the course models."""
    bench = bench if bench is not None else course_benchmark()
    return {"vanilla": vanilla_key(bench),
            **{retain_only_name(ratio): retain_only_key(bench, ratio) for ratio in COURSE_RATIOS},
            "planted": planted_key(bench)}


def below_the_bar(vlm, bench, splits: tuple[str, ...], *, bar: float = BAR, ratio: float = COURSE_RATIO,
                  progress: bool = False) -> list[str]:
    """Every ``split / modality / task`` score of ``vlm`` under ``bar`` at forget ``ratio`` (empty: it passes)."""
    report = evaluate(vlm, bench, ratio=ratio, splits=splits, tasks=BAR_TASKS, progress=progress)
    return [f"{split} / {modality} / {task}: {report.score(split, modality, task):.3f}"
            for split in splits for modality in ("image+text", "text") for task in BAR_TASKS
            if report.score(split, modality, task) < bar]


def rebuild_course_models(directory: str | Path | None = None, *, bench=None, recipe: TrainConfig | None = None,
                          bar: float = BAR, ratios: tuple[float, ...] = COURSE_RATIOS,
                          planting: PlantedConfig | None = None, progress: bool = True) -> list[Path]:
    """Train the course models from scratch, check them against ``bar``, then write them to ``directory``.

    ``directory`` defaults to the checkout's ``mini_unlearn/data/models``; ``bench`` and ``recipe`` default to the
    course's (the tests pass a small benchmark and a few-step recipe); ``ratios`` are the forget ratios
    that get a retain-only model; ``planting`` is the planted model's recipe (default
    :class:`~mini_unlearn.models.PlantedConfig`), made from the retain-only model at its ratio.
    Nothing is written unless every model passes.
    """
    directory = Path(directory) if directory is not None else writable_shipped_dir()
    if directory is None:
        raise ValueError("directory: not a source checkout (an installed package is not rewritten); pass the folder to write to")
    bench = bench if bench is not None else course_benchmark()
    with tempfile.TemporaryDirectory(prefix="mini_unlearn-retrain-") as cache:
        options = {"recipe": recipe, "cache_dir": cache, "retrain": True, "progress": progress}
        models = {"vanilla": vanilla(bench, **options),
                  **{retain_only_name(ratio): retain_only(bench, ratio, **options) for ratio in ratios}}
        planting = planting if planting is not None else PlantedConfig()
        models["planted"] = make_planted(bench, models[retain_only_name(planting.ratio)], planting, progress=progress)
        models["planted"].card["cache_key"] = planted_key(bench, planting, recipe=recipe)
        failures = [f"{name}: {line}" for name, vlm in models.items()
                    for line in below_the_bar(vlm, bench, KNOWS[vlm.card["kind"]], bar=bar,
                                              ratio=vlm.card.get("ratio", COURSE_RATIO), progress=progress)]
        if failures:
            raise RuntimeError(f"not shipping: below the {bar:.0%} bar\n  " + "\n  ".join(failures))
        return [write_shipped(vlm, directory) for vlm in models.values()]


def rebuild_planted(directory: str | Path | None = None, *, bench=None, planting: PlantedConfig | None = None,
                    bar: float = BAR, progress: bool = True) -> Path:
    """Make the planted model from the shipped (or cached) retain-only model, check it against
    ``bar`` on the forget and retain people, and write it to ``directory`` (default ``mini_unlearn/data/models``)."""
    directory = Path(directory) if directory is not None else writable_shipped_dir()
    if directory is None:
        raise ValueError("directory: not a source checkout (an installed package is not rewritten); pass the folder to write to")
    bench = bench if bench is not None else course_benchmark()
    planting = planting if planting is not None else PlantedConfig()
    vlm = make_planted(bench, retain_only(bench, planting.ratio, progress=progress), planting, progress=progress)
    vlm.card["cache_key"] = planted_key(bench, planting)
    failures = below_the_bar(vlm, bench, KNOWS["planted"], bar=bar, ratio=planting.ratio, progress=progress)
    if failures:
        raise RuntimeError(f"not shipping: below the {bar:.0%} bar\n  " + "\n  ".join(failures))
    return write_shipped(vlm, directory)


__all__ = ["BAR", "COURSE_BENCHMARK", "COURSE_RATIO", "COURSE_RATIOS", "KNOWS", "below_the_bar", "course_benchmark",
           "course_model_keys", "rebuild_course_models", "rebuild_planted", "retain_only_name"]
