"""LoRA whose update obeys a weight mask: ``W' = W + s · M ⊙ (B A)`` (chapter 06).

MMUnlearner's released code applies its saliency mask with ``if name in mask: grad *= mask[name]``.
The mask is keyed by the base model's names (``…mlp.up_proj.weight``); under peft the trainable
parameters are called ``…mlp.up_proj.lora_A.default.weight``, so no name ever matches and the LLaVA
run is plain gradient ascent + descent (book/appendix/mmunlearner.md, 'What the released code does
differently'). Renaming would not
help: masking the gradient of a low-rank factor cannot keep chosen entries of the product ``B A``
at zero.

Here the mask is applied where it means something — to the adapter's weight update itself. peft
builds and initialises the adapters (``B = 0``, so the model starts unchanged); a forward hook on
each adapted layer replaces peft's ``x Wᵀ + s · (x Aᵀ) Bᵀ`` with ``x (W + s · M ⊙ B A)ᵀ``. A weight
with mask 0 gets exactly zero update, during training and after :func:`merge_masked_lora`.

``free=True`` adds a second, unmasked adapter on the same layers, ``W' = W + s · M ⊙ (B A) + s · B₂ A₂``,
for a method that lets some steps change every weight (MMUnlearner's released retain step): train
``B₂ A₂`` (:func:`free_adapter_parameters`) only on those steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import validate
from ..models.lora import LoraSettings, add_lora, remove_lora

PEFT_PREFIX = "base_model.model."


def _adapted_layers(peft_model: nn.Module) -> dict[str, nn.Module]:
    """peft's LoRA layers, by the base model's name of the layer they wrap."""
    from peft.tuners.lora import LoraLayer
    return {name.removeprefix(PEFT_PREFIX): module for name, module in peft_model.named_modules()
            if isinstance(module, LoraLayer)}


def _delta(layer: nn.Module, adapter: str = "default") -> torch.Tensor:
    """The adapter's update of the base weight: ``s · B A`` (same shape as the weight)."""
    return (layer.lora_B[adapter].weight @ layer.lora_A[adapter].weight) * layer.scaling[adapter]


FREE = "free"                     # the name of the unmasked adapter


def add_masked_lora(model: nn.Module, masks: dict[str, torch.Tensor], rank: int, alpha: int | None = None,
                    free: bool = False) -> nn.Module:
    """Wrap the linear layers whose ``.weight`` is in ``masks`` with rank-``rank`` LoRA whose update is masked
    (and, with ``free=True``, a second rank-``rank`` adapter whose update is not).

    Returns the peft model (train its trainable parameters, then call :func:`merge_masked_lora`).
    ``model`` itself is modified: pass a copy.
    """
    validate.positive_int(rank, "rank")
    layers = sorted(name.removesuffix(".weight") for name in masks if name.endswith(".weight"))
    if not layers:
        raise ValueError("masks has no linear-layer weight (names ending in '.weight'): nothing to adapt")
    missing = [name for name in layers if not isinstance(model.get_submodule(name), nn.Linear)]
    if missing:
        raise ValueError(f"masked LoRA adapts linear layers only; not linear: {missing[:3]}")
    pattern = "|".join(name.replace(".", r"\.") for name in layers)
    settings = LoraSettings(r=rank, alpha=alpha or rank, dropout=0.0, target_modules=f"^({pattern})$")
    peft_model = add_lora(model, settings, also=(FREE,) if free else ())
    for name, layer in _adapted_layers(peft_model).items():
        mask = masks[name + ".weight"].to(layer.base_layer.weight.device)

        def masked_forward(module, args, output, mask=mask):
            base = module.base_layer
            return F.linear(args[0], base.weight + _update(module, mask), base.bias)
        layer.register_forward_hook(masked_forward)
    for parameter in free_adapter_parameters(peft_model):     # peft trains the active adapter only
        parameter.requires_grad_(True)
    return peft_model


def _update(layer: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """What the adapters add to the base weight: the masked update, plus the free one if there is one."""
    update = mask * _delta(layer)
    return update + _delta(layer, FREE) if FREE in layer.lora_A else update


def free_adapter_parameters(peft_model: nn.Module) -> list[nn.Parameter]:
    """The unmasked adapter's ``A`` and ``B`` weights (empty without ``free=True``)."""
    return [parameter for layer in _adapted_layers(peft_model).values() if FREE in layer.lora_A
            for parameter in (layer.lora_A[FREE].weight, layer.lora_B[FREE].weight)]


def merge_masked_lora(peft_model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Fold each masked update into its base weight and return the plain model (every parameter trainable again)."""
    with torch.no_grad():
        for name, layer in _adapted_layers(peft_model).items():
            weight = layer.base_layer.weight
            weight.add_(_update(layer, masks[name + ".weight"].to(weight.device)))
    model = remove_lora(peft_model, merge=False)      # the updates are in the weights already
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


__all__ = ["FREE", "add_masked_lora", "free_adapter_parameters", "merge_masked_lora"]
