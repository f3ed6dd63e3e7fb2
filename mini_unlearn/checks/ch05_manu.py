"""Chapter 05 · MANU: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_importance_rms"]


def _rms_cases() -> list[Case]:
    """Per-sample activations of the two views: random, one view silent, identical views."""
    import torch
    generator = torch.Generator().manual_seed(13)
    cases = []
    for samples, neurons in ((4, 3), (9, 6), (2, 5)):
        multi = torch.randn(samples, neurons, generator=generator)
        text = torch.randn(samples, neurons, generator=generator) * 0.5
        cases.append((f"{samples} samples x {neurons} neurons, eps=1e-6", (multi, text, 1e-6)))
    multi, text = torch.randn(7, 4, generator=generator), torch.randn(6, 4, generator=generator)
    cases.append(("7 multimodal samples against 6 text-only ones (per sample, not raw sums), eps=1e-6",
                  (multi, text, 1e-6)))
    multi = torch.randn(5, 4, generator=generator)
    cases.append(("a silent text-only view (a vision neuron), eps=1e-6", (multi, torch.zeros(5, 4), 1e-6)))
    cases.append(("identical views, eps=0.01", (multi, multi.clone(), 0.01)))
    return cases


def check_importance_rms(fn: Callable) -> None:
    """Chapter 05: ``fn(z_multi, z_text, eps)`` → MANU's I_rms per neuron, from stored activations."""
    from ..models.anatomy import NeuronSite
    from ..neurons.activations import NeuronStats
    from ..neurons.importance import importance_rms

    def reference(z_multi, z_text, eps):
        site = NeuronSite("language", 0, "exercise", z_multi.shape[1], ())
        stats = [NeuronStats(site), NeuronStats(site)]
        stats[0].add(z_multi)
        stats[1].add(z_text)
        return importance_rms(*stats, eps=eps)

    compare("importance_rms", fn, reference, _rms_cases(), atol=1e-6)
