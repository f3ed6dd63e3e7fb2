"""Chapter 06 · MMUnlearner: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_saliency_mask"]


def _saliency_cases() -> list[Case]:
    """Squared-gradient dictionaries of two weight tensors: random, with exact zeros, several thresholds."""
    import torch
    generator = torch.Generator().manual_seed(17)

    def saliency(scale):
        return {"fc1.weight": torch.rand(4, 3, generator=generator) * scale, "fc1.bias": torch.rand(4, generator=generator) * scale}
    cases = []
    for threshold in (1.0, 2.0, 0.5):
        cases.append((f"random saliencies, threshold={threshold}, eps=1e-15", (saliency(1.0), saliency(1.0), threshold, 1e-15)))
    forget, preserve = saliency(1.0), saliency(1.0)
    forget["fc1.bias"][:2] = 0.0
    preserve["fc1.bias"][1:3] = 0.0
    cases.append(("zeros in both (0/0 is decided by eps), threshold=1.0, eps=1e-15", (forget, preserve, 1.0, 1e-15)))
    cases.append(("tiny saliencies against a large eps, threshold=1.0, eps=0.1", (saliency(1e-3), saliency(1e-2), 1.0, 0.1)))
    return cases


def check_saliency_mask(fn: Callable) -> None:
    """Chapter 06: ``fn(forget, preserve, threshold, eps)`` → ``{name: bool mask}``, salient where
    ``(F_f + eps) / (F_p + eps) >= threshold``."""
    import torch

    from ..neurons.saliency import saliency_mask

    def flat(f):
        def run(forget, preserve, threshold, eps):
            masks = f(forget, preserve, threshold, eps)
            if not isinstance(masks, dict) or set(masks) != set(forget):
                raise AssertionError(f"saliency_mask must return a dict with one mask per weight {sorted(forget)}; "
                                     f"got {type(masks).__name__} {sorted(masks) if isinstance(masks, dict) else ''}")
            if any(torch.as_tensor(m).dtype != torch.bool for m in masks.values()):
                raise AssertionError("each mask must be a boolean tensor (True = salient)")
            return torch.cat([torch.as_tensor(masks[name]).flatten().float() for name in sorted(masks)])
        return run

    compare("saliency_mask", flat(fn), flat(saliency_mask), _saliency_cases(), atol=0)
