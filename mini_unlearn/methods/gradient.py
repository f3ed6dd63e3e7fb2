"""The gradient family of MLLMU-Bench's baselines: GA, GA_Diff, KL_Min and NPO (chapter 04).

All four push the forget data's likelihood down by gradient steps; they differ in what holds the
rest of the model in place (book/appendix/baselines.md, 'The losses' and 'Which tokens the loss sees'):

* ``ga`` — gradient ascent on the forget pairs alone: ``L = −CE(D_f)``;
* ``ga_diff`` — plus the ordinary loss on retain pairs: ``L = −CE(D_f) + λ·CE(D_r)``;
* ``kl_min`` — plus, on retain pairs, the CE and the KL to the frozen input model:
  ``L = −CE(D_f) + CE(D_r) + λ_KL·KL(p_input ‖ p_θ)``;
* ``npo`` — Negative Preference Optimization with β = 0.4 against a reference model.

Differences from MLLMU-Bench's code, on purpose:

* GA_Diff there makes one GA pass over all forget batches, *then* one descent pass over all retain
  batches per epoch; here every step takes one forget and one retain batch (the usual gradient
  difference). With a few dozen steps, the sequential form would end on pure retain descent.
* NPO there uses the *batch-mean token* log-ratio; the NPO paper uses per-sequence log-ratios.
  ``variant="paper"`` (the default) is the paper's; ``variant="released"`` is the code's.
* Full fine-tuning of the tiny model, not LoRA, and learning rates and step counts measured on the
  course model (MLLMU-Bench: LoRA r=16, lr 2e-5, batch 4, one epoch on a 7B model).
* The losses score the answer tokens only (``loss_on="answer"``, the default: the knowledge to forget
  is in the answer, and the course model was trained on answers only). MLLMU-Bench's code scores every
  non-pad token, prompt and image placeholders included: ``loss_on="sequence"``.
* KL_Min's KL is a mean per scored token (``kl_reduction="token"``). MLLMU-Bench's
  ``F.kl_div(..., reduction="batchmean")`` on ``[B, T, V]`` logits sums over the positions and divides
  by the batch size only — about T times larger: ``kl_reduction="released"``.

``"released"`` was spelled ``"mllmu"`` before; the old spelling still works, with a ``FutureWarning``.

Each method can forget on the forget people's image+text pairs, their text-only pairs, or both
(``forget_on``), and update all parameters or one side (``train``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.train import answer_logits, answer_loss
from ..models.vlm import VLM
from .. import validate
from .base import register
from .data import require_forget_on, require_loss_on, scored_on, unlearning_sets
from .loop import require_trainable, low_rank, run_gradient_loop, trainable_parameters
from .losses import (KL_REDUCTIONS, RENAMED_REDUCTIONS, ga_loss, kl_to_reference, npo_loss, npo_loss_released,
                     sequence_log_probs, token_cross_entropy)


@dataclass(frozen=True)
class GradientConfig:
    """Shared by the gradient family. Defaults: the settings chapter 04 measures on the course's tiny model."""

    steps: int = 100
    lr: float = 3e-5
    batch_size: int = 8
    forget_on: str = "image+text"     # which forget pairs: "image+text", "text" or "both"
    train: str = "all"                # which parameters: "all", "language" or "vision" (tower + projector)
    grad_clip: float = 1.0
    seed: int = 0
    loss_on: str = "answer"           # which tokens the losses score: "answer" or "sequence" (every non-pad token)
    lora_rank: int = 0                # > 0: train LoRA adapters on `train`'s linear layers, merged after (7 B on one GPU)

    def __post_init__(self):
        validate.positive_int(self.steps, "steps")
        validate.positive_int(self.lora_rank, "lora_rank", allow_zero=True)
        validate.positive(self.lr, "lr", hint="the learning rate")
        validate.positive_int(self.batch_size, "batch_size")
        validate.positive(self.grad_clip, "grad_clip")
        require_forget_on(self.forget_on)
        require_trainable(self.train)
        validate.seed(self.seed)
        require_loss_on(self.loss_on)


@dataclass(frozen=True)
class GAConfig(GradientConfig):
    """Gradient ascent: no retain term."""


@dataclass(frozen=True)
class GADiffConfig(GradientConfig):
    """Gradient difference: ``retain_weight`` (λ) scales the retain cross-entropy."""

    retain_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        validate.positive(self.retain_weight, "retain_weight", allow_zero=True)


@dataclass(frozen=True)
class KLMinConfig(GradientConfig):
    """KL minimisation: ``kl_weight`` (λ_KL) scales the KL to the input model on retain data.
    ``kl_reduction``: ``"token"`` (mean per scored token) or ``"released"`` (summed over the scored
    positions, divided by the batch size: MLLMU-Bench's ``batchmean``)."""

    kl_weight: float = 1.0
    kl_reduction: str = "token"

    def __post_init__(self):
        super().__post_init__()
        validate.positive(self.kl_weight, "kl_weight", allow_zero=True)
        object.__setattr__(self, "kl_reduction",
                           validate.renamed(self.kl_reduction, "kl_reduction", RENAMED_REDUCTIONS))
        validate.one_of(self.kl_reduction, "kl_reduction", KL_REDUCTIONS)


NPO_REFERENCES: tuple[str, ...] = ("retain_only", "initial")
NPO_VARIANTS: tuple[str, ...] = ("paper", "released")
NPO_RENAMED_VARIANTS: dict[str, str] = {"mllmu": "released"}   # old spelling -> new, accepted with a FutureWarning


@dataclass(frozen=True)
class NPOConfig(GradientConfig):
    """NPO. ``reference``: ``"retain_only"`` (MLLMU-Bench: the vanilla recipe on the retain people,
    ``mu.models.retain_only``), ``"initial"`` (the NPO paper: the model before unlearning) or a VLM.
    ``variant``: ``"paper"`` (per-sequence log-ratio) or ``"released"`` (batch-mean token log-ratio).
    ``retain_weight`` > 0 adds a retain cross-entropy (MLLMU-Bench's NPO has none)."""

    beta: float = 0.4
    reference: object = "retain_only"
    variant: str = "paper"
    retain_weight: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        validate.positive(self.beta, "beta")
        validate.positive(self.retain_weight, "retain_weight", allow_zero=True)
        if not isinstance(self.reference, VLM) and self.reference not in NPO_REFERENCES:
            raise ValueError(f"reference must be one of {NPO_REFERENCES} or a VLM; got {self.reference!r}")
        object.__setattr__(self, "variant", validate.renamed(self.variant, "variant", NPO_RENAMED_VARIANTS))
        validate.one_of(self.variant, "variant", NPO_VARIANTS)


def _run(vlm, config, forget, retain, loss_fn, name, progress, monitor, probe_every):
    def scored_loss_fn(model, forget_batch, retain_batch):       # relabel for loss_on, then the method's loss
        return loss_fn(model, scored_on(forget_batch, config.loss_on), scored_on(retain_batch, config.loss_on))
    options = dict(steps=config.steps, lr=config.lr, batch_size=config.batch_size, grad_clip=config.grad_clip,
                   train=config.train, seed=config.seed, progress=progress, monitor=monitor, probe_every=probe_every,
                   desc=name)
    if not config.lora_rank:
        return run_gradient_loop(vlm, forget, retain, scored_loss_fn, **options)
    with low_rank(vlm, config.train, config.lora_rank) as adapters:
        return run_gradient_loop(vlm, forget, retain, scored_loss_fn, parameters=adapters, **options)


def _sets(vlm, bench, ratio, config, progress=True):
    forget, retain = unlearning_sets(bench, ratio, config.forget_on)
    return {"forget": forget, "retain": retain}


def npo_reference(vlm: VLM, bench, ratio: float, reference, progress: bool = True) -> VLM:
    """The reference model NPO compares with (see :class:`NPOConfig`)."""
    if isinstance(reference, VLM):
        return reference
    if reference == "initial":
        return vlm
    card = vlm.card or {}
    if "preset" not in card or "seed" not in card or card.get("benchmark") != bench.name:
        raise ValueError(
            "npo with reference='retain_only' trains the vanilla recipe on the retain people, which needs a model "
            f"made by mu.models.vanilla for this benchmark ({bench.name!r}); this model's card has "
            f"preset={card.get('preset')!r}, seed={card.get('seed')!r}, benchmark={card.get('benchmark')!r}. "
            "Pass reference='initial' (the model before unlearning) or reference=<a VLM>.")
    from ..models.cache import retain_only
    return retain_only(bench, ratio, preset=card["preset"], seed=card["seed"], device=vlm.device, progress=progress)


def _npo_prepare(vlm, bench, ratio, config, progress=True):
    context = _sets(vlm, bench, ratio, config)
    context["reference"] = npo_reference(vlm, bench, ratio, config.reference, progress)
    return context


def _trained(model, config) -> list:
    """What a gradient method updates: the parameters of ``config.train`` (:func:`.loop.trainable_parameters`)."""
    return trainable_parameters(model, config.train)


# what every gradient method registers besides its config: what it trains, its tuning grid (learning rate ×
# steps, on both modalities' pairs) and a run of seconds
GRADIENT = dict(trains=_trained, shards=True, grid={"lr": [3e-5, 1e-4, 3e-4], "steps": [50, 100], "forget_on": ["both"]},
                quick={"steps": 2})


@register("ga", GAConfig, "gradient ascent on the forget pairs", prepare=_sets, **GRADIENT)
def gradient_ascent(vlm, bench, ratio, config, *, forget, retain, original, progress, monitor, probe_every):
    def loss_fn(model, forget_batch, _):
        forget_ce = answer_loss(model, forget_batch)
        return {"loss": ga_loss(forget_ce), "forget_ce": forget_ce}
    return _run(vlm, config, forget, None, loss_fn, "ga", progress, monitor, probe_every)


def ga_diff_loss(model, forget_batch: dict, retain_batch: dict, retain_weight: float) -> dict:
    """GA_Diff's loss on one forget and one retain batch: ``−CE(D_f) + λ·CE(D_r)``, each CE the mean over
    the batch's scored tokens (:func:`..models.train.answer_loss`); with the two CEs, which the loop logs.

    :func:`gradient_difference` calls it through this module's global, so chapter 04 can plug in the
    learner's own (``mu.checks.use``)."""
    forget_ce, retain_ce = answer_loss(model, forget_batch), answer_loss(model, retain_batch)
    return {"loss": ga_loss(forget_ce) + retain_weight * retain_ce, "forget_ce": forget_ce, "retain_ce": retain_ce}


@register("ga_diff", GADiffConfig, "gradient ascent on forget + descent on retain pairs", prepare=_sets, **GRADIENT)
def gradient_difference(vlm, bench, ratio, config, *, forget, retain, original, progress, monitor, probe_every):
    def loss_fn(model, forget_batch, retain_batch):
        return ga_diff_loss(model, forget_batch, retain_batch, config.retain_weight)
    return _run(vlm, config, forget, retain, loss_fn, "ga_diff", progress, monitor, probe_every)


@register("kl_min", KLMinConfig, "gradient ascent on forget + CE and KL to the input model on retain",
          prepare=_sets, reads_input=True, **GRADIENT)
def kl_minimisation(vlm, bench, ratio, config, *, forget, retain, original, progress, monitor, probe_every):
    reference = original.model

    def loss_fn(model, forget_batch, retain_batch):
        forget_ce = answer_loss(model, forget_batch)
        logits, labels = answer_logits(model, retain_batch)
        with torch.no_grad():
            ref_logits, _ = answer_logits(reference, retain_batch)
        retain_ce = token_cross_entropy(logits, labels)
        kl = kl_to_reference(logits, ref_logits, labels, reduction=config.kl_reduction)
        return {"loss": ga_loss(forget_ce) + retain_ce + config.kl_weight * kl,
                "forget_ce": forget_ce, "retain_ce": retain_ce, "kl": kl}
    return _run(vlm, config, forget, retain, loss_fn, "kl_min", progress, monitor, probe_every)


# while tuning, NPO's reference is the model before unlearning: the retain-only model of the validation
# people would have to be trained (mini_unlearn.results.tuning says why)
@register("npo", NPOConfig, "negative preference optimisation against a reference model (β = 0.4)",
          prepare=_npo_prepare, holds_reference=True,
          **{**GRADIENT, "while_tuning": {"reference": "initial"}, "quick": {"steps": 2, "reference": "initial"}})
def negative_preference_optimisation(vlm, bench, ratio, config, *, forget, retain, original, reference, progress,
                                     monitor, probe_every):
    ref_model = reference.model
    ref_model.eval()

    def loss_fn(model, forget_batch, retain_batch):
        logits, labels = answer_logits(model, forget_batch)
        with torch.no_grad():
            ref_logits, _ = answer_logits(ref_model, forget_batch)
        if config.variant == "paper":
            loss = npo_loss(sequence_log_probs(logits, labels), sequence_log_probs(ref_logits, labels), config.beta)
        else:
            loss = npo_loss_released(token_cross_entropy(logits, labels), token_cross_entropy(ref_logits, labels),
                                     config.beta)
        out = {"loss": loss, "npo": loss.detach(), "forget_ce": token_cross_entropy(logits.detach(), labels)}
        if retain_batch is not None:
            retain_ce = answer_loss(model, retain_batch)
            out["loss"] = loss + config.retain_weight * retain_ce
            out["retain_ce"] = retain_ce
        return out
    return _run(vlm, config, forget, retain if config.retain_weight > 0 else None, loss_fn, "npo", progress,
                monitor, probe_every)


__all__ = ["GAConfig", "GADiffConfig", "GradientConfig", "KLMinConfig", "NPOConfig", "NPO_REFERENCES",
           "NPO_RENAMED_VARIANTS", "NPO_VARIANTS", "ga_diff_loss", "npo_reference"]
