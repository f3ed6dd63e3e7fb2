"""The loop every gradient method shares: sample forget (and retain) batches, step, log, probe.

A method supplies only its loss: ``loss_fn(model, forget_batch, retain_batch) -> {"loss": total, ...}``
(the other entries are logged). The loop does the rest the same way for all of them: AdamW,
gradients clipped to norm ``grad_clip``, only the chosen part of the model trainable, a tqdm bar,
and the monitor's probes before the first step and every ``probe_every`` steps.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..models.anatomy import find_towers, part_of
from ..models.precision import MasterAdamW
from ..models.train import quiet_peft
from .base import UnlearnLog
from .data import example_batches, to_device

TRAINABLE: tuple[str, ...] = ("all", "language", "vision")


def check_trainable(train: str) -> str:
    if train not in TRAINABLE:
        raise ValueError(f"train must be one of {TRAINABLE} ('vision' = vision tower + projector); got {train!r}")
    return train


def trainable_parameters(model: torch.nn.Module, train: str) -> list[torch.nn.Parameter]:
    """The parameters a method may change: all, the language side (LM + head), or the vision side (tower + projector)."""
    check_trainable(train)
    towers = {tower: name for tower, (name, _) in find_towers(model).items()}
    chosen = []
    for name, parameter in model.named_parameters():
        part = part_of(name, towers)
        vision_side = part in ("vision", "projector")
        if train == "all" or (train == "vision") == vision_side:
            chosen.append(parameter)
    return chosen


@contextmanager
def low_rank(vlm, train: str, rank: int):
    """Within the block ``vlm.model`` carries LoRA adapters of rank ``rank`` (``lora_alpha = rank``) on every
    linear layer of ``train``'s side but the LM head; yields the adapters' parameters (the only ones to
    train). Afterwards the adapters are merged: ``vlm.model`` is a plain Hugging Face model again.

    This is how a gradient method fits a 7 B model on one GPU (chapter 11, :mod:`.memory`): AdamW keeps
    state for ``r × (in + out)`` numbers per layer instead of ``in × out``."""
    from peft import LoraConfig, get_peft_model
    chosen = {id(p) for p in trainable_parameters(vlm.model, train)}
    head = vlm.model.get_output_embeddings()
    targets = [name for name, module in vlm.model.named_modules()
               if isinstance(module, torch.nn.Linear) and module is not head and id(module.weight) in chosen]
    with quiet_peft():
        model = get_peft_model(vlm.model, LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0,
                                                     target_modules=targets))
    vlm.model = model
    try:
        yield [p for p in model.parameters() if p.requires_grad]
    finally:
        with quiet_peft():
            vlm.model = model.merge_and_unload()
        vlm.model.eval()


def run_gradient_loop(vlm, forget: list, retain: list | None, loss_fn: Callable, *, steps: int, lr: float,
                      batch_size: int, grad_clip: float, train: str, seed: int, progress: bool, monitor,
                      probe_every: int, desc: str, parameters: list[torch.nn.Parameter] | None = None,
                      grad_masks: dict[int, torch.Tensor] | None = None) -> UnlearnLog:
    """Update ``vlm.model`` in place for ``steps`` steps of ``loss_fn``; returns the :class:`UnlearnLog`.

    ``parameters`` overrides ``train``'s choice of trainable parameters; ``grad_masks`` (``id(parameter)``
    → a 0/1 mask broadcastable to it) multiplies that parameter's gradient, so its masked entries never
    move (AdamW without weight decay leaves an entry whose gradient is always 0 untouched).

    Under a multi-process launcher each step is data-parallel (:mod:`..distributed`): every process
    draws the same batches and computes its rows; the gradients are averaged after ``backward``, and
    ``loss_fn`` builds its means with :func:`..distributed.global_mean`."""
    model = vlm.model
    device = vlm.device
    torch.manual_seed(seed)
    rng = random.Random(f"mini_unlearn/unlearn/{seed}")
    forget_stream = example_batches(vlm.processor, forget, batch_size, rng)
    retain_stream = example_batches(vlm.processor, retain, batch_size, rng) if retain else None
    parameters = trainable_parameters(model, train) if parameters is None else list(parameters)
    chosen = {id(p) for p in parameters}
    frozen = [p for p in model.parameters() if id(p) not in chosen and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    handles = [p.register_hook(lambda g, mask=grad_masks[id(p)]: g * mask.to(g.dtype))  # noqa: B008 (bound per p)
               for p in parameters if grad_masks and id(p) in grad_masks]
    optimizer = MasterAdamW(parameters, lr=lr)           # fp32 masters for a bf16 model; plain AdamW for fp32
    log = UnlearnLog()

    def probe(step: int):
        if monitor is not None:
            log.probes.append({"step": step, **monitor(model)})

    try:
        probe(0)
        model.train()
        bar = tqdm(total=steps, desc=desc, disable=not progress or not distributed.is_main(), mininterval=1.0)
        for step in range(1, steps + 1):
            start = time.perf_counter()
            forget_batch = to_device(next(forget_stream), device)
            retain_batch = to_device(next(retain_stream), device) if retain_stream is not None else None
            with distributed.data_parallel_step():
                losses = loss_fn(model, forget_batch, retain_batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            distributed.average_gradients(parameters)        # several processes: the whole batch's gradient
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            optimizer.step()
            with distributed.data_parallel_step():
                log.losses.append({name: float(distributed.mean_across(value)) for name, value in losses.items()})
            log.seconds += time.perf_counter() - start
            if probe_every and step % probe_every == 0 and step != steps:
                probe(step)
                model.train()
            bar.update(1)
        bar.close()
        probe(steps)
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
    return log


__all__ = ["TRAINABLE", "check_trainable", "low_rank", "run_gradient_loop", "trainable_parameters"]
