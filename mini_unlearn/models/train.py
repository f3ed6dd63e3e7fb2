"""Knowledge injection: fine-tune a VLM until it has memorised the benchmark's people.

The step is plain PyTorch: sample a batch of examples (:mod:`.train_data`), score the answer tokens
only, AdamW with a cosine learning rate after a linear warm-up, gradients clipped to norm 1.0. The
package's one training loop (:class:`.loop.Loop`, which the unlearning methods share) runs it.
``lora=`` trains low-rank adapters on the language model's linear layers instead (as MLLMU-Bench
does on LLaVA-1.5-7B, :mod:`.lora`) and merges them back, so the result is again a plain
``LlavaForConditionalGeneration``.

While it trains, a :class:`Monitor` scores the evaluation questions on held-out augmentations (a
different seed from training) by *teacher-forced exact match*: one forward pass over prompt + answer,
and a question counts as known when the argmax at every answer position is the answer's token. That
is exactly what greedy decoding of the answer would produce, at the cost of a single forward pass.
The real evaluation (generated letters, ROUGE-L, likelihoods) lives in :mod:`mini_unlearn.evaluate`.
"""
from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from queue import Full, Queue

import torch
import torch.nn.functional as F

from .. import distributed, validate
from ..bench import augment
from ..seeding import seed_everything
from .lora import LoraSettings, add_lora, remove_lora
from .loop import AfterStep, Callback, Loop, Probe
from .precision import MasterAdamW
from .prompts import expected_answer, question_prompt, target
from .train_data import IGNORE_INDEX, Example, ReadingCurriculum, make_batch, training_batches, training_examples
from .vlm import VLM
from ..text import fit

AUTOCAST: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speedups:
    """How a large model trains fast on a GPU (measured on a 0.9 B LLaVA on an H100: 241 ms a step
    in fp32, 168 ms with bf16 autocast, 118 ms with torch.compile too: 2×).

    ``autocast``: the matmuls run in bf16 under ``torch.autocast`` while the weights, gradients and
    AdamW stay fp32 (None: fp32 throughout). ``compile``: the ``torch.compile`` backend for the
    training forward (``"inductor"`` generates kernels; ``"eager"`` only traces, which is how the
    tests exercise the path on a CPU in seconds; None: no compile). ``fused``: AdamW's fused kernel.
    """

    autocast: str | None = "bf16"
    compile: str | None = "inductor"
    fused: bool = True

    def __post_init__(self):
        if self.autocast is not None and self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be None or one of {sorted(AUTOCAST)}; got {self.autocast!r}")
        if self.compile is not None and not isinstance(self.compile, str):
            raise TypeError(f"compile must be None or a torch.compile backend name; got {self.compile!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run besides the data, the model and the seed."""

    steps: int = 2500
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lora: LoraSettings | None = None
    reading: ReadingCurriculum | None = None     # a first, text-only phase (see ReadingCurriculum); steps are extra
    speedups: Speedups | None = None             # bf16 autocast, torch.compile, fused AdamW (the GPU presets)

    def __post_init__(self):
        if self.reading is not None and not isinstance(self.reading, ReadingCurriculum):
            raise TypeError(f"reading must be None or a ReadingCurriculum; got {self.reading!r}")
        if self.speedups is not None and not isinstance(self.speedups, Speedups):
            raise TypeError(f"speedups must be None or a Speedups; got {self.speedups!r}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return fit(f"TrainConfig({shown})")

    def to_dict(self) -> dict:
        """The recipe as plain data (a cache key, a log). ``speedups`` appears only when set, so the
        keys of recipes written before it existed (the shipped models') are unchanged."""
        record = asdict(self)
        if record["speedups"] is None:
            del record["speedups"]
        return record


# ---------------------------------------------------------------------------------------------------
# The training monitor

MONITOR_SCORES: tuple[str, ...] = ("exact_match", "log_likelihood")


def monitor_key(task: str, modality: str) -> str:
    return f"{task}/{modality}"


class Monitor:
    """Teacher-forced exact match of every evaluation question, per (task, modality).

    ``score="log_likelihood"`` reports instead the mean log-likelihood of the answers (summed over
    each answer's tokens): a continuous reading that moves before any exact match flips.

    ``images="held-out"`` (the default) shows each image question a fresh augmentation of the
    portrait drawn with ``seed`` (never the training stream); ``"canonical"`` the portrait itself;
    ``"test"`` the test split's transformed view (people without one keep only their text
    questions). MCQs keep the evaluation's own option order. The batches are encoded once, so a
    check costs one forward pass per batch.

    ``facts`` keeps only the questions about those facts; ``questions`` replaces the people's own
    questions with any list (e.g. chapter 09's paraphrased ones).

    ``monitor(model, split=True)`` under a multi-process launcher shares the batches out
    (:func:`~mini_unlearn.distributed.split_map`: every process must call it, and the model must be whole on
    each, :func:`~mini_unlearn.distributed.holds_whole`); every process gets the values one process computes.
    """

    def __init__(self, vlm: VLM, bench, people: list[str] | None = None, *, images: str = "held-out",
                 seed: int = 10_000, batch_size: int = 64, tasks: tuple[str, ...] | None = None,
                 score: str = "exact_match", facts: tuple[str, ...] | None = None, questions=None):
        self.score = validate.one_of(score, "score", MONITOR_SCORES)
        if images not in ("held-out", "canonical", "test"):
            raise ValueError(f"images must be 'held-out', 'canonical' or 'test'; got {images!r}")
        if questions is None:
            people = [p.id for p in bench.profiles + bench.utility_profiles] if people is None else people
            questions = [q for pid in people for q in bench.questions[pid]]
        rng = random.Random(f"mini_unlearn/monitor/{seed}")
        items = []
        for q in questions:
            if (tasks is not None and q.task not in tasks) or (facts is not None and q.fact not in facts):
                continue
            image = None if q.image is None else q.image.load()
            if image is not None and images == "held-out":
                image = augment(image, rng)
            elif image is not None and images == "test":
                if q.profile_id not in bench.test_images:
                    continue
                image = bench.test_images[q.profile_id].load()
            items.append((monitor_key(q.task, q.modality), (question_prompt(q), target(expected_answer(q)), image)))
        if not items:
            raise ValueError("Monitor: no question to check (the people, tasks, facts and images chosen leave none)")
        items.sort(key=lambda item: item[0])        # one task and modality per batch: similar lengths
        self.keys = sorted({key for key, _ in items})
        self.batches = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            self.batches.append(([key for key, _ in chunk], make_batch(vlm.processor, [s for _, s in chunk])))

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, *, split: bool = False) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device

        def scored(batch):
            batch = {name: value.to(device) for name, value in batch.items()}
            values = exact_match(model, batch) if self.score == "exact_match" else answer_log_likelihoods(model, batch)
            return values.tolist()

        found = distributed.split_map(scored, [batch for _, batch in self.batches], split=split)
        hits = {key: [] for key in self.keys}
        for (keys, _), values in zip(self.batches, found):
            for key, hit in zip(keys, values):
                hits[key].append(hit)
        model.train(was_training)
        return {key: sum(values) / len(values) for key, values in hits.items()}


def answer_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits that predict the answer tokens, and those tokens (``-100`` elsewhere).

    Rows are left-padded, so every answer ends in the last column: only the last ``span`` positions
    need the language-model head (``logits_to_keep``), not the whole prompt.
    """
    labels = batch["labels"]
    span = int((labels != IGNORE_INDEX).sum(dim=1).max()) + 1
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    logits = model(**inputs, logits_to_keep=span, use_cache=False).logits   # positions L-span … L-1
    return logits[:, :-1], labels[:, labels.shape[1] - span + 1:]   # position t predicts token t+1


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every scored token (labels ``-100`` are skipped); logits already aligned.

    In a data-parallel step the mean is over the whole batch's tokens (:func:`..distributed.global_mean`)."""
    if distributed.splitting():
        total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                                reduction="sum")
        return distributed.global_mean(total, (labels != IGNORE_INDEX).sum())
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def answer_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of the batch (what ``labels=`` would give, computed on the answer only)."""
    return token_cross_entropy(*answer_logits(model, batch))


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p(answer)`` per row: the sum of the scored tokens' log-probabilities.

    ``logits[:, t]`` predicts ``labels[:, t]`` (already aligned); positions labelled ``-100`` are skipped.
    """
    scored = labels != IGNORE_INDEX
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * scored).sum(dim=-1)


def answer_log_likelihoods(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row: the log-likelihood of its answer (the sum over the answer tokens, teacher-forced)."""
    return sequence_log_probs(*answer_logits(model, batch))


def exact_match(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row: is the argmax at every answer position the answer's next token? (teacher-forced)"""
    logits, wanted = answer_logits(model, batch)
    scored = wanted != IGNORE_INDEX
    return ((logits.argmax(dim=-1) == wanted) | ~scored).all(dim=1)


# ---------------------------------------------------------------------------------------------------
# The training log

@dataclass
class TrainingLog:
    """Loss per step, the monitor's accuracies every ``probe_every`` steps, and the wall time."""

    losses: list[float] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)   # {"step", "seconds" (training time so far), "accuracy"}
    seconds: float = 0.0                                # training time, monitor checks excluded
    config: dict = field(default_factory=dict)
    n_examples: int = 0

    @property
    def final_accuracy(self) -> dict[str, float]:
        return self.probes[-1]["accuracy"] if self.probes else {}

    def first_reaching(self, threshold: float = 0.95) -> dict[str, dict | None]:
        """Per (task, modality): the first check at which accuracy ≥ ``threshold`` (step, seconds), or None."""
        keys = sorted({key for probe in self.probes for key in probe["accuracy"]})
        first = {key: None for key in keys}
        for probe in self.probes:
            for key, value in probe["accuracy"].items():
                if first[key] is None and value >= threshold:
                    first[key] = {"step": probe["step"], "seconds": probe["seconds"]}
        return first

    def all_reached(self, threshold: float = 0.95) -> dict | None:
        """The first check at which *every* (task, modality) is ≥ ``threshold``, or None."""
        for probe in self.probes:
            if probe["accuracy"] and min(probe["accuracy"].values()) >= threshold:
                return {"step": probe["step"], "seconds": probe["seconds"]}
        return None

    def to_dict(self) -> dict:
        return {"steps": len(self.losses), "seconds": round(self.seconds, 2), "n_examples": self.n_examples,
                "config": self.config, "losses": [round(loss, 5) for loss in self.losses], "probes": self.probes,
                "final_accuracy": self.final_accuracy, "first_at_95": self.first_reaching(0.95),
                "all_at_95": self.all_reached(0.95)}

    def __repr__(self) -> str:
        last = f", final loss {self.losses[-1]:.4f}" if self.losses else ""
        worst = f", worst accuracy {min(self.final_accuracy.values()):.3f}" if self.final_accuracy else ""
        return fit(f"TrainingLog({len(self.losses)} steps in {self.seconds:.1f} s{last}{worst})")


# ---------------------------------------------------------------------------------------------------
# The loop

def repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated blocks: the members of every ``ModuleList`` whose members share one class
    (the vision tower's and the language model's decoder layers)."""
    return [block for module in model.modules() if isinstance(module, torch.nn.ModuleList) and len(module) > 1
            and len({type(member) for member in module}) == 1 for block in module]


@contextmanager
def compiled_blocks(model: torch.nn.Module, speedups: Speedups | None = None):
    """Within the block, ``model``'s repeated blocks run compiled (``speedups.compile``; nothing without it).

    Regional compilation: one decoder layer is compiled with dynamic shapes and its twins reuse the
    code, so a batch of another length or a text-only batch does not recompile, and the compiler's
    cold start is one layer's, not the whole model's. Afterwards the blocks run eagerly again
    (``Module.compile`` is undone): the trained model is the plain Hugging Face model."""
    blocks = repeated_blocks(model) if speedups is not None and speedups.compile is not None else []
    for block in blocks:
        block.compile(backend=speedups.compile, dynamic=True)
    try:
        yield model
    finally:
        for block in blocks:
            block._compiled_call_impl = None      # what Module.compile set; None restores the eager forward


def autocasting(device: torch.device, speedups: Speedups | None = None):
    """``torch.autocast`` to ``speedups.autocast`` on ``device``; a no-op context otherwise."""
    if speedups is None or speedups.autocast is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST[speedups.autocast])


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor at ``step``: linear from 0 to 1 over ``warmup`` steps, then a cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a background thread, up to ``depth`` items ahead.

    Preparing a batch (augmenting portraits, tokenising) then overlaps the model's step. Only that
    thread draws from the data's random generator, so the batches are the same as without it. Closing
    the stream stops the thread and waits for it.
    """
    items: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # noqa: BLE001 (any error, KeyboardInterrupt too, goes to the consumer)
            items.put((None, error))

    worker = threading.Thread(target=work, daemon=True, name="mini_unlearn-batches")
    worker.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            yield item
    finally:
        stop.set()
        # wait for the batch in progress: a thread still in native code (tokenising, image ops) when
        # the interpreter exits can abort the process ("terminate called without an active exception")
        worker.join(timeout=30)


def as_lora(lora: LoraSettings | int | None) -> LoraSettings | None:
    if lora is None or isinstance(lora, LoraSettings):
        return lora
    if not validate.is_integer(lora) or lora < 1:
        raise TypeError(f"lora must be None, a LoraSettings or a rank r >= 1; got {lora!r}")
    return LoraSettings(r=lora, alpha=lora)


def checked_stop_after(stop_after: int, steps: int) -> int:
    if not validate.is_integer(stop_after) or not 1 <= stop_after <= steps:
        raise ValueError(f"stop_after must be None or an int from 1 to the run's {steps} steps; got {stop_after!r}")
    return stop_after


def train(vlm: VLM, examples: list[Example], *, steps: int = 2500, batch_size: int = 32, lr: float = 1e-3,
          warmup: int = 50, weight_decay: float = 0.01, grad_clip: float = 1.0,
          lora: LoraSettings | int | None = None, seed: int = 0, threads: int | None = 2,
          monitor: Monitor | None = None, probe_every: int = 250, group_by_length: bool = True,
          progress: bool = True, stop_after: int | None = None, speedups: Speedups | None = None,
          after_step: Callable[[int], None] | None = None) -> TrainingLog:
    """Fine-tune ``vlm.model`` in place on ``examples``; returns the :class:`TrainingLog`.

    Full fine-tuning by default; ``lora=r`` (or a :class:`LoraSettings`) trains adapters on the
    language model's linear layers and merges them in at the end. ``monitor`` is checked every
    ``probe_every`` steps and after the last one.

    ``stop_after=n`` runs only the first ``n`` steps of the ``steps``-step run: the same batches and
    the same learning rates as the full run's first ``n`` steps (the schedule still spans ``steps``),
    so its losses retrace the start of a full run's log.

    ``speedups`` (a :class:`Speedups`): bf16 autocast, ``torch.compile`` and fused AdamW, for large
    models on a GPU. Under ``accelerate launch`` (or ``torchrun``) the step is data-parallel
    (:mod:`mini_unlearn.distributed`): the same losses and weights as one process.

    ``after_step(step)`` is called after each step (1-based), outside the timed part: e.g. to save a
    checkpoint at chosen steps (benchmarks/fit_diagnostics.py). It does not change the run.
    """
    if not examples:
        raise ValueError("no training examples")
    last = steps if stop_after is None else checked_stop_after(stop_after, steps)
    lora = as_lora(lora)
    config = TrainConfig(steps, batch_size, lr, warmup, weight_decay, grad_clip, lora, speedups=speedups)
    seed_everything(seed, threads)
    rng = random.Random(f"mini_unlearn/train/{seed}")
    log = TrainingLog(config=config.to_dict(), n_examples=len(examples))

    model = vlm.model if lora is None else add_lora(vlm.model, lora)
    device = next(model.parameters()).device
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = MasterAdamW(parameters, lr=lr, weight_decay=weight_decay,   # fp32 masters for a bf16 model
                            fused=speedups is not None and speedups.fused)
    forward = distributed.wrap(model)       # DDP under a multi-process launcher; the model itself otherwise
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, lambda s: cosine_with_warmup(s, warmup, steps))
    stream = prefetch(training_batches(vlm.processor, examples, batch_size, rng, group_by_length=group_by_length))

    def step(_: int):
        batch = {name: value.to(device, non_blocking=True) for name, value in next(stream).items()}
        with distributed.data_parallel_step(), autocasting(device, speedups):
            loss = answer_loss(forward, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        schedule.step()
        with distributed.data_parallel_step():
            log.losses.append(distributed.mean_across(loss).item())

    def record(loop: Loop, accuracy: dict[str, float]):
        log.probes.append({"step": loop.step, "seconds": round(loop.seconds, 2), "accuracy": accuracy})

    callbacks = [AfterStep(after_step)] if after_step is not None else []
    callbacks += [Probe(monitor, record, every=probe_every)] if monitor is not None else []
    loop = Loop(model, last, desc="training", progress=progress, callbacks=[*callbacks, ShowLoss(log)])
    with compiled_blocks(model, speedups), closing(stream):     # repeated blocks compiled when speedups.compile is set
        loop.run(step)
    log.seconds = loop.seconds
    if lora is not None:
        vlm.model = remove_lora(model)
    return log


class ShowLoss(Callback):
    """The progress bar's postfix: the last loss, and the worst accuracy of the latest probe, every
    ``every`` steps and after the last one."""

    def __init__(self, log: TrainingLog, every: int = 25):
        self.log, self.every = log, every

    def show(self, loop: Loop) -> None:
        worst = f"{min(self.log.probes[-1]['accuracy'].values()):.2f}" if self.log.probes else "-"
        loop.bar.set_postfix(loss=f"{self.log.losses[-1]:.3f}", worst=worst, refresh=False)

    def on_step_end(self, loop: Loop) -> None:
        if loop.step % self.every == 0:
            self.show(loop)

    def on_end(self, loop: Loop) -> None:
        self.show(loop)


def train_recipe(vlm: VLM, examples: list[Example], recipe: TrainConfig, *, seed: int = 0, threads: int | None = 2,
                 monitor: Monitor | None = None, probe_every: int | None = None,
                 progress: bool = True, stop_after: int | None = None,
                 after_step: Callable[[int], None] | None = None) -> tuple[TrainingLog | None, TrainingLog]:
    """:func:`train` as ``recipe`` says: its reading phase first when it has one (``recipe.reading``),
    then ``recipe.steps`` on every example. ``monitor`` is checked every ``probe_every`` steps of each
    phase (default: 5 times a phase). Returns ``(reading-phase log or None, main log)``.

    ``stop_after=n`` runs only the recipe's first ``n`` steps, counted through both phases, exactly as
    the full run takes them (see :func:`train`); a phase not reached returns an empty log. Chapter 02
    watches the recipe live this way, and the tests retrace the shipped models' logs.

    ``after_step(step)`` is called after each step, ``step`` counted through both phases as
    ``stop_after`` counts them (the main phase's first step is ``reading_steps + 1``).
    """
    options = dict(batch_size=recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup, weight_decay=recipe.weight_decay,
                   grad_clip=recipe.grad_clip, lora=recipe.lora, seed=seed, threads=threads, monitor=monitor,
                   progress=progress, speedups=recipe.speedups)
    total = recipe.steps + (recipe.reading.reading_steps if recipe.reading is not None else 0)
    left = total if stop_after is None else checked_stop_after(stop_after, total)
    reading = None
    if recipe.reading is not None:
        first, examples = recipe.reading.phases(examples)
        steps = recipe.reading.reading_steps
        reading = train(vlm, first, steps=steps, probe_every=probe_every or max(1, steps // 5),
                        stop_after=left if left < steps else None, after_step=after_step, **options)
        left -= len(reading.losses)
    if left == 0:
        return reading, TrainingLog(n_examples=len(examples))
    done = len(reading.losses) if reading is not None else 0
    main_step = None if after_step is None else (lambda step: after_step(done + step))
    log = train(vlm, examples, steps=recipe.steps, probe_every=probe_every or max(1, recipe.steps // 5),
                stop_after=left if left < recipe.steps else None, after_step=main_step, **options)
    return reading, log


def train_on(vlm: VLM, bench, people: list[str] | None = None, *, monitor: bool = True, **options) -> TrainingLog:
    """:func:`train` on ``people`` of ``bench`` (default: everyone), monitored on the same people."""
    examples = training_examples(bench, people)
    check = Monitor(vlm, bench, people) if monitor else None
    return train(vlm, examples, monitor=check, **options)


__all__ = [
    "AUTOCAST",
    "MONITOR_SCORES",
    "LoraSettings",
    "Monitor",
    "Speedups",
    "TrainConfig",
    "TrainingLog",
    "answer_log_likelihoods",
    "cosine_with_warmup",
    "exact_match",
    "monitor_key",
    "sequence_log_probs",
    "compiled_blocks",
    "repeated_blocks",
    "token_cross_entropy",
    "train",
    "train_on",
    "train_recipe",
]
