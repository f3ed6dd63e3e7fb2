"""Chapter 03 · measuring what a model knows: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_answer_log_likelihood"]


def _log_likelihood_cases() -> list[Case]:
    """Random logits and tokens; answers of different lengths, the longest filling all but one position."""
    import torch
    generator = torch.Generator().manual_seed(3)
    cases = []
    for batch, length, vocab, answers in ((1, 4, 7, [1]), (3, 6, 11, [1, 3, 5]), (2, 9, 5, [2, 8])):
        logits = torch.randn(batch, length, vocab, generator=generator) * 3
        input_ids = torch.randint(0, vocab, (batch, length), generator=generator)
        cases.append((f"{batch} rows of {length} tokens, answer lengths {answers}",
                      (logits, input_ids, torch.tensor(answers))))
    return cases


def check_answer_log_likelihood(fn: Callable) -> None:
    """Chapter 03: ``fn(logits, input_ids, answer_lengths)`` → log p(answer | prompt) per row."""
    from ..evaluation import answer_log_likelihood

    compare("answer_log_likelihood", fn, answer_log_likelihood, _log_likelihood_cases(), atol=1e-4)
