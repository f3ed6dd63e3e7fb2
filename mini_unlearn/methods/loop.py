"""The loop every gradient method shares: sample forget (and retain) batches, step, log, probe.

A method supplies only its loss: ``loss_fn(model, forget_batch, retain_batch) -> {"loss": total, ...}``
(the other entries are logged). The step is the same for all of them: AdamW, gradients clipped to
norm ``grad_clip``, only the chosen part of the model trainable. The package's one training loop
(:class:`mini_unlearn.models.loop.Loop`) runs it, with a tqdm bar and the monitor's probes before
the first step, every ``probe_every`` steps and after the last (:func:`unlearning_probes`).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import contextmanager

import torch

from .. import distributed, validate
from ..models.anatomy import find_towers, part_of
from ..models.lora import LoraSettings, add_lora, remove_lora
from ..models.loop import Callback, Loop, Probe
from ..models.precision import MasterAdamW
from .base import UnlearnLog
from .data import canonical_batch, example_batches, to_device

TRAINABLE: tuple[str, ...] = ("all", "language", "vision")


def require_trainable(train: str) -> str:
    return validate.one_of(train, "train", TRAINABLE, hint="'vision' = vision tower + projector")


def trainable_parameters(model: torch.nn.Module, train: str) -> list[torch.nn.Parameter]:
    """The parameters a method may change: all, the language side (LM + head), or the vision side (tower + projector)."""
    require_trainable(train)
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
    chosen = {id(p) for p in trainable_parameters(vlm.model, train)}
    head = vlm.model.get_output_embeddings()
    targets = [name for name, module in vlm.model.named_modules()
               if isinstance(module, torch.nn.Linear) and module is not head and id(module.weight) in chosen]
    model = add_lora(vlm.model, LoraSettings(r=rank, alpha=rank, dropout=0.0, target_modules=tuple(targets)))
    vlm.model = model
    try:
        yield [p for p in model.parameters() if p.requires_grad]
    finally:
        vlm.model = remove_lora(model)
        vlm.model.eval()


def unlearning_probes(log: UnlearnLog, monitor: Callable | None, probe_every: int) -> list[Callback]:
    """An unlearning run's probes: ``monitor(model)`` before the first step, every ``probe_every`` steps
    (0: none in between) and after the last, each reading logged in ``log.probes`` as ``{"step": s, **reading}``.
    None without a monitor."""
    if monitor is None:
        return []
    return [Probe(monitor, lambda loop, reading: log.probes.append({"step": loop.step, **reading}),
                  every=probe_every, at_start=True)]


def run_gradient_loop(vlm, forget: list, retain: list | None, loss_fn: Callable | None, *, steps: int, lr: float,
                      batch_size: int, grad_clip: float, train: str, seed: int, progress: bool, monitor,
                      probe_every: int, desc: str, parameters: list[torch.nn.Parameter] | None = None,
                      step_fn: Callable | None = None, make_forget_batch: Callable = canonical_batch) -> UnlearnLog:
    """Update ``vlm.model`` in place for ``steps`` steps of ``loss_fn``; returns the :class:`UnlearnLog`.

    ``parameters`` overrides ``train``'s choice of trainable parameters.

    ``step_fn(model, forget_batch, retain_batch, optimizer, parameters) -> {"loss": total, ...}`` takes
    the whole step in place of the default one (``loss_fn`` is then None): it computes the loss,
    backpropagates, updates the parameters with ``optimizer`` and returns the terms to log
    (MIP-Editor's :func:`.mip_editor.rmisu_step`). ``make_forget_batch`` builds each forget batch
    (:func:`.data.example_batches`).

    Under a multi-process launcher each step is data-parallel (:mod:`..distributed`): every process
    draws the same batches and computes its rows; the gradients are averaged after ``backward``, and
    ``loss_fn`` builds its means with :func:`..distributed.global_mean`."""
    model = vlm.model
    device = vlm.device
    torch.manual_seed(seed)
    rng = random.Random(f"mini_unlearn/unlearn/{seed}")
    forget_stream = example_batches(vlm.processor, forget, batch_size, rng, make_forget_batch)
    retain_stream = example_batches(vlm.processor, retain, batch_size, rng) if retain else None
    parameters = trainable_parameters(model, train) if parameters is None else list(parameters)
    optimizer = MasterAdamW(parameters, lr=lr)           # fp32 masters for a bf16 model; plain AdamW for fp32
    log = UnlearnLog()

    def step(_: int):
        forget_batch = to_device(next(forget_stream), device)
        retain_batch = to_device(next(retain_stream), device) if retain_stream is not None else None
        if step_fn is not None:
            with distributed.data_parallel_step():       # its losses are whole-batch means, as loss_fn's
                losses = step_fn(model, forget_batch, retain_batch, optimizer, parameters)
        else:
            with distributed.data_parallel_step():
                losses = loss_fn(model, forget_batch, retain_batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            distributed.average_gradients(parameters)    # several processes: the whole batch's gradient
            distributed.clip_gradients(parameters, grad_clip)
            optimizer.step()
        with distributed.data_parallel_step():
            log.losses.append({name: float(distributed.mean_across(value)) for name, value in losses.items()})

    loop = Loop(model, steps, desc=desc, progress=progress, callbacks=unlearning_probes(log, monitor, probe_every),
                trains=parameters)
    loop.run(step)
    log.seconds = loop.seconds
    return log


__all__ = ["TRAINABLE", "require_trainable", "low_rank", "run_gradient_loop", "trainable_parameters",
           "unlearning_probes"]
