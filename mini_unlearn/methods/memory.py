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

On several GPUs (chapter 11b): :func:`data_parallel_footprint` and :func:`sharded_footprint` give what
one process holds under data parallelism (every process holds the whole model) and under FSDP2
(:mod:`~mini_unlearn.models.sharding`), with an estimate of the language model's activations and the
transient buffers of the package's own code; :func:`memory_table` sets them side by side.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from .. import validate
from ..models import sharding
from ..models.precision import LOW_PRECISION
from ..models.vlm import VLM
from .base import get, make_config, require_shardable, trains_nothing

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


def _footprint_bytes(model, method: str, dtype: torch.dtype, input_on_device: bool,
                     hyperparameters: dict) -> tuple[dict[str, int], int]:
    """:func:`footprint`'s parts in bytes, and how many parameters the method trains."""
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
    return parts, trained


def footprint(model, method: str, *, dtype: torch.dtype = torch.bfloat16, input_on_device: bool = True,
              **hyperparameters) -> dict[str, float]:
    """GiB on the device while ``method`` runs on ``model`` with ``hyperparameters``, by what holds them.

    ``input_on_device=False``: the input model stays on the CPU (``unlearn(..., device=...)``); the
    methods that read a frozen model at every step (``reads_input``, and NPO's reference) then take a
    copy of it to the device instead."""
    parts, trained = _footprint_bytes(model, method, dtype, input_on_device, hyperparameters)
    parts = {name: round(value / GiB, 3) for name, value in parts.items()}
    parts["total"] = round(sum(parts.values()), 3)
    parts["trained"] = trained
    return parts


# ---------------------------------------------------------------------------------------------------
# Many GPUs: data parallelism and FSDP2, per process

KORTHIKANTI_BYTES = 34      # activation bytes per token, per hidden unit and per layer of 16-bit activations
PERSISTENT = ("copy", "reference", "gradients", "optimizer", "statistics")


def default_sequence(model, text_tokens: int = 64, pixels: int = 448) -> int:
    """Tokens of one row: one image's tokens plus ``text_tokens``. The image's tokens: the config's
    ``image_seq_length`` (LLaVA-1.5: 576), an Idefics2 resampler's latents, else
    ``(side / patch)² / merge²`` with the tower's ``image_size`` as side, or ``pixels`` for a family
    that reads any size (Qwen-VL: a 448 × 448 picture → (448 / 14)² / 2² = 256 tokens)."""
    config = (model.model if isinstance(model, VLM) else model).config
    tokens = getattr(config, "image_seq_length", None)
    latents = getattr(getattr(config, "perceiver_config", None), "resampler_n_latents", None)
    if not tokens and latents:
        tokens = latents
    if not tokens:
        vision = config.vision_config
        merge = getattr(vision, "spatial_merge_size", None) or getattr(config, "scale_factor", None) or 1
        side = getattr(vision, "image_size", None) or pixels
        tokens = (side // vision.patch_size) ** 2 // merge ** 2
    return int(tokens) + text_tokens


def activations(model, processes: int, *, batch_size: int = 8, sequence: int | None = None,
                dtype: torch.dtype = torch.bfloat16) -> float:
    """Bytes of the language model's activations kept for the backward on the process with the most
    rows: ``ceil(batch_size / processes)`` rows × ``sequence`` tokens × hidden × 34 bytes × layers
    (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models":
    ``34·s·b·h`` bytes per layer of 16-bit activations, without the ``5·a·s²·b`` attention scores,
    which fused attention does not store; an fp32 model twice that). An estimate: left out are the
    vision tower's activations and the logits (rows × sequence × vocabulary)."""
    model = model.model if isinstance(model, VLM) else model
    validate.positive_int(processes, "processes")
    if batch_size < processes:
        raise ValueError(f"batch_size must be at least the number of processes ({processes}) to split a batch; "
                         f"got {batch_size}")
    text = model.config.get_text_config()
    sequence = default_sequence(model) if sequence is None else sequence
    width = torch.tensor([], dtype=dtype).element_size()
    rows = math.ceil(batch_size / processes)
    return rows * sequence * text.hidden_size * KORTHIKANTI_BYTES * width / 2 * text.num_hidden_layers


def _step_bytes(dtype: torch.dtype) -> int:
    """Transient bytes per trained parameter in :class:`~mini_unlearn.models.precision.MasterAdamW`'s
    step: the fp32 copies of the gradients (a bf16 model) and the one fp32 temporary of foreach AdamW."""
    return 4 + (4 if dtype in LOW_PRECISION else 0)


def _total(parts: dict[str, float], unit: float) -> dict[str, float]:
    """Every part in ``unit`` (3 decimals), and ``total``: what stays (:data:`PERSISTENT`) plus the largest
    of three peaks that never coincide: the forward and backward (``gathered`` + ``activations``), the
    gradient average after it (``averaging``), the optimizer step (``step``)."""
    parts = {name: round(value / unit, 3) for name, value in parts.items()}
    peak = max(parts["gathered"] + parts["activations"], parts["averaging"], parts["step"])
    parts["total"] = round(sum(parts[name] for name in PERSISTENT) + peak, 3)
    return parts


def data_parallel_footprint(model, method: str, processes: int, *, dtype: torch.dtype = torch.bfloat16,
                            batch_size: int = 8, sequence: int | None = None, unit: float = GiB,
                            **hyperparameters) -> dict[str, float]:
    """GiB one process holds while ``method`` runs under data parallelism on ``processes`` GPUs, the
    input model on the CPU: the whole :func:`footprint` (``input_on_device=False``) on every process,
    plus what comes and goes (``total``: what stays plus the largest of the three peaks, which never
    coincide: the forward and backward, the gradient average, the optimizer step):

    * ``activations``: :func:`activations` (each process computes its rows of the batch);
    * ``averaging``: :func:`~mini_unlearn.distributed.average_gradients`' buffers on more than one
      process, 8 bytes per trained parameter (the fp32 flat buffer, and either the gradients' fp32
      copies it is concatenated from or the new gradients written while the old ones are still held);
    * ``step``: the optimizer step's fp32 temporaries (:func:`_step_bytes`);
    * ``gathered``: 0 (nothing is sharded).

    ``unit``: of every part (``unit=1``: bytes)."""
    whole, trained = _footprint_bytes(model, method, dtype, False, hyperparameters)
    parts = {name: whole[name] for name in PERSISTENT}
    parts.update(gathered=0, activations=activations(model, processes, batch_size=batch_size, sequence=sequence,
                                                     dtype=dtype),
                 averaging=8 * trained if processes > 1 else 0, step=_step_bytes(dtype) * trained)
    return _total(parts, unit)


def _local(parameter: torch.Tensor, processes: int) -> int:
    """Elements of ``parameter`` on the process holding the most of it: FSDP2 splits dim 0 into
    ``processes`` chunks of ``ceil(rows / processes)`` rows (the last ones shorter or empty)."""
    if parameter.dim() == 0:
        return parameter.numel()
    rows = parameter.shape[0]
    return math.ceil(rows / processes) * (parameter.numel() // rows if rows else 0)


def sharded_footprint(model, method: str, processes: int, *, dtype: torch.dtype = torch.bfloat16,
                      batch_size: int = 8, sequence: int | None = None, unit: float = GiB,
                      **hyperparameters) -> dict[str, float]:
    """GiB one process holds while ``method`` runs sharded with FSDP2 on ``processes`` GPUs
    (:mod:`~mini_unlearn.models.sharding`), counted from ``model``'s parameters (a meta model will do).

    The language side (its decoder blocks, each an FSDP unit, and the rest of it, the root unit) is
    sharded: each process holds ``1/N`` of its weights (dim 0, :func:`_local`), of its gradients
    (reduce-scattered) and of AdamW's state and fp32 masters; the vision side (vision tower and
    projector, :func:`~mini_unlearn.models.sharding.replicated_parameters`) stays whole on every
    process, with its gradients and AdamW state. By part:

    * ``copy``, ``reference`` (a frozen sharded copy for the methods that read the input or hold a
      reference; the input itself stays on the CPU), ``gradients``, ``optimizer``: as in
      :func:`footprint`, each sharded tensor counted by its local part;
    * ``statistics``: MMUnlearner's saliencies, whole on every process;
    * ``gathered``: what FSDP2 holds whole during the backward: the root unit's weights and the
      gradients of its trained ones (the root is gathered from its pre-backward to the end of the
      backward, where its gradients are reduce-scattered last: seen on two CPU processes), two
      blocks' weights (the running one and the prefetched next: the two largest) and one block's
      whole gradient before its reduce-scatter;
    * ``activations`` (:func:`activations`), ``averaging`` (the vision side's trained parameters in
      :func:`~mini_unlearn.distributed.average_gradients`, 8 bytes each), ``step`` (the optimizer's
      fp32 temporaries, for this process's part), ``total``, ``unit``: as in :func:`data_parallel_footprint`.

    Raises :class:`~mini_unlearn.models.sharding.ShardingError` for what has no sharded form (a
    method without one, ``lora_rank``)."""
    model = model.model if isinstance(model, VLM) else model
    spec, config = get(method), make_config(method, **hyperparameters)
    if trains_nothing(spec, model, config):
        raise sharding.ShardingError(f"method {method!r} trains nothing: under the FSDP2 launcher it edits an ordinary "
                                     "copy (its statistics pass reads a sharded one); footprint() counts it")
    require_shardable(spec, config, None)
    width = torch.tensor([], dtype=dtype).element_size()
    replicated = {id(p) for p in sharding.replicated_parameters(model)}
    blocks = [list(block.parameters()) for _, block in sharding.language_blocks(model)]
    in_block = {id(p) for block in blocks for p in block}
    local = lambda p: p.numel() if id(p) in replicated else _local(p, processes)
    parameters = list(model.parameters())
    trained = {id(p): p for p in trained_tensors(model, method, config)}
    root = [p for p in parameters if id(p) not in replicated and id(p) not in in_block]
    held, updated = sum(local(p) for p in parameters), sum(local(p) for p in trained.values())
    master = 4 if dtype in LOW_PRECISION else 0
    _, statistics = trained_parameters(model, method, config)
    sizes = sorted((sum(p.numel() for p in block) for block in blocks), reverse=True)
    root_weights = sum(p.numel() for p in root)
    root_gradients = sum(p.numel() for p in root if id(p) in trained)
    block_gradient = max(sum(p.numel() for p in block if id(p) in trained) for block in blocks)
    vision_trained = sum(p.numel() for p in trained.values() if id(p) in replicated)
    parts = {"copy": held * width,
             "reference": held * width if spec.reads_input or spec.holds_reference else 0,
             "gradients": updated * width,
             "optimizer": updated * (8 + master),
             "statistics": statistics * 4,
             "gathered": (root_weights + sum(sizes[:2]) + root_gradients + block_gradient) * width,
             "activations": activations(model, processes, batch_size=batch_size, sequence=sequence, dtype=dtype),
             "averaging": 8 * vision_trained if processes > 1 else 0,
             "step": _step_bytes(dtype) * updated}
    return _total(parts, unit)


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


def memory_table(names=("Qwen2.5-VL-3B", "LLaVA-1.5-7B"), method: str = "ga", processes=(1, 2, 4, 8), *,
                 dtype: torch.dtype = torch.bfloat16, batch_size: int = 8, sequence: int | None = None,
                 budget_gb: float = 80, **hyperparameters) -> pd.DataFrame:
    """One row per (model of :data:`REFERENCE_MODELS`, number of GPUs): the GiB one process holds under
    data parallelism (:func:`data_parallel_footprint`) and under FSDP2 (:func:`sharded_footprint`), and
    whether each fits a GPU of ``budget_gb`` GB (80 GB = 74.5 GiB; the CUDA context not counted)."""
    budget = budget_gb * 1e9 / GiB
    options = dict(dtype=dtype, batch_size=batch_size, sequence=sequence, **hyperparameters)
    rows = []
    for name in names:
        model = reference_model(name)
        for n in processes:
            ddp = data_parallel_footprint(model, method, n, **options)["total"]
            fsdp = sharded_footprint(model, method, n, **options)["total"]
            rows.append({"model": name, "GPUs": n, "DDP GiB": ddp, "DDP fits": ddp <= budget,
                         "FSDP2 GiB": fsdp, "FSDP2 fits": fsdp <= budget})
    return pd.DataFrame(rows)


__all__ = ["KORTHIKANTI_BYTES", "REFERENCE_MODELS", "activations", "data_parallel_footprint", "default_sequence",
           "footprint", "memory_table", "reference_model", "sharded_footprint", "trained_parameters",
           "trained_tensors"]
