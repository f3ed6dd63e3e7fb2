"""The relearning attack: teach a little of what was forgotten back, and watch the rest return (chapter 09).

Knowledge that was only *hidden* comes back from a few gradient steps on a small part of it (Lynch et
al., 2024; Hu et al., 2024): fine-tune a copy of the unlearned model on some of the forget people's
facts — by default one fact per person (``birthplace``, its two training pairs: with the portrait and by
name) — and measure, every few steps, how many of their **other** five facts it recalls, in both
modalities. (30 steps at lr 1e-4 were chosen on the course model so that the retain-only model learns
almost nothing beyond the taught fact: the figure of chapter 09.)

The honest baseline is the same fine-tuning applied to the **retain-only model**, which never saw the
forget people: whatever it recalls after the steps was learned from the steps alone (for facts it was
never taught, that is near nothing). An unlearned model that recalls much more than that had kept the
facts all along.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from .. import validate
from ..bench import FACTS, MODALITIES
from ..methods.loop import run_gradient_loop
from ..models.train import Monitor, answer_loss
from ..models.train_data import training_examples


@dataclass(frozen=True)
class RelearnConfig:
    """What is taught back and how: ``facts`` of each forget person in ``modalities`` (their training
    pairs), ``steps`` AdamW steps at ``lr`` on batches of ``batch_size``; recall of the other facts
    (``tasks``, teacher-forced exact match, canonical portraits) every ``probe_every`` steps."""

    facts: tuple[str, ...] = ("birthplace",)
    modalities: tuple[str, ...] = ("image+text", "text")
    steps: int = 30
    lr: float = 1e-4
    batch_size: int = 8
    probe_every: int = 5
    tasks: tuple[str, ...] = ("cloze",)
    seed: int = 0

    def __post_init__(self):
        unknown = [f for f in self.facts if f not in FACTS]
        if not self.facts or unknown:
            raise ValueError(f"facts must name some of {FACTS}; got {self.facts!r}")
        if set(self.facts) == set(FACTS):
            raise ValueError("facts: teaching every fact back leaves no other fact to measure; keep some out")
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must name some of {MODALITIES}; got {self.modalities!r}")
        for name in ("steps", "batch_size", "probe_every"):
            validate.positive_int(getattr(self, name), name)
        validate.positive(self.lr, "lr")


def relearn(vlm, bench, ratio: float = 0.05, config: RelearnConfig | None = None, *, split: str = "forget",
            progress: bool = True, **overrides) -> pd.DataFrame:
    """Fine-tune a copy of ``vlm`` on part of the ``split`` people's facts; the recall curve of the rest.

    Returns one row per step probed (0 = before) × modality × task, with ``recall`` (exact match of the
    facts that were *not* taught). ``vlm`` itself is never modified. ``overrides`` set
    :class:`RelearnConfig` fields (``relearn(vlm, bench, steps=50)``).
    """
    config = replace(config or RelearnConfig(), **overrides)
    people = bench.split(split, ratio).ids
    return relearning_curve(vlm, bench, people, config, progress=progress)


def relearning_curve(vlm, bench, people: list[str], config: RelearnConfig, progress: bool = True) -> pd.DataFrame:
    """The attack itself, on ``people``: teach a copy of ``vlm`` their training pairs (not the practice
    questions) of ``config.facts`` in ``config.modalities`` with the shared gradient loop, plain descent
    on the answer's cross-entropy; every ``probe_every`` steps (and before the first) the recall of their
    **other** facts, on the canonical portraits. One row per step probed × modality × task."""
    taught = [e for e in training_examples(bench, people, practice=False)
              if e.source.fact in config.facts and e.modality in config.modalities]
    if not taught:
        raise ValueError(f"no training pair of these people teaches {config.facts} in {config.modalities}")
    others = tuple(f for f in FACTS if f not in config.facts)
    monitor = Monitor(vlm, bench, people, images="canonical", tasks=config.tasks, facts=others)
    copy = vlm.copy()
    log = run_gradient_loop(copy, taught, None, lambda model, batch, _: {"loss": answer_loss(model, batch)},
                            steps=config.steps, lr=config.lr, batch_size=config.batch_size, grad_clip=1.0,
                            train="all", seed=config.seed, progress=progress, monitor=monitor,
                            probe_every=config.probe_every, desc="relearning")
    rows = []
    for probe in log.probes:
        for key, value in probe.items():
            if key == "step":
                continue
            task, modality = key.split("/")
            rows.append({"step": probe["step"], "modality": modality, "task": task, "recall": value})
    return pd.DataFrame(rows)


__all__ = ["RelearnConfig", "relearn", "relearning_curve"]
