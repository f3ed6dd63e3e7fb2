"""MIP-Editor — localise neuron paths, then edit along them (Li et al., AAAI 2026; chapter 08).

1. **localise** (:mod:`mini_unlearn.neurons.paths`): IGI paths through the language model's MLP
   neurons from the forget people's text-only pairs, and IFI paths through the vision tower's MLP
   neurons from their image+text pairs; top-k per layer, united over the samples;
2. **edit** with RMisU (:mod:`.rmisu`) at language-model layer ℓ, updating only the rows of the
   producing weights (``gate_proj``/``up_proj``; ``fc1`` and its bias in the vision tower) of the
   path neurons. Every other weight stays bit-identical.

The paper's ablations are options: ``branches=("igi",)`` or ``("ifi",)`` (one branch only),
``localise="point"`` (point-wise attribution instead of paths), ``localise="none"`` (full-model
RMisU: every parameter trains), ``edit="prune"`` (zero the path neurons, no training).

**The target layer.** The loss is read at layer ℓ, so only path neurons at or below ℓ (and every
vision neuron, which feeds the language model through the image tokens) can receive a gradient. The
released code reads layer 7 of a 36-layer model and marks path neurons in layers 8–35 trainable
although they can never change; here a language path neuron above ℓ is an error, raised before any
weight changes. The default ℓ is the last layer, which reaches them all.

The paper prunes the path neurons *and then* fine-tunes them; if they were zeroed at every position,
SwiGLU would give their rows zero gradient and RMisU could not move them (book/appendix/mip_editor.md,
'Editing'). So ``edit``
is either ``"rmisu"`` (no zeroing; what the released code effectively does) or ``"prune"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..bench.questions import IMAGE_TEXT, TEXT_ONLY
from ..models.anatomy import find_mlp_neurons
from ..models.train import answer_loss
from ..models.train_data import training_examples
from ..neurons.edit import prune_neurons
from ..neurons.paths import BRANCHES, K, M, NeuronPaths, require_k_m, require_variant, find_paths
from .. import distributed, validate
from .base import UnlearnLog, register
from .data import require_loss_on, scored_on, unlearning_sets
from .loop import run_gradient_loop
from .rmisu import (TARGET_NORMS, RepresentationConfig, require_mse_positions, capture_hidden, control_vector,
                    hidden_states, mean_token_norm, mse_mask, resolve_layer, retain_representation_loss,
                    rmisu_forget_loss)

LOCALISE: tuple[str, ...] = ("path", "point", "none")
EDITS: tuple[str, ...] = ("rmisu", "prune")


@dataclass(frozen=True)
class MIPEditorConfig(RepresentationConfig):
    """Localisation: ``k`` neurons per layer, ``m`` interpolation steps, attribution ``variant``
    (``"paper"``, ``"neuron_ig"`` or ``"released"``; :mod:`~mini_unlearn.neurons.paths`), ``branches``
    (``"igi"``, ``"ifi"`` or both), ``localise`` (``"path"``, ``"point"`` or ``"none"``). Editing:
    ``edit`` (``"rmisu"`` or ``"prune"``) at language layer ``layer`` (None: the last) with target scale
    ``lam`` (λ) times each token's norm (``target_norm="token"``) or the first forget batch's mean token
    norm (``"first_batch"``, the released code's commented-out line), retain-representation weight
    ``gamma`` (γ) and retain cross-entropy weight ``retain_ce_weight``, the retain CE on the answer
    tokens (``loss_on="answer"``) or every non-pad token (``"sequence"``, as the released code labels),
    and the two MSEs averaged over the real tokens (``mse_positions="real"``) or over every position,
    pads included (``"all"``, as the released code; :mod:`.rmisu`); ``lr`` = 5e-3 and 60 steps are
    measured on the course model (released: 5e-4, one epoch; the paper: 2e-5 with LoRA, 4 epochs)."""

    lr: float = 5e-3
    k: int = K
    m: int = M
    variant: str = "paper"
    branches: tuple[str, ...] = ("igi", "ifi")
    localise: str = "path"
    edit: str = "rmisu"
    lam: float = 5.0
    gamma: float = 1.0
    retain_ce_weight: float = 1.0
    target_norm: str = "token"
    loss_on: str = "answer"
    mse_positions: str = "real"

    def __post_init__(self):
        super().__post_init__()
        require_k_m(self.k, self.m)
        require_variant(self.variant)
        branches = (self.branches,) if isinstance(self.branches, str) else tuple(self.branches)
        if not branches or any(b not in BRANCHES for b in branches):
            raise ValueError(f"branches must be a non-empty selection of {tuple(BRANCHES)}; got {self.branches!r}")
        object.__setattr__(self, "branches", branches)
        validate.one_of(self.localise, "localise", LOCALISE)
        validate.one_of(self.edit, "edit", EDITS)
        if self.localise == "none" and self.edit == "prune":
            raise ValueError("edit='prune' needs neurons to prune: use localise='path' or 'point'")
        validate.positive(self.lam, "lam", finite=True)
        require_loss_on(self.loss_on)
        require_mse_positions(self.mse_positions)
        validate.one_of(self.target_norm, "target_norm", TARGET_NORMS)
        for name in ("gamma", "retain_ce_weight"):
            validate.positive(getattr(self, name), name, allow_zero=True, finite=True)


def localise(vlm, bench, ratio: float, config: MIPEditorConfig, progress: bool = False) -> dict[str, NeuronPaths]:
    """IGI and/or IFI paths (or point-wise top-k) of the forget people: ``{branch: NeuronPaths}``."""
    people = bench.split("forget", ratio).ids
    pairs = training_examples(bench, people, practice=False)
    found = {}
    for branch in config.branches:
        modality = TEXT_ONLY if branch == "igi" else IMAGE_TEXT
        found[branch] = find_paths(vlm, [e for e in pairs if e.modality == modality], branch, k=config.k, m=config.m,
                                   cascade=config.localise == "path", variant=config.variant, progress=progress)
    return found


def selection(found: dict[str, NeuronPaths]) -> dict[str, torch.Tensor]:
    """Every located neuron, as ``{site name: indices}`` (the format of :func:`~mini_unlearn.neurons.prune_neurons`)."""
    return {name: indices for paths in found.values() for name, indices in paths.union.items() if len(indices)}


def require_reachable(found: dict[str, NeuronPaths], layer: int) -> None:
    """A clear error when a language path neuron lies above the target layer (no gradient can reach it)."""
    for paths in found.values():
        for site in paths.sites:
            if site.tower == "language" and site.layer > layer and len(paths.union[site.name]):
                raise ValueError(
                    f"the {paths.branch} paths hold {len(paths.union[site.name])} neurons in language layer {site.layer}, "
                    f"above the target layer {layer}: RMisU's loss is read after layer {layer}, so their weights "
                    f"would never change (the released code's layer 7 leaves later path neurons untouched). "
                    f"Use layer >= {site.layer} (or layer=None for the last layer).")


def row_mask(parameter: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
    """The rows of a producing ``parameter`` that the ``neurons`` own, as a boolean mask broadcastable to it.

    Neuron ``i`` of an MLP is computed by row ``i`` of each producer — ``gate_proj``/``up_proj`` (``fc1``
    in the vision tower), weight ``[neurons, in]`` and bias ``[neurons]`` — so editing the neuron means
    editing those rows. The mask has one entry per row, shape ``[rows, 1, …]`` (``[rows]`` for a bias):
    True on the ``neurons``' rows, False elsewhere; it multiplies the gradient by broadcasting, so even a
    7-billion-parameter model needs no mask entry per weight."""
    rows = torch.zeros(parameter.shape[0], dtype=torch.bool)
    rows[neurons] = True
    return rows.view(-1, *([1] * (parameter.dim() - 1)))


def path_rows(model, chosen: dict[str, torch.Tensor]) -> tuple[list[torch.nn.Parameter], dict[int, torch.Tensor]]:
    """The producing parameters of the chosen neurons and, per parameter, a mask of the rows they own
    (:func:`row_mask`)."""
    parameters, masks = [], {}
    for site in find_mlp_neurons(model):
        if site.name not in chosen:
            continue
        for producer in site.producer_modules(model):
            for parameter in producer.parameters():
                parameters.append(parameter)
                masks[id(parameter)] = distributed.local_part(row_mask(parameter, chosen[site.name]), parameter)
    return parameters, masks


def rmisu_step(model, frozen, forget_batch: dict, retain_batch: dict, optimizer, parameters: list, masks: dict | None,
               config: MIPEditorConfig, layer: int, u: torch.Tensor, norm: torch.Tensor | None = None) -> dict:
    """One RMisU edit step along the path rows; returns the loss and its three terms (to log).

    1. the edited ``model``: ``h`` after language layer ``layer`` on the forget batch, then the retain
       batch's cross-entropy (labelled for ``config.loss_on`` by the caller) and its ``h``, from the
       same forward pass;
    2. the ``frozen`` input model, without gradients: both batches' ``h``;
    3. ``mean‖h_f − λ‖h_f^frozen‖u‖² + γ·mean‖h_r − h_r^frozen‖² + retain_ce_weight·CE``, the means
       over the tokens :func:`~.rmisu.mse_mask` keeps (``config.mse_positions``), the target's norm
       ``norm`` when given (``target_norm="first_batch"``);
    4. backward; each gradient of ``parameters`` with a mask in ``masks`` (``id(parameter)`` → its
       :func:`row_mask`; None: every entry trains) multiplied by it, so only the path rows move;
       the gradient norm clipped to ``config.grad_clip``; one ``optimizer`` step."""
    with capture_hidden(model, layer) as store:
        model(**{k: v for k, v in forget_batch.items() if k != "labels"})
        h_forget = store["h"]
        retain_ce = answer_loss(model, retain_batch)
        h_retain = store["h"]
    with torch.no_grad():
        h_retain_frozen = hidden_states(frozen, retain_batch, layer)
        h_forget_frozen = hidden_states(frozen, forget_batch, layer)
    forget_mask = mse_mask(forget_batch["attention_mask"], config.mse_positions)
    retain_mask = mse_mask(retain_batch["attention_mask"], config.mse_positions)
    forget_term = rmisu_forget_loss(h_forget, h_forget_frozen, u, config.lam, forget_mask, norm=norm)
    retain_term = retain_representation_loss(h_retain, h_retain_frozen, retain_mask)
    loss = forget_term + config.gamma * retain_term + config.retain_ce_weight * retain_ce
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(parameters)        # several processes: the whole batch's gradient
    for parameter in parameters:
        if masks is not None and id(parameter) in masks and parameter.grad is not None:
            distributed.local(parameter.grad).mul_(masks[id(parameter)])
    distributed.clip_gradients(parameters, config.grad_clip)
    optimizer.step()
    return {"loss": loss, "forget_mse": forget_term, "retain_mse": retain_term, "retain_ce": retain_ce}


def _prepare(vlm, bench, ratio, config, progress=True):
    forget, retain = unlearning_sets(bench, ratio, config.forget_on)
    layer = resolve_layer(vlm.model, config.layer)
    found = {} if config.localise == "none" else localise(vlm, bench, ratio, config, progress=False)
    require_reachable(found, layer)
    return {"forget": forget, "retain": retain, "layer": layer, "found": found}


def _trained(model, config) -> list:
    """The producers of every layer that holds a path neuron (here, every layer); all of the model unlocalised;
    nothing when it prunes."""
    if config.edit == "prune":
        return []
    if config.localise == "none":
        return list(model.parameters())
    return [p for site in find_mlp_neurons(model) for module in site.producer_modules(model) for p in module.parameters()]


@register("mip_editor", MIPEditorConfig,
          "IGI/IFI neuron paths in both towers, then RMisU along the paths (or prune them)", prepare=_prepare,
          reads_input=True, trains=_trained, grid={"k": [3, 5, 8], "steps": [30, 60]}, shards=True,
          quick={"steps": 2, "k": 2, "m": 2})
def mip_editor(vlm, bench, ratio, config, *, forget, retain, layer, found, original, progress, monitor, probe_every):
    model = vlm.model
    chosen = selection(found)
    details = {"layer": layer, "paths": found, "selection": chosen}
    if config.edit == "prune":
        log = UnlearnLog(details=details)
        if monitor is not None:
            log.probes.append({"step": 0, **monitor(model)})
        details["pruning"] = prune_neurons(model, chosen).counts()
        if monitor is not None:
            log.probes.append({"step": 1, **monitor(model)})
        return log
    if config.localise == "none":
        parameters, row_masks = [p for p in model.parameters()], None
    else:
        parameters, row_masks = path_rows(model, chosen)
    u = control_vector(model.config.text_config.hidden_size, config.seed)
    fixed = {}                                   # target_norm="first_batch": the norm, read once

    def step(model_, forget_batch, retain_batch, optimizer, parameters_):
        if config.target_norm == "first_batch" and "norm" not in fixed:
            with torch.no_grad():
                fixed["norm"] = mean_token_norm(hidden_states(original.model, forget_batch, layer),
                                                mse_mask(forget_batch["attention_mask"], config.mse_positions))
        with distributed.data_parallel_step():
            return rmisu_step(model_, original.model, forget_batch, scored_on(retain_batch, config.loss_on),
                              optimizer, parameters_, row_masks, config, layer, u, norm=fixed.get("norm"))
    log = run_gradient_loop(vlm, forget, retain, None, steps=config.steps, lr=config.lr, batch_size=config.batch_size,
                            grad_clip=config.grad_clip, train="all", seed=config.seed, progress=progress,
                            monitor=monitor, probe_every=probe_every, desc="mip_editor", parameters=parameters,
                            step_fn=step)
    log.details = {**details, "u": u, "target_norm": fixed.get("norm")}
    return log


__all__ = ["EDITS", "LOCALISE", "MIPEditorConfig", "require_reachable", "localise", "path_rows", "rmisu_step",
           "row_mask", "selection"]
