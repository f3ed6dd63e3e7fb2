"""Sharded models: FSDP2 through accelerate's config, for a model too big for one GPU (chapter 11b).

Data parallelism (:mod:`mini_unlearn.distributed`) keeps the whole model, its gradients and AdamW's
state on every process: more GPUs, no more memory. Sharding splits them. Launch the same script with
the package's accelerate config::

    accelerate launch --config_file $(python -m mini_unlearn.models.sharding config) \\
        --num_processes 8 my_unlearning.py

and :func:`~mini_unlearn.methods.unlearn` shards its copy of the model with FSDP2
(``torch.distributed.fsdp.fully_shard``): every decoder block of the language model is one unit (the
family's own block classes, ``_no_split_modules``, or the config's ``fsdp_transformer_layer_cls_to_wrap``),
and the rest of the language side (embeddings, final norm, LM head) is the root unit. Each process
holds ``1/N`` of each unit's weights, gradients and optimizer state; a unit's whole weights exist only
while it runs (gathered before its forward and again before its backward, then freed) and its
gradient is reduce-scattered, averaged over the processes, right after its backward.

**The vision side is replicated, not sharded.** A sharded unit's forward is a collective: every
process must run it, together. A process whose rows of the batch hold no picture (a text-only
question) never calls the vision tower, while another process does: the processes then wait on
different collectives (measured: gloo aborts, "Received data size doesn't match expected size").
So the vision tower and the projector stay whole on every process, their gradients averaged after
backward as in data parallelism (:func:`~mini_unlearn.distributed.average_gradients`). They are small
beside the language model (LLaVA-1.5-7B: 0.3 B of 7.1 B parameters; Qwen2-VL-7B: 0.7 B of 8.3 B),
and :func:`~mini_unlearn.methods.memory.sharded_footprint` counts them whole. (LLaVA's own training code
solves the same problem under DeepSpeed ZeRO-3 the other way: a text-only sample gets a blank picture
so that the tower always runs.)

**Every process's backward runs through every block.** A unit's backward is a collective too (its
weights are gathered again, its gradient reduce-scattered). When the embeddings are frozen (training
the vision side, or MIP-Editor's path rows), the backward of a process whose rows hold a picture runs
down through every block to the vision tower, while that of a process with text-only rows stops at
the lowest block that trains: the processes would again wait on different collectives (measured: a
stall at the second step). So a sharded model's input embeddings always require a gradient
(``enable_input_require_grads``, the switch Hugging Face models use when adapters train and the
embeddings do not): every backward reaches the bottom, on every process. The cost is the input
gradients of the frozen lower blocks, computed and thrown away.

The statistics passes (MMUnlearner's saliency, MIP-Editor's IGI/IFI paths, MANU's activations) read a
sharded copy too under the launcher (:func:`for_pass`): each process runs every batch on it, together.

What cannot shard raises a :class:`ShardingError` before any weight moves: a method with no sharded
form, a model whose language model has no block of the classes to wrap, LoRA, accelerate's own
mixed precision (load the model in bf16 instead: the package keeps fp32 masters itself).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import distributed
from .anatomy import find_towers, part_of

CONFIG = Path(__file__).resolve().parent.parent / "distributed" / "fsdp2.yaml"   # the accelerate config


class ShardingError(ValueError):
    """Something asked of a sharded run that has no sharded form (raised before any weight changes)."""


def requested() -> bool:
    """Whether this script runs under a launcher that asks for sharded models (an accelerate FSDP2
    config: :func:`~mini_unlearn.distributed.sharding_requested`)."""
    return distributed.sharding_requested()


def block_classes(model: torch.nn.Module) -> set[str]:
    """The class names whose modules become units: the accelerate config's
    ``fsdp_transformer_layer_cls_to_wrap`` if it names any, else the model's ``_no_split_modules``."""
    named = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "")
    classes = {name.strip() for name in named.split(",") if name.strip()}
    return classes or set(getattr(model, "_no_split_modules", None) or ())


def language_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The language model's blocks that become FSDP units, by name. Raises :class:`ShardingError`
    naming the classes looked for when the language model has none of them."""
    classes = block_classes(model)
    towers = find_towers(model)
    prefix = towers["language"][0] + "."
    blocks = [(name, module) for name, module in model.named_modules()
              if name.startswith(prefix) and type(module).__name__ in classes]
    if not blocks:
        raise ShardingError(
            f"model: no block of the language model ({prefix[:-1]}) is of a class to wrap {sorted(classes)}; "
            "name the decoder block class in the accelerate config (fsdp_transformer_layer_cls_to_wrap), "
            "or run without sharding: data parallelism (an accelerate config without FSDP) or lora_rank")
    return blocks


def replicated_parameters(model: torch.nn.Module) -> set[torch.nn.Parameter]:
    """The parameters every process keeps whole: the vision tower's and the projector's."""
    towers = {tower: name for tower, (name, _) in find_towers(model).items()}
    return {p for name, p in model.named_parameters() if part_of(name, towers) in ("vision", "projector")}


def require_plain_precision() -> None:
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if mixed != "no":
        raise ShardingError(f"the accelerate config sets mixed_precision: {mixed}; a sharded run reads the model's "
                            "own dtype: set mixed_precision: 'no' and load the model in bf16 "
                            "(load_vlm(..., dtype=torch.bfloat16)); the package keeps fp32 AdamW masters itself")


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """Shard ``model`` in place with FSDP2 across the launched processes (see the module docstring) and
    return it. Its parameters become DTensors: each process holds its rows of every language weight."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard
    require_plain_precision()
    blocks = language_blocks(model)
    device = distributed.device()
    distributed.state()
    mesh = init_device_mesh(device.type, (distributed.world_size(),))
    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() in ("1", "true")
    offload = os.environ.get("FSDP_OFFLOAD_PARAMS", "false").lower() in ("1", "true")
    options = dict(mesh=mesh, reshard_after_forward=reshard,
                   offload_policy=CPUOffloadPolicy() if offload else OffloadPolicy())
    model.to(device)
    for _, block in blocks:
        fully_shard(block, **options)
    fully_shard(model, ignored_params=replicated_parameters(model), **options)
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()    # every process's backward runs through every block (module doc)
    return model


@contextmanager
def for_pass(vlm):
    """The model a statistics pass reads: under a launcher that asks for sharding (:func:`requested`), a
    sharded copy of ``vlm`` (``vlm`` itself is never sharded); otherwise, or when ``vlm``'s model is
    sharded already, ``vlm`` itself."""
    yield vlm if not requested() or is_sharded(vlm.model) else sharded_copy(vlm)


def sharded_copy(vlm):
    """A copy of ``vlm`` (a :class:`~mini_unlearn.models.VLM`) whose model is sharded (:func:`shard`)."""
    copied = vlm.copy()
    shard(copied.model)
    return copied


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` was sharded by :func:`shard`."""
    from torch.distributed.fsdp import FSDPModule
    return isinstance(model, FSDPModule)


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of a sharded ``model``, whole, on the CPU, on every process (each
    sharded weight gathered in turn: one whole weight at a time on the device)."""
    state = {}
    for name, tensor in model.state_dict().items():
        whole = tensor.full_tensor() if distributed.is_sharded(tensor) else tensor
        state[name] = whole.detach().cpu()
    return state


def main(argv: list[str]) -> int:
    if argv == ["config"]:
        print(CONFIG)
        return 0
    print("usage: python -m mini_unlearn.models.sharding config   # prints the path of the accelerate config",
          file=sys.stderr)
    return 2


__all__ = ["CONFIG", "ShardingError", "block_classes", "for_pass", "full_state", "is_sharded", "language_blocks", "main",
           "replicated_parameters", "requested", "require_plain_precision", "shard", "sharded_copy"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
