"""Chapter 02 · the vision-language model: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_answer_only_labels"]


def _label_cases() -> list[Case]:
    """Left-padded rows ``[pad … | prompt | answer]`` with pad id 0, as LlavaProcessor pads them."""
    import torch
    generator = torch.Generator().manual_seed(5)
    cases = []
    for pads, prompts, answers in (([0], [3], [2]), ([2, 0, 1], [3, 4, 2], [1, 2, 4]), ([3, 0], [2, 6], [1, 3])):
        width = max(p + q + a for p, q, a in zip(pads, prompts, answers))
        rows = []
        for p, q, a in zip(pads, prompts, answers):
            p += width - (p + q + a)
            rows.append([0] * p + torch.randint(1, 50, (q + a,), generator=generator).tolist())
        cases.append((f"{len(rows)} rows, prompt lengths {prompts}, answer lengths {answers}",
                      (torch.tensor(rows), torch.tensor(prompts), 0)))
    return cases


def check_answer_only_labels(fn: Callable) -> None:
    """Chapter 02: ``fn(input_ids, prompt_lengths, pad_token_id)`` → labels with -100 except on answers."""
    from ..models.train_data import answer_only_labels

    def as_list(f):
        return lambda *args: f(*args).tolist()

    compare("answer_only_labels", as_list(fn), as_list(answer_only_labels), _label_cases())
