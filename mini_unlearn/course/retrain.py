"""Rebuilding the course's shipped models: train from scratch, check the bars, write ``mini_unlearn/data/models/``.

Which models the course ships, on which benchmark and at which forget ratios, is the library's
:mod:`mini_unlearn.release`. ``python3 course.py retrain`` (or ``mini-unlearn retrain``) calls
:func:`rebuild_course_models`: it trains them from scratch in a temporary cache (15 to 24 minutes each on
the CPU that trained the shipped ones: see the ``wall_seconds`` of each card), evaluates
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

from ..evaluation import evaluate
from ..evaluation.clear import is_clear
from ..models import TrainConfig
from ..models.cache import retain_only, vanilla
from ..models.planting import PlantedConfig, make_planted, planted_key
from ..models.shipped import writable_shipped_dir, write_shipped
from ..release import (CLEAR_RATIOS, COURSE_RATIO, COURSE_RATIOS, RETRAIN_SEEDS, course_benchmark, course_clear,
                       retain_only_name, retrain_name)

BAR = 0.95
BAR_TASKS = ("mcq_letter", "mcq_likelihood", "gen", "cloze")
# which people each course model must know (retain_only never met the forget people)
KNOWS = {"vanilla": ("forget", "retain"), "retain_only": ("retain",), "planted": ("forget", "retain")}


CLEAR_BAR_TASKS = ("rougeL_recall",)   # a CLEAR model must give back its captions and answers word for word


def below_the_bar(vlm, bench, splits: tuple[str, ...], *, bar: float = BAR, ratio: float = COURSE_RATIO,
                  progress: bool = False) -> list[str]:
    """Every ``split / modality / task`` score of ``vlm`` under ``bar`` at forget ``ratio`` (empty: it passes):
    MLLMU-Bench's tasks (:data:`BAR_TASKS`), or CLEAR's ROUGE-L recall on a CLEAR benchmark."""
    tasks = CLEAR_BAR_TASKS if is_clear(bench) else BAR_TASKS
    report = evaluate(vlm, bench, ratio=ratio, splits=splits, tasks=tasks, progress=progress)
    return [f"{split} / {modality} / {task}: {report.score(split, modality, task):.3f}"
            for split in splits for modality in ("image+text", "text") for task in tasks
            if report.score(split, modality, task) < bar]


def rebuild_course_models(directory: str | Path | None = None, *, bench=None, recipe: TrainConfig | None = None,
                          bar: float = BAR, ratios: tuple[float, ...] = COURSE_RATIOS,
                          planting: PlantedConfig | None = None, clear=None,
                          clear_ratios: tuple[float, ...] = CLEAR_RATIOS, retrain_seeds: tuple[int, ...] = RETRAIN_SEEDS,
                          progress: bool = True) -> list[Path]:
    """Train the course models from scratch, check them against ``bar``, then write them to ``directory``.

    ``directory`` defaults to the checkout's ``mini_unlearn/data/models``; ``bench`` and ``recipe`` default to the
    course's (the tests pass a small benchmark and a few-step recipe); ``ratios`` are the forget ratios
    that get a retain-only model; ``planting`` is the planted model's recipe (default
    :class:`~mini_unlearn.models.PlantedConfig`), made from the retain-only model at its ratio.
    ``clear``: the CLEAR whose models continue these (default: :func:`~mini_unlearn.release.course_clear` with
    the course benchmark, none with another), a vanilla model and a retain-only one per ``clear_ratios``,
    trained with their own recipe (:data:`~mini_unlearn.models.cache.CONTINUED_RECIPES`) from the models just
    trained. ``retrain_seeds``: training seeds at which every retain-only model is trained once more (the
    retrain rows of chapter 13). Nothing is written unless every model passes.
    """
    directory = Path(directory) if directory is not None else writable_shipped_dir()
    if directory is None:
        raise ValueError("directory: not a source checkout (an installed package is not rewritten); pass the folder to write to")
    clear = clear if clear is not None else (course_clear() if bench is None else None)
    bench = bench if bench is not None else course_benchmark()
    with tempfile.TemporaryDirectory(prefix="mini_unlearn-retrain-") as cache:
        options = {"recipe": recipe, "cache_dir": cache, "retrain": True, "progress": progress}
        models = {"vanilla": vanilla(bench, **options),
                  **{retain_only_name(ratio): retain_only(bench, ratio, **options) for ratio in ratios},
                  **{retrain_name(ratio, seed): retain_only(bench, ratio, seed=seed, **options)
                     for seed in retrain_seeds for ratio in ratios}}
        planting = planting if planting is not None else PlantedConfig()
        models["planted"] = make_planted(bench, models[retain_only_name(planting.ratio)], planting, progress=progress)
        models["planted"].card["cache_key"] = planted_key(bench, planting, recipe=recipe)
        learned = {name: bench for name in models}
        if clear is not None:             # continues the models above, found in the same cache by their keys
            continued = {"cache_dir": cache, "retrain": True, "progress": progress}
            models["clear_vanilla"] = vanilla(clear, **continued)
            models.update({retain_only_name(ratio, "clear_"): retain_only(clear, ratio, **continued)
                           for ratio in clear_ratios})
            learned.update({name: clear for name in models if name.startswith("clear_")})
        failures = [f"{name}: {line}" for name, vlm in models.items()
                    for line in below_the_bar(vlm, learned[name], KNOWS[vlm.card["kind"]], bar=bar,
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


__all__ = ["BAR", "BAR_TASKS", "CLEAR_BAR_TASKS", "KNOWS", "below_the_bar", "rebuild_course_models", "rebuild_planted"]
