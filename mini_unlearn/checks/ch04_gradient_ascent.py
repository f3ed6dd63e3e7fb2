"""Chapter 04 · gradient ascent and its relatives: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips

__all__ = ["check_npo_loss"]


def _npo_cases() -> list[Case]:
    """Per-sequence log-likelihoods under the model and the reference; equal, far below, above; several β."""
    import torch
    generator = torch.Generator().manual_seed(7)
    log_p = -torch.rand(5, generator=generator) * 20
    cases = [("model equal to the reference, beta=0.4", (log_p, log_p.clone(), 0.4))]
    for beta in (0.4, 0.1, 2.0):
        ref = -torch.rand(5, generator=generator) * 20
        cases.append((f"5 random sequences, beta={beta}", (log_p, ref, beta)))
    cases.append(("the model already far below the reference, beta=0.4", (log_p - 80.0, log_p, 0.4)))
    return cases


def _npo_without_scale(log_p, ref_log_p, beta):
    import torch.nn.functional as F
    return -F.logsigmoid(-beta * (log_p - ref_log_p)).mean()


def _npo_flipped(log_p, ref_log_p, beta):
    import torch.nn.functional as F
    return -(2 / beta) * F.logsigmoid(beta * (log_p - ref_log_p)).mean()


@slips(Slip(_npo_flipped, "the sign inside σ is flipped: NPO pushes log p BELOW the reference, "
                          "so the loss is −(2/β)·log σ(−β·(log p − log p_ref)), with a minus inside σ"),
       Slip(_npo_without_scale, "the 2/β in front is missing: without it the loss's gradient does not "
                                "tend to gradient ascent's as β → 0"))
def check_npo_loss(fn: Callable) -> None:
    """Chapter 04: ``fn(log_p, ref_log_p, beta)`` → the NPO loss −(2/β)·mean log σ(−β(log_p − ref_log_p))."""
    from ..methods.losses import npo_loss

    compare("npo_loss", fn, npo_loss, _npo_cases(), atol=1e-5, slips=check_npo_loss.slips, adapt=as_float)
