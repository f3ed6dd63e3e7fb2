"""Representation misdirection: RMU (WMDP) and MIP-Editor's RMisU (chapter 08).

Both leave the output loss alone and act on a hidden layer ℓ of the language model: the residual
stream ``h`` after decoder layer ℓ.

* **RMU** (Li et al., 2024, the WMDP reference): push the forget data's ``h`` toward a fixed random
  direction of norm ``c`` and keep the retain data's ``h`` where the frozen model puts it::

      L = mean ‖h(x_f) − c·u‖² + α · mean ‖h(x_r) − h_frozen(x_r)‖²

  updating the MLPs of the language-model layers up to ℓ (registered as ``"rmu"``).
* **RMisU** (MIP-Editor, as the paper writes it): the target scales with the representation,
  ``v_f = λ · ‖h(x_f)‖ · u`` per token, and the retain cross-entropy joins in::

      L = mean ‖h(x_f) − v_f‖² + γ · mean ‖h(x_r) − h_frozen(x_r)‖² + CE(D_r)

  updating only the **path neurons' weights** — the rows of ``gate_proj`` / ``up_proj`` (``fc1`` in
  the vision tower) that produce them (``"mip_editor"``, :mod:`.mip_editor`). The released code
  differs (book/appendix/mip_editor.md, 'Editing'): a constant target of norm 10, α = β = 0.5 and
  no CE term; the paper's form is the one here (λ = 5, from the code's commented-out line, γ = 1).
  ``‖h(x_f)‖`` is read from the **input model** (the commented-out line also computes it once,
  before training): taken from the model being trained, the target would chase its own norm and,
  for λ > 1, grow without bound.

  **Whose norm** (``target_norm``). The paper writes ``‖h(x_f)‖`` for each forget input; we read it
  per token (``"token"``, the default): each token's target has λ times the norm that token had, so
  every token is pushed by the same relative amount. The commented-out line computes one scalar,
  λ × the mean token norm of the first forget batch, shared by every token of every step
  (``"first_batch"``): tokens with a large norm then dominate less than under the per-token target,
  and tokens with a small norm are pushed relatively further.

``mean ‖·‖²`` is the mean squared error over real tokens and hidden units (``F.mse_loss`` on the
tokens the attention mask keeps). ``u`` is drawn once, uniform in [0, 1) and normalised (as RMU).

**Which positions the MSEs average over** (``mse_positions``, RMisU only). The released code applies
``F.mse_loss`` to the whole ``[batch, tokens, hidden]`` tensor: every position, pads included, in the
retain MSE and the forget MSE alike (and its commented-out target norm averages over every position
too). We average over the real tokens (``"real"``, the default) on purpose: a pad is not text, and
its hidden state depends on how much the batch happened to be padded, so with ``"all"`` the retain
term also holds the pads' states in place, the forget term spends its effort pushing pads toward the
target, and each real token's weight shrinks as its batch gets more padding. ``mse_positions="all"``
is the released behaviour, for a like-for-like comparison (:func:`mse_mask`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .. import distributed, validate
from ..models.anatomy import find_towers
from ..models.train import answer_loss
from .base import register
from .data import require_forget_on, scored_on, unlearning_sets
from .loop import run_gradient_loop


# ---------------------------------------------------------------------------------------------------
# Losses (pure tensor functions)

def _token_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    squared = (h.float() - target.float()) ** 2
    return distributed.batch_mean(squared if mask is None else squared[mask.bool()])   # over all the batch's tokens


def control_vector(hidden_size: int, seed: int = 0) -> torch.Tensor:
    """RMU's fixed direction ``u``: uniform in [0, 1), normalised to unit length (seeded)."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))
    return u / u.norm()


def rmu_forget_loss(h_forget: torch.Tensor, u: torch.Tensor, steering: float, mask=None) -> torch.Tensor:
    """RMU: mean ‖h − c·u‖² over tokens (the target has the constant norm ``steering``)."""
    return _token_mse(h_forget, steering * u.to(h_forget.device), mask)


TARGET_NORMS: tuple[str, ...] = ("token", "first_batch")


def mean_token_norm(h: torch.Tensor, mask=None) -> torch.Tensor:
    """The mean of ``‖h‖`` over the real tokens (a scalar): the released code's target scale, before λ."""
    norms = h.detach().float().norm(dim=-1)
    return norms[mask.bool()].mean() if mask is not None else norms.mean()


def rmisu_forget_loss(h_forget: torch.Tensor, h_forget_frozen: torch.Tensor, u: torch.Tensor, lam: float,
                      mask=None, norm: torch.Tensor | None = None) -> torch.Tensor:
    """RMisU: mean ‖h − λ‖h_frozen‖u‖² over tokens: each token's target has λ times the norm it had in the
    input model — or, given ``norm`` (a scalar, e.g. :func:`mean_token_norm` of the first batch), λ·norm·u."""
    if norm is None:
        norm = h_forget_frozen.detach().float().norm(dim=-1, keepdim=True)
    return _token_mse(h_forget, lam * norm * u.to(h_forget.device), mask)


MSE_POSITIONS: tuple[str, ...] = ("real", "all")


def require_mse_positions(mse_positions: str) -> str:
    return validate.one_of(mse_positions, "mse_positions", MSE_POSITIONS,
                           hint="'real': the MSEs average over the real tokens; 'all': over every position, pads "
                                "included, as the released code does")


def mse_mask(attention_mask: torch.Tensor, mse_positions: str = "real") -> torch.Tensor | None:
    """The token mask the representation MSEs average over: the attention mask (``"real"``: real tokens
    only), or None (``"all"``: every position, pads included — the released code's ``F.mse_loss``)."""
    return attention_mask if require_mse_positions(mse_positions) == "real" else None


def retain_representation_loss(h_retain: torch.Tensor, h_frozen: torch.Tensor, mask=None) -> torch.Tensor:
    """mean ‖h(x_r) − h_frozen(x_r)‖² over tokens: stay where the input model was."""
    return _token_mse(h_retain, h_frozen.detach(), mask)


def rmisu_loss(h_forget: torch.Tensor, h_forget_frozen: torch.Tensor, h_retain: torch.Tensor,
               h_retain_frozen: torch.Tensor, u: torch.Tensor, lam: float = 5.0, gamma: float = 1.0,
               forget_mask=None, retain_mask=None) -> torch.Tensor:
    """The representation part of RMisU: ``mean‖h_f − λ‖h_f^frozen‖u‖² + γ·mean‖h_r − h_r^frozen‖²``
    (the retain cross-entropy is added by the method)."""
    return rmisu_forget_loss(h_forget, h_forget_frozen, u, lam, forget_mask) + gamma * retain_representation_loss(
        h_retain, h_retain_frozen, retain_mask)


# ---------------------------------------------------------------------------------------------------
# Reading layer ℓ

def language_layers(model) -> torch.nn.ModuleList:
    """The decoder layers of the language model (found through its config, not a hard-coded path)."""
    _, tower = find_towers(model)["language"]
    return tower.layers


def require_layer(model, layer) -> int:
    n = len(language_layers(model))
    if not validate.is_integer(layer) or not 0 <= layer < n:
        raise ValueError(f"layer must be a language-model layer index in [0, {n - 1}] (this model has {n}); got {layer!r}")
    return layer


@contextmanager
def capture_hidden(model, layer: int):
    """Within the block, ``store["h"]`` holds the residual stream after decoder layer ``layer`` of the last pass."""
    store = {}

    def hook(_module, _args, output):
        store["h"] = output if torch.is_tensor(output) else output[0]
    handle = language_layers(model)[layer].register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def hidden_states(model, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """``h`` after decoder layer ``layer`` for a batch (its labels are ignored)."""
    with capture_hidden(model, layer) as store:
        model(**{k: v for k, v in batch.items() if k != "labels"})
    return store["h"]


# ---------------------------------------------------------------------------------------------------
# The shared loop

def representation_loss(frozen, layer: int, forget_loss, gamma: float, retain_ce_weight: float, loss_on: str = "answer",
                        mse_positions: str = "real"):
    """The loss function of the shared gradient loop (:func:`.loop.run_gradient_loop`) for RMU and RMisU:
    ``forget_loss(h_f, mask, h_f_frozen) + γ·mean‖h_r − h_r^frozen‖² + retain_ce_weight·CE(D_r)``, with
    every ``h`` read after language-model layer ``layer``, ``frozen`` the input model, the retain CE
    on the answer tokens or the whole sequence (``loss_on``), and both MSEs' ``mask`` from
    :func:`mse_mask` (``mse_positions``: the real tokens, or every position as the released code)."""
    require_mse_positions(mse_positions)

    def loss_fn(model, forget_batch, retain_batch):
        with capture_hidden(model, layer) as store:
            model(**{k: v for k, v in forget_batch.items() if k != "labels"})
            h_forget = store["h"]
            retain_ce = answer_loss(model, scored_on(retain_batch, loss_on))
            h_retain = store["h"]
        with torch.no_grad():
            h_retain_frozen = hidden_states(frozen, retain_batch, layer)
            h_forget_frozen = hidden_states(frozen, forget_batch, layer)
        forget_term = forget_loss(h_forget, mse_mask(forget_batch["attention_mask"], mse_positions), h_forget_frozen)
        retain_term = retain_representation_loss(h_retain, h_retain_frozen,
                                                 mse_mask(retain_batch["attention_mask"], mse_positions))
        return {"loss": forget_term + gamma * retain_term + retain_ce_weight * retain_ce,
                "forget_mse": forget_term, "retain_mse": retain_term, "retain_ce": retain_ce}
    return loss_fn


# ---------------------------------------------------------------------------------------------------
# RMU, registered

@dataclass(frozen=True)
class RepresentationConfig:
    """Shared by RMU and MIP-Editor: language-model ``layer`` ℓ (None: the last), which forget pairs
    (``forget_on``; ``"both"`` = image+text and text-only) and the optimisation."""

    layer: int | None = None
    forget_on: str = "both"
    steps: int = 60
    lr: float = 5e-4
    batch_size: int = 8
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self):
        for name in ("lr", "grad_clip"):
            validate.positive(getattr(self, name), name, finite=True)
        validate.positive_int(self.steps, "steps")
        validate.positive_int(self.batch_size, "batch_size")
        require_forget_on(self.forget_on)
        if self.layer is not None and not validate.is_integer(self.layer):
            raise ValueError(f"layer must be an integer or None (the last layer); got {self.layer!r}")
        validate.seed(self.seed)


@dataclass(frozen=True)
class RMUConfig(RepresentationConfig):
    """RMU: ``steering`` = c, the target norm; ``retain_weight`` = α; ``update_layers``: how many MLPs,
    ending at ``layer``, are trained (WMDP: 3)."""

    steering: float = 20.0
    retain_weight: float = 100.0
    update_layers: int = 3

    def __post_init__(self):
        super().__post_init__()
        validate.positive(self.steering, "steering", finite=True)
        validate.positive(self.retain_weight, "retain_weight", allow_zero=True, finite=True)
        validate.positive_int(self.update_layers, "update_layers")


def resolve_layer(model, layer: int | None) -> int:
    return len(language_layers(model)) - 1 if layer is None else require_layer(model, layer)


def rmu_parameters(model, layer: int, update_layers: int) -> tuple[int, list[torch.nn.Parameter]]:
    """RMU's trained parameters: the MLPs of the ``update_layers`` language layers ending at ``layer``
    (returned with the first of those layers)."""
    first = max(0, layer - update_layers + 1)
    layers = language_layers(model)
    return first, [p for i in range(first, layer + 1) for p in layers[i].mlp.parameters()]


def _rmu_prepare(vlm, bench, ratio, config, progress=True):
    forget, retain = unlearning_sets(bench, ratio, config.forget_on)
    return {"forget": forget, "retain": retain, "layer": resolve_layer(vlm.model, config.layer)}


@register("rmu", RMUConfig, "representation misdirection (WMDP): forget activations at layer ℓ → a random direction",
          prepare=_rmu_prepare, reads_input=True, shards=True,
          trains=lambda model, config: rmu_parameters(model, resolve_layer(model, config.layer), config.update_layers)[1],
          grid={"lr": [5e-4, 1e-3, 3e-3], "steps": [30, 60]}, quick={"steps": 2})
def rmu(vlm, bench, ratio, config, *, forget, retain, layer, original, progress, monitor, probe_every):
    model = vlm.model
    u = control_vector(model.config.text_config.hidden_size, config.seed)
    first, parameters = rmu_parameters(model, layer, config.update_layers)
    loss_fn = representation_loss(original.model, layer, lambda h, mask, _frozen: rmu_forget_loss(h, u, config.steering, mask),
                                  gamma=config.retain_weight, retain_ce_weight=0.0)
    log = run_gradient_loop(vlm, forget, retain, loss_fn, steps=config.steps, lr=config.lr, batch_size=config.batch_size,
                            grad_clip=config.grad_clip, train="all", seed=config.seed, progress=progress,
                            monitor=monitor, probe_every=probe_every, desc="rmu", parameters=parameters)
    log.details = {"layer": layer, "updated_layers": list(range(first, layer + 1)), "u": u}
    return log


__all__ = ["MSE_POSITIONS", "RMUConfig", "RepresentationConfig", "TARGET_NORMS", "capture_hidden", "require_layer",
           "require_mse_positions", "control_vector", "hidden_states", "language_layers", "mean_token_norm", "mse_mask",
           "representation_loss", "resolve_layer", "rmu_parameters", "retain_representation_loss", "rmisu_forget_loss",
           "rmisu_loss", "rmu_forget_loss"]
