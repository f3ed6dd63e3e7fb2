"""What each method holds on the device, for a model of any size (chapter 11).

``unlearn`` never modifies its input: it edits a copy. So every method holds at least two models, and
the gradient methods add, for every parameter they train, its gradient (model dtype), AdamW's two
moments (fp32) and, for a bf16 model, an fp32 master (:class:`~mini_unlearn.models.precision.MasterAdamW`):
12–16 bytes per trained parameter against 2 for a bf16 weight. :func:`footprint` adds these up from the
parameters each method really trains on this model (found with the same functions the methods use), so
it works on a tiny model, on a real checkpoint, and on a 7 B model built on the ``meta`` device
(:func:`reference_model`: no memory allocated). Activations are left out: they depend on the batch and
the sequence length (the image alone is 576 tokens for LLaVA-1.5).

The way to fit a 7 B model on one 80 GB GPU (chapter 11's table): keep the input off the device
(``unlearn(..., device="cuda")`` on a model loaded on the CPU: only the copy, and a frozen reference
for the methods that need one, go to the GPU), train a part (``train="language"``, MMUnlearner's mask
with ``lora_rank``, MIP-Editor's path rows), and use bf16.
"""
from __future__ import annotations

import torch

from ..models.precision import LOW_PRECISION
from ..models.vlm import VLM
from .base import get, make_config

GiB = 2 ** 30


def _count(parameters) -> int:
    return sum(p.numel() for p in {id(p): p for p in parameters}.values())


def trained_tensors(model, method: str, config) -> list[torch.nn.Parameter]:
    """The model's tensors ``method`` updates (gets gradients and AdamW state for; under MMUnlearner's
    LoRA, the masked weights its adapters are merged into): what the method registered as ``trains``."""
    spec = get(method)
    if spec.trains is None:
        raise ValueError(f"method {method!r} does not say what it trains: register it with trains=(model, config) "
                         "-> the tensors it updates, for the memory footprint")
    return list(spec.trains(model, config))


def trained_parameters(model, method: str, config) -> tuple[int, int]:
    """``(trained, statistics)``: how many parameters ``method`` trains (a gradient and AdamW state each;
    with ``lora_rank``, the adapters' ``r × (in + out)`` per weight matrix, the LM head left out of the
    gradient methods' adapters) and how
    many per-weight fp32 statistics it keeps besides (MMUnlearner: the saliencies F_f and F_p)."""
    spec = get(method)
    tensors = list({id(p): p for p in trained_tensors(model, method, config)}.values())
    statistics = spec.statistics_per_weight * _count(tensors)
    if getattr(config, "lora_rank", 0):          # MMUnlearner's masked adapters; the gradient methods' plain ones
        head = model.get_output_embeddings()
        linear = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)
                  and (m is not head or spec.lora_on_head)}
        return sum(config.lora_rank * (p.shape[0] + p.shape[1]) for p in tensors if id(p) in linear), statistics
    return _count(tensors), statistics


def footprint(model, method: str, *, dtype: torch.dtype = torch.bfloat16, input_on_device: bool = True,
              **hyperparameters) -> dict[str, float]:
    """GiB on the device while ``method`` runs on ``model`` with ``hyperparameters``, by what holds them.

    ``input_on_device=False``: the input model stays on the CPU (``unlearn(..., device=...)``); the
    methods that read a frozen model at every step (``reads_input``, and NPO's reference) then take a
    copy of it to the device instead."""
    model = model.model if isinstance(model, VLM) else model
    spec, config = get(method), make_config(method, **hyperparameters)
    n = sum(p.numel() for p in model.parameters())
    width = torch.tensor([], dtype=dtype).element_size()
    trained, statistics = trained_parameters(model, method, config)
    master = 4 if dtype in LOW_PRECISION else 0
    parts = {"input": n * width if input_on_device else 0,
             "reference": n * width if (spec.reads_input or spec.holds_reference) and not input_on_device else 0,
             "copy": n * width,
             "gradients": trained * width,
             "optimizer": trained * (8 + master),
             "statistics": statistics * 4}
    parts = {name: round(value / GiB, 3) for name, value in parts.items()}
    parts["total"] = round(sum(parts.values()), 3)
    parts["trained"] = trained
    return parts


# ---------------------------------------------------------------------------------------------------
# The papers' models, built on the meta device (their architecture, no weights, no memory)

def _llava_1_5_7b():
    from transformers import LlavaConfig
    return LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096,
                           num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14,
                           projection_dim=768),
        text_config=dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32064),
        image_token_id=32000, vision_feature_layer=-2)


def _qwen2_5_vl_3b():
    from transformers import Qwen2_5_VLConfig
    return Qwen2_5_VLConfig(
        text_config=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31]),
        tie_word_embeddings=True)


REFERENCE_MODELS = {"LLaVA-1.5-7B": ("llava", _llava_1_5_7b), "Qwen2.5-VL-3B": ("qwen2_5_vl", _qwen2_5_vl_3b)}


def reference_model(name: str) -> torch.nn.Module:
    """One of the papers' models (:data:`REFERENCE_MODELS`) built on the ``meta`` device: the real
    architecture and parameter count, with no weights and no memory (for :func:`footprint`)."""
    from ..models.families import FAMILIES
    if name not in REFERENCE_MODELS:
        raise ValueError(f"unknown reference model {name!r}; expected one of {list(REFERENCE_MODELS)}")
    family, config = REFERENCE_MODELS[name]
    with torch.device("meta"):
        return FAMILIES[family].model_class(config())


__all__ = ["REFERENCE_MODELS", "footprint", "reference_model", "trained_parameters", "trained_tensors"]
