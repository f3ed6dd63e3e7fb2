"""Chapter 09 · attacks: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_min_k_score", "check_truth_ratio"]


def _min_k_cases() -> list[Case]:
    """Answers' token log-probabilities of several lengths, and fractions k where ⌈k·n⌉ ≠ ⌊k·n⌋."""
    import numpy as np
    rng = np.random.default_rng(29)
    cases = []
    for n, k in ((10, 0.2), (7, 0.2), (5, 0.5), (3, 0.1), (12, 1.0), (1, 0.2)):
        log_probs = -rng.exponential(1.5, size=n)
        cases.append((f"{n} tokens, k={k}", (log_probs, k)))
    return cases


def check_min_k_score(fn: Callable) -> None:
    """Chapter 09: ``fn(log_probs, k)`` → Min-K%: the mean of the lowest ``⌈k·n⌉`` of the ``n`` token
    log-probabilities (at least one token)."""
    from ..attacks.membership import lowest_mean
    compare("min_k_score", lambda lp, k: float(fn(lp, k)), lowest_mean, _min_k_cases(), atol=1e-9)


def _truth_cases() -> list[Case]:
    """Four options' mean log-likelihoods, the right one at each index in turn."""
    import torch
    generator = torch.Generator().manual_seed(31)
    cases = []
    for correct in (0, 1, 2, 3):
        scores = -torch.rand(4, generator=generator, dtype=torch.float64) * 4
        cases.append((f"correct option {'ABCD'[correct]}", (scores, correct)))
    cases.append(("a model sure of the right option", (torch.tensor([-0.01, -6.0, -5.0, -7.0], dtype=torch.float64), 0)))
    return cases


def check_truth_ratio(fn: Callable) -> None:
    """Chapter 09: ``fn(log_likelihoods, correct)`` → TOFU's truth ratio: the mean over the wrong options of
    ``exp(log p̄(wrong) − log p̄(correct))``."""
    from ..attacks.forget_quality import truth_ratio
    compare("truth_ratio", lambda ll, c: float(fn(ll, c)), truth_ratio, _truth_cases(), atol=1e-9)
