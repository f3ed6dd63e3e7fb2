"""Chapter 11 · real VLM families: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .. import bench
from .compare import Case, compare

__all__ = ["check_answer_turn"]


def _turn_cases() -> list[Case]:
    """A question with and without the portrait, in three families' chat templates (tiny processors)."""
    from ..models.families import FAMILIES
    small = bench.make_benchmark(n_profiles=2, seed=11, n_utility=1)
    cases = []
    for name in ("llava", "qwen2_5_vl", "idefics3"):
        family = FAMILIES[name]
        processor = family.build_processor(family.tiny_tokenizer(small, vocab_size=300))
        for with_image in (True, False):
            cases.append((f"{name}, {'with' if with_image else 'without'} the portrait",
                          (processor, "Where was Ann Lee born?", with_image, "Ann Lee was born in Dunmere.")))
    return cases


def check_answer_turn(fn: Callable) -> None:
    """Chapter 11: ``fn(processor, text, with_image, answer)`` → the answer turn: what the processor's chat
    template writes after its generation prompt when the conversation goes on with ``answer`` (the
    template's closing tokens included)."""
    from ..models.prompts import render_turns
    compare("answer_turn", fn, lambda *args: render_turns(*args)[1], _turn_cases())
