"""Chapter 01 · the benchmark: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .. import bench
from .compare import Case, compare

__all__ = ["check_text_only_twin"]


def _twin_cases(seed: int = 11) -> list[Case]:
    """Image+text MCQ and cloze questions of a small benchmark, each with its person's name."""
    small = bench.make_benchmark(n_profiles=4, seed=seed, n_utility=1)
    cases = []
    for profile in small.profiles[:2]:
        for question in small.questions[profile.id]:
            if question.modality == bench.IMAGE_TEXT and question.task in ("mcq", "cloze"):
                cases.append((f"{question.question!r} for {profile.name}", (question.question, profile.name)))
    return cases


def check_text_only_twin(fn: Callable[[str, str], str]) -> None:
    """Chapter 01: ``fn(question, name)`` turns an image+text question into its text-only twin."""
    compare("text_only_twin", fn, bench.text_only_twin, _twin_cases())
