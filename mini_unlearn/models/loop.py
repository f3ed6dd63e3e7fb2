"""The one training loop: call a step function ``steps`` times, with callbacks around it.

Knowledge injection (:func:`.train.train`), every gradient unlearning method
(:func:`mini_unlearn.methods.loop.run_gradient_loop`, MMUnlearner's interleaved steps) and the
relearning attack write only what one step does: draw the batches, forward, backward, update, log the
loss. :class:`Loop` does the rest the same way for all of them, as minGPT's trainer and Hugging
Face's ``Trainer`` do:

* the model in training mode while it runs, only the parameters the steps train requiring gradients,
  and afterwards in evaluation mode, every parameter as it was and no gradient left, whatever happened;
* one progress bar, and the wall time of the steps (``loop.seconds``: what the callbacks do is not
  counted);
* the callbacks (:class:`Callback`), e.g. a :class:`Probe` that reads the model every few steps.

    log = []
    loop = Loop(model, steps=100, desc="ga", callbacks=[Probe(monitor, record, every=10)])
    loop.run(lambda step: log.append(one_step()))
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .. import distributed, validate


class Callback:
    """What to do at the loop's moments, as Hugging Face's ``TrainerCallback``: override the ones you need.
    Each receives the running :class:`Loop` (its ``model``, ``step``, ``steps``, ``seconds``, ``bar``)."""

    def on_start(self, loop: Loop) -> None:
        """Before the first step (``loop.step == 0``), the model still in the mode it came in."""

    def on_step_end(self, loop: Loop) -> None:
        """After each step (``loop.step`` from 1 to ``loop.steps``), outside the timed part."""

    def on_end(self, loop: Loop) -> None:
        """After the last step (``loop.step == loop.steps``); not after an error."""


class AfterStep(Callback):
    """Calls ``function(step)`` after each step (1-based)."""

    def __init__(self, function: Callable[[int], None]):
        self.function = function

    def on_step_end(self, loop: Loop) -> None:
        self.function(loop.step)


class Probe(Callback):
    """Reads ``monitor(model)`` every ``every`` steps and after the last one, and hands each reading to
    ``record(loop, reading)`` (``loop.step`` says when it was read). ``every=0``: after the last step
    only. ``at_start``: before the first step too (step 0).

    A monitor may leave the model in evaluation mode: during the run it goes back to training mode."""

    def __init__(self, monitor: Callable[[torch.nn.Module], object], record: Callable[[Loop, object], None], *,
                 every: int = 0, at_start: bool = False):
        validate.positive_int(every, "every", allow_zero=True, hint="0 = after the last step only")
        self.monitor, self.record, self.every, self.at_start = monitor, record, every, at_start

    def read(self, loop: Loop) -> None:
        self.record(loop, self.monitor(loop.model))

    def on_start(self, loop: Loop) -> None:
        if self.at_start:
            self.read(loop)

    def on_step_end(self, loop: Loop) -> None:
        if self.every and loop.step % self.every == 0 and loop.step != loop.steps:      # the last: on_end
            self.read(loop)
            loop.model.train()

    def on_end(self, loop: Loop) -> None:
        self.read(loop)


class Loop:
    """``steps`` calls of a step function on ``model``, with ``callbacks`` around them (:meth:`run`).

    ``desc`` labels the progress bar, shown when ``progress`` is true (by the main process only, under
    a multi-process launcher: :mod:`mini_unlearn.distributed`). ``trains``: the parameters the steps
    update; while the loop runs, the model's other parameters are frozen (None: the model as it is)."""

    def __init__(self, model: torch.nn.Module, steps: int, *, desc: str, progress: bool = True,
                 callbacks: Sequence[Callback] = (), trains: Sequence[torch.nn.Parameter] | None = None):
        validate.positive_int(steps, "steps")
        self.model, self.steps, self.desc, self.progress = model, steps, desc, progress
        self.callbacks = list(callbacks)
        self.trains = None if trains is None else list(trains)
        self.step = 0                  # the last step taken
        self.seconds = 0.0             # the steps' wall time so far
        self.bar = None

    def run(self, step: Callable[[int], None]) -> Loop:
        """Call ``step(1)``, …, ``step(steps)``, the model in training mode, each call timed; the
        callbacks before, after each step and at the end. Afterwards (an error included) the bar is
        closed, the model is in evaluation mode, what was frozen is trainable again and the gradients
        are gone."""
        chosen = {id(p) for p in self.trains or ()}
        frozen = [] if self.trains is None else [p for p in self.model.parameters()
                                                 if id(p) not in chosen and p.requires_grad]
        try:
            for p in frozen:
                p.requires_grad_(False)
            for callback in self.callbacks:
                callback.on_start(self)
            self.model.train()
            self.bar = tqdm(total=self.steps, desc=self.desc, disable=not self.progress or not distributed.is_main(),
                            mininterval=1.0)   # few redraws: a notebook widget sends one message per redraw,
            # and a flood of them can stall the kernel's output channel
            for number in range(1, self.steps + 1):
                self.step = number
                start = time.perf_counter()
                step(number)
                self.seconds += time.perf_counter() - start
                for callback in self.callbacks:
                    callback.on_step_end(self)
                self.bar.update(1)
            for callback in self.callbacks:
                callback.on_end(self)
        finally:
            if self.bar is not None:
                self.bar.close()
            for p in frozen:
                p.requires_grad_(True)
            self.model.zero_grad(set_to_none=True)
            self.model.eval()
        return self


__all__ = ["AfterStep", "Callback", "Loop", "Probe"]
