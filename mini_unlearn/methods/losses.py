"""The losses of the gradient family, as pure functions of tensors (chapter 04).

Each takes what a forward pass gives — per-token log-probabilities of the answer, or logits — so it
can be checked on hand-made tensors. Notation: ``log_p`` is ``log π_θ(y | x)`` summed over an
answer's tokens (one number per sequence); ``ce`` is the mean token cross-entropy of a batch.

* **GA** (gradient ascent) maximises the forget loss: ``L = −CE(D_f)``.
* **NPO** (Zhang et al., 2024, "Negative Preference Optimization"):

      L = −(2/β) · E[ log σ(−β · (log π_θ(y|x) − log π_ref(y|x))) ]

  It is GA with a brake: the weight on a sequence fades once the model already finds it less
  likely than the reference does. Two limits make it legible: at ``π_θ = π_ref`` it equals
  ``(2/β)·log 2``; as ``β → 0`` it tends to ``(2/β)·log 2 + E[log π_θ − log π_ref]``, i.e. GA on
  log-likelihood plus a constant.
* **KL** to a frozen model on the retain data: ``KL(p_ref ‖ p_θ)`` at each scored token, then either
  the mean over those tokens (``reduction="token"``) or, as MLLMU-Bench's KL_Min computes
  ``F.kl_div(log_softmax(θ), softmax(ref), "batchmean")`` on ``[B, T, V]`` logits, the sum over the
  positions divided by the batch size (``reduction="released"``): about T times the token mean.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

# log p(answer) per row and the mean token CE: shared with training and the monitor
from .. import distributed, validate
from ..models.train import IGNORE_INDEX, sequence_log_probs, token_cross_entropy


def ga_loss(forget_ce: torch.Tensor) -> torch.Tensor:
    """Gradient ascent: minimise the *negative* forget cross-entropy."""
    return -forget_ce


def npo_loss(log_p: torch.Tensor, ref_log_p: torch.Tensor, beta: float = 0.4) -> torch.Tensor:
    """NPO on sequences: ``−(2/β)·mean log σ(−β·(log_p − ref_log_p))``.

    ``log_p`` / ``ref_log_p`` are per-sequence log-likelihoods under the model and the reference.
    (MLLMU-Bench's code passes batch-mean token log-likelihoods instead — ``−CE`` — one number per
    batch: see :func:`npo_loss_released`.)
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0; got {beta!r}")
    return -(2.0 / beta) * distributed.batch_mean(F.logsigmoid(-beta * (log_p - ref_log_p)))   # over all rows


def npo_loss_released(ce: torch.Tensor, ref_ce: torch.Tensor, beta: float = 0.4) -> torch.Tensor:
    """NPO as MLLMU-Bench's released code has it: the log-ratio is ``CE_θ − CE_ref`` of the whole batch
    (token means)."""
    return npo_loss(-ce, -ref_ce, beta)


def npo_loss_mllmu(ce: torch.Tensor, ref_ce: torch.Tensor, beta: float = 0.4) -> torch.Tensor:
    """The old name of :func:`npo_loss_released` (a ``FutureWarning``)."""
    validate.deprecated("npo_loss_mllmu", "npo_loss_released")
    return npo_loss_released(ce, ref_ce, beta)


KL_REDUCTIONS: tuple[str, ...] = ("token", "released")
RENAMED_REDUCTIONS: dict[str, str] = {"mllmu": "released"}   # old spelling -> new, accepted with a FutureWarning


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor,
                    reduction: str = "token") -> torch.Tensor:
    """``KL(p_ref ‖ p_θ)`` summed over the vocabulary at each scored position, then reduced:
    ``"token"`` — the mean over the scored positions; ``"released"`` — their sum divided by the batch size
    (``logits`` is ``[B, T, V]``), MLLMU-Bench's ``batchmean`` (it sums over every position, pads too).
    ``"mllmu"``, the old spelling of ``"released"``, still works with a ``FutureWarning``."""
    reduction = validate.one_of(validate.renamed(reduction, "reduction", RENAMED_REDUCTIONS), "reduction",
                                KL_REDUCTIONS)
    scored = labels != IGNORE_INDEX
    log_p = torch.log_softmax(logits.float(), dim=-1)[scored]
    log_ref = torch.log_softmax(ref_logits.float(), dim=-1)[scored]
    if log_p.shape[0] == 0:
        return logits.sum() * 0.0
    total = F.kl_div(log_p, log_ref, reduction="sum", log_target=True)
    return distributed.global_mean(total, log_p.shape[0] if reduction == "token" else logits.shape[0])


__all__ = ["IGNORE_INDEX", "KL_REDUCTIONS", "RENAMED_REDUCTIONS", "ga_loss", "kl_to_reference", "npo_loss",
           "npo_loss_mllmu", "npo_loss_released", "sequence_log_probs", "token_cross_entropy"]
