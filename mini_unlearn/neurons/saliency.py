"""Weight saliency: which weights matter more to the forget data than to what must be kept (chapter 06).

MMUnlearner (book/appendix/mmunlearner.md, 'The method in the paper') scores every weight θ of a module
group twice,
with the squared gradient of the loss::

    F_f[θ] = mean over forget batches   of (∂L/∂θ)²
    F_p[θ] = mean over preserve batches of (∂L/∂θ)²
    mask[θ] = (F_f[θ] + ε) / (F_p[θ] + ε) ≥ threshold          (threshold 1, ε = 1e-15)

A weight is *salient* (mask 1) when the forget data pulls on it at least as hard as the preserve
data; gradient ascent may then change it. Everything else is protected.

As in the released code, ``L`` is the batch-mean loss, so ``F`` squares batch-mean gradients (a
per-sample Fisher would square each sample's gradient; with ``batch_size=1`` it is exactly that).
The loss here is the answer-token cross-entropy the whole course uses; the released code scores the
full sequence. The sign of the loss does not matter: the gradient is squared.

**Module groups and preserve sets** (the released code's three mask files):

* ``vision`` — the vision tower and the projector; preserve = the retain people's image+text pairs;
* ``language`` — the language model; preserve = the text-only pairs of *every* fictitious person
  (the forget people included: their text knowledge is what MMUnlearner keeps) and the retain
  people's image+text pairs;
* ``both`` — the union of the two masks, each computed with its own preserve set.

**Two preserve sets, or one pooled** (``language_preserve``). The paper builds two saliency maps —
retained concepts (``F_r``, the retain people's image+text pairs) and textual knowledge (``F_t``, the
text-only pairs) — and protects a weight if *either* protects it: ``F_f < t·F_r or F_f < t·F_t``.
That is one comparison against ``max(F_r, F_t)``, which is what ``"union"`` (the default) keeps as
``F_p``. The released code pools both data sets into one preserve loader, so ``F_p`` is their
*batch-weighted mean* — never above the max, so it protects fewer weights: ``"pooled"``. (On the
vision side text-only pairs have no gradient, ``F_t = 0``, and both forms are the retain map.)

Only the weights and biases of linear layers are scored (the released code keeps the keys that
contain ``proj``, ``fc``, ``linear``, ``mlp`` or ``qkv``): norms, embeddings and the LM head are
never in a mask, so a masked method leaves them alone.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .. import distributed, validate
from ..bench.questions import IMAGE_TEXT, TEXT_ONLY
from ..bench.splits import require_ratio
from ..models import sharding
from ..models.anatomy import find_towers, part_of
from ..models.train import answer_loss
from ..models.train_data import Example, require_loss_on, one_pass_batches, scored_on, training_examples
from ..text import fit

THRESHOLD = 1.0
EPS = 1e-15
GROUPS: tuple[str, ...] = ("vision", "language")       # vision = tower + projector
LANGUAGE_PRESERVE: tuple[str, ...] = ("union", "pooled")
PRESETS: dict[str, tuple[str, ...]] = {"vision": ("vision",), "language": ("language",), "both": ("vision", "language")}


def require_preset(preset: str) -> tuple[str, ...]:
    return PRESETS[validate.one_of(preset, "preset", PRESETS, hint="which tower's weights the mask covers")]


def require_threshold(threshold) -> float:
    meaning = "a weight is salient when F_forget / F_preserve >= threshold; the paper uses 1"
    return float(validate.positive(threshold, "threshold", finite=True, hint=meaning))


# ---------------------------------------------------------------------------------------------------
# Which weights

def group_of(name: str, towers: dict[str, str]) -> str | None:
    """``"vision"`` (vision tower or projector), ``"language"`` (language model) or None (LM head, …)."""
    part = part_of(name, towers)
    return "vision" if part in ("vision", "projector") else "language" if part == "language" else None


def maskable_parameters(model: nn.Module, group: str) -> dict[str, nn.Parameter]:
    """The weights and biases of every linear layer in ``group`` (``"vision"`` or ``"language"``), by name."""
    validate.one_of(group, "group", GROUPS)
    towers = {tower: name for tower, (name, _) in find_towers(model).items()}
    chosen = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and group_of(module_name, towers) == group:
            for suffix, parameter in module.named_parameters(recurse=False):
                chosen[f"{module_name}.{suffix}"] = parameter
    return chosen


# ---------------------------------------------------------------------------------------------------
# The data each preset protects

def require_language_preserve(language_preserve: str) -> str:
    return validate.one_of(language_preserve, "language_preserve", LANGUAGE_PRESERVE,
                           hint="'union': the paper's two saliency maps; 'pooled': the released code's one preserve "
                                "loader")


def preserve_sets(bench, ratio: float, group: str, language_preserve: str = "union") -> dict[str, list[Example]]:
    """The preserve sets of a module group, by name: ``"retain"`` (the retain people's image+text pairs)
    and, for the language group, ``"text"`` (everyone's text-only pairs) — or, with
    ``language_preserve="pooled"``, the two together as one set ``"pooled"``."""
    validate.one_of(group, "group", GROUPS)
    require_ratio(ratio)
    require_language_preserve(language_preserve)
    retain = bench.split("retain", ratio).ids
    sets = {"retain": [e for e in training_examples(bench, retain, practice=False) if e.modality == IMAGE_TEXT]}
    if group == "language":
        everyone = [p.id for p in bench.profiles]
        sets["text"] = [e for e in training_examples(bench, everyone, practice=False) if e.modality == TEXT_ONLY]
        if language_preserve == "pooled":
            sets = {"pooled": sets["retain"] + sets["text"]}
    return sets


def preserve_examples(bench, ratio: float, group: str) -> list[Example]:
    """Every example the mask of a module group protects (see the module docstring), in one list."""
    return [e for examples in preserve_sets(bench, ratio, group).values() for e in examples]


def forget_examples(bench, ratio: float) -> list[Example]:
    """The forget people's image+text pairs: what MMUnlearner unlearns, and what its saliency is scored on."""
    require_ratio(ratio)
    people = bench.split("forget", ratio).ids
    forget = [e for e in training_examples(bench, people, practice=False) if e.modality == IMAGE_TEXT]
    if not forget:
        raise ValueError(f"the forget set at ratio={ratio} is empty: there is no saliency to compute")
    return forget


# ---------------------------------------------------------------------------------------------------
# Squared gradients and the mask

def _order(seed: int) -> random.Random:
    """The seeded order in which saliency passes over a data set (each example once)."""
    return random.Random(f"mini_unlearn/saliency/{seed}")


def squared_gradients(model: nn.Module, batches, parameters: dict[str, nn.Parameter], loss_fn=answer_loss
                      ) -> dict[str, torch.Tensor]:
    """``F[θ]`` = the mean over ``batches`` of the squared gradient of ``loss_fn(model, batch)``.

    Gradients are taken with ``torch.autograd.grad``: no ``.grad`` is left behind and no weight changes.
    Under a multi-process launcher each process takes its share of the batches
    (:func:`..distributed.shard`) and the sums and batch counts are added across processes. A sharded
    model (FSDP2) runs every batch on every process instead: see :func:`sharded_squared_gradients`.
    """
    if not parameters:
        raise ValueError("parameters is empty: there is nothing to score")
    names, tensors = list(parameters), list(parameters.values())
    if not distributed.holds_whole(model):
        return sharded_squared_gradients(model, batches, parameters, loss_fn)
    device = tensors[0].device
    totals = [torch.zeros_like(t, dtype=torch.float32) for t in tensors]
    n_batches = 0
    for batch in distributed.shard(batches):
        batch = {key: value.to(device) for key, value in batch.items()}
        grads = torch.autograd.grad(loss_fn(model, batch), tensors, allow_unused=True)
        for total, grad in zip(totals, grads):
            if grad is not None:
                total.add_(grad.float().square())
        n_batches += 1
    if distributed.is_distributed():
        for total in totals:
            distributed.all_sum(total)
        n_batches = int(distributed.all_sum(torch.tensor([float(n_batches)])).item())
    if n_batches == 0:
        raise ValueError("batches is empty: squared gradients need at least one batch")
    return {name: total / n_batches for name, total in zip(names, totals)}


def sharded_squared_gradients(model: nn.Module, batches, parameters: dict[str, nn.Parameter], loss_fn=answer_loss
                              ) -> dict[str, torch.Tensor]:
    """:func:`squared_gradients` of a sharded model: every process runs every batch (a sharded forward
    is a collective), so the gradient FSDP2 reduce-scatters (the processes' mean) is the batch's own,
    and each process squares and adds up its shard of it. At the end the sums are gathered whole
    (:func:`..distributed.whole`), on the CPU. The gradients go through ``.grad`` (``autograd.grad``
    cannot reach a sharded weight) and are cleared after every batch."""
    names, tensors = list(parameters), list(parameters.values())
    totals = [torch.zeros_like(distributed.local(t), dtype=torch.float32) for t in tensors]
    n_batches = 0
    device = distributed.device()
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, {key: value.to(device) for key, value in batch.items()}).backward()
        for total, tensor in zip(totals, tensors):
            if tensor.grad is not None:
                total.add_(distributed.local(tensor.grad).float().square())
        n_batches += 1
    model.zero_grad(set_to_none=True)
    if n_batches == 0:
        raise ValueError("batches is empty: squared gradients need at least one batch")
    return {name: distributed.whole(total / n_batches, tensor).cpu()
            for name, total, tensor in zip(names, totals, tensors)}


def saliency_mask(forget: dict[str, torch.Tensor], preserve: dict[str, torch.Tensor], threshold: float = THRESHOLD,
                  eps: float = EPS) -> dict[str, torch.Tensor]:
    """Boolean masks: ``(F_f + eps) / (F_p + eps) >= threshold``, element-wise, for every weight in both."""
    require_threshold(threshold)
    if set(forget) != set(preserve):
        raise ValueError(f"forget and preserve saliency must score the same weights; only in forget: "
                         f"{sorted(set(forget) - set(preserve))[:3]}, only in preserve: {sorted(set(preserve) - set(forget))[:3]}")
    masks = {}
    for name, f in forget.items():
        if f.shape != preserve[name].shape:
            raise ValueError(f"{name}: forget saliency has shape {tuple(f.shape)}, preserve {tuple(preserve[name].shape)}")
        masks[name] = (f + eps) / (preserve[name] + eps) >= threshold
    return masks


# ---------------------------------------------------------------------------------------------------
# A mask for a whole model

_LAYER = re.compile(r"\.(\d+)\.")


@dataclass
class SaliencyMask:
    """Per weight tensor, a boolean mask (True = salient: gradient ascent may change it), keyed by the
    base model's parameter names, with the group each tensor belongs to."""

    masks: dict[str, torch.Tensor]
    groups: dict[str, str]
    preset: str
    threshold: float = THRESHOLD
    eps: float = EPS
    forget: dict[str, torch.Tensor] | None = None      # F_f and F_p, kept so the threshold can be changed
    preserve: dict[str, torch.Tensor] | None = None     # F_p: max(F_r, F_t) ("union") or the pooled mean
    language_preserve: str = "union"

    def with_threshold(self, threshold: float) -> SaliencyMask:
        """The same saliency cut at another threshold (no gradients recomputed)."""
        if self.forget is None or self.preserve is None:
            raise ValueError("this mask was built without its saliencies (forget/preserve): recompute it")
        masks = saliency_mask(self.forget, self.preserve, threshold, self.eps)
        return SaliencyMask(masks, self.groups, self.preset, float(threshold), self.eps, self.forget, self.preserve,
                            self.language_preserve)

    def __contains__(self, name: str) -> bool:
        return name in self.masks

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    @property
    def total(self) -> int:
        return int(sum(m.numel() for m in self.masks.values()))

    def summary(self) -> pd.DataFrame:
        """One row per weight tensor: group, layer, module, salient entries, size and fraction."""
        rows = []
        for name, mask in self.masks.items():
            layer = _LAYER.search(name)
            module = name.rsplit(".", 2)[-2]
            if layer is not None:
                module = name[layer.end():].rsplit(".", 1)[0]
            rows.append({"parameter": name, "group": self.groups[name], "layer": int(layer.group(1)) if layer else -1,
                         "module": module, "kind": name.rsplit(".", 1)[-1],
                         "salient": int(mask.sum()), "numel": mask.numel()})
        frame = pd.DataFrame(rows)
        frame["fraction"] = (frame["salient"] / frame["numel"]).round(4)
        return frame

    def __repr__(self) -> str:
        by_group = self.summary().groupby("group")[["salient", "numel"]].sum()
        parts = ", ".join(f"{g} {r.salient / r.numel:.1%}" for g, r in by_group.iterrows())
        # shares, not counts: the weights at the threshold flip with the CPU's kernels (`.kept` has the count)
        return fit(f"SaliencyMask(preset={self.preset!r}, threshold={self.threshold}: {len(self)} tensors, "
                   f"{self.kept / max(self.total, 1):.1%} of {self.total:,} weights salient; {parts})")


def compute_saliency(vlm, bench, ratio: float = 0.05, preset: str = "both", *, threshold: float = THRESHOLD,
                     eps: float = EPS, batch_size: int = 4, seed: int = 0,
                     language_preserve: str = "union", loss_on: str = "answer") -> SaliencyMask:
    """MMUnlearner's mask for ``vlm``: forget = the forget people's image+text pairs; one mask per group
    of ``preset``, each against its own preserve sets (``F_p`` = the elementwise max of their saliencies:
    a weight is protected when any of them protects it). The cross-entropy scores the answer tokens
    (``loss_on="answer"``) or every non-pad token (``"sequence"``, as the released code labels). No
    weight of ``vlm`` changes."""
    groups = require_preset(preset)
    require_threshold(threshold)
    require_language_preserve(language_preserve)
    require_loss_on(loss_on)
    loss_fn = lambda model_, batch: answer_loss(model_, scored_on(batch, loss_on))
    validate.positive_int(batch_size, "batch_size")
    forget = forget_examples(bench, ratio)
    with sharding.for_pass(vlm) as read:      # under an FSDP2 launcher: a sharded copy
        masks, owner, forget_saliency, preserve_saliency = _saliencies(read, bench, ratio, groups, forget, loss_fn,
                                                                       batch_size, seed, threshold, eps,
                                                                       language_preserve)
    return SaliencyMask(masks, owner, preset, float(threshold), eps, forget_saliency, preserve_saliency,
                        language_preserve)


def _saliencies(vlm, bench, ratio, groups, forget, loss_fn, batch_size, seed, threshold, eps, language_preserve):
    model, processor = vlm.model, vlm.processor
    masks, owner, forget_saliency, preserve_saliency = {}, {}, {}, {}
    was_training = model.training
    model.eval()
    try:
        for group in groups:
            parameters = maskable_parameters(model, group)
            sets = preserve_sets(bench, ratio, group, language_preserve)
            empty = [name for name, examples in sets.items() if not examples]
            if empty:
                raise ValueError(f"the {group} preserve set(s) {empty} at ratio={ratio} are empty: they need retain people")
            f = squared_gradients(model, one_pass_batches(processor, forget, batch_size, _order(seed)), parameters,
                                  loss_fn)
            p = None
            for examples in sets.values():
                scored = squared_gradients(model, one_pass_batches(processor, examples, batch_size, _order(seed)),
                                           parameters, loss_fn)
                p = scored if p is None else {name: torch.maximum(p[name], value) for name, value in scored.items()}
            for name, mask in saliency_mask(f, p, threshold, eps).items():
                masks[name], owner[name] = mask, group
            forget_saliency.update(f)
            preserve_saliency.update(p)
    finally:
        model.train(was_training)
    return masks, owner, forget_saliency, preserve_saliency


# ---------------------------------------------------------------------------------------------------
# The share salient at any threshold (what chapter 06's live control draws)

def salient_shares(mask: SaliencyMask, threshold: float) -> pd.Series:
    """The share of each group's weights (and of all of them) that ``mask``'s saliencies select at
    ``threshold``: no gradients recomputed, ``mask`` itself unchanged."""
    summary = mask.with_threshold(threshold).summary()
    by_group = summary.groupby("group")[["salient", "numel"]].sum()
    shares = by_group["salient"] / by_group["numel"]
    shares["all"] = summary["salient"].sum() / summary["numel"].sum()
    shares.name = f"share salient at threshold {float(threshold):g}"
    return shares


__all__ = ["EPS", "GROUPS", "LANGUAGE_PRESERVE", "PRESETS", "SaliencyMask", "THRESHOLD", "require_language_preserve",
           "require_preset", "require_threshold", "compute_saliency", "forget_examples", "group_of", "maskable_parameters",
           "preserve_examples", "preserve_sets", "salient_shares", "saliency_mask", "sharded_squared_gradients", "squared_gradients"]
