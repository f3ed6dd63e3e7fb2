"""What a method unlearns on: the forget people's training pairs, and the retain people's.

MLLMU-Bench's baselines unlearn on the ft_Data question–answer pairs of the forget split
(``baseline_train_split``), and use the retain split's pairs for the retain terms. The same here:
``forget_on`` picks which of the forget pairs are used — ``"image+text"`` (asked with the
portrait), ``"text"`` (asked by name) or ``"both"`` — which is how chapter 04 shows the modality
imbalance (forget by image, then ask by name).
"""
from __future__ import annotations

import random

import torch

from .. import validate
from ..bench.questions import MODALITIES
from ..bench.splits import require_ratio
from ..distributed import local_rows
from ..models.train_data import (LOSS_ON, Example, batches, canonical_batch, require_loss_on, scored_on, sequence_labels,
                                 training_examples)

FORGET_ON: tuple[str, ...] = MODALITIES + ("both",)


def require_forget_on(forget_on: str) -> str:
    return validate.one_of(forget_on, "forget_on", FORGET_ON)


def unlearning_sets(bench, ratio: float = 0.05, forget_on: str = "image+text") -> tuple[list[Example], list[Example]]:
    """(forget examples, retain examples): training pairs of the forget and the retain people.

    Raises a ValueError naming the set when either is empty or when they share a person.
    """
    require_ratio(ratio)
    require_forget_on(forget_on)
    forget_people, retain_people = bench.split("forget", ratio).ids, bench.split("retain", ratio).ids
    if not forget_people:
        raise ValueError(f"the forget set at ratio={ratio} is empty: nothing to unlearn")
    if not retain_people:
        raise ValueError(f"the retain set at ratio={ratio} is empty: the retain terms need retain people")
    shared = sorted(set(forget_people) & set(retain_people))
    if shared:
        raise ValueError(f"forget and retain sets overlap on {shared}: a person cannot be both forgotten and kept")
    forget = training_examples(bench, forget_people, practice=False)
    if forget_on != "both":
        forget = [e for e in forget if e.modality == forget_on]
    if not forget:
        raise ValueError(f"no forget pairs with forget_on={forget_on!r} at ratio={ratio}")
    retain = training_examples(bench, retain_people, practice=False)
    return forget, retain


def example_batches(processor, examples: list[Example], batch_size: int, rng: random.Random, make=canonical_batch):
    """Endless tensor batches of ``examples`` (a seeded permutation per epoch), canonical portraits.

    Unlearning shows the pictures the model was asked about, not fresh augmentations. Under a
    multi-process launcher each process keeps its own rows of every batch (:mod:`..distributed`).
    ``make(processor, chunk, rng, rows=...)`` builds a batch (default :func:`canonical_batch`; the stranger
    method's adds each row's stranger twin)."""
    for chunk in batches(examples, batch_size, rng):
        yield make(processor, chunk, rng, rows=local_rows(len(chunk)))


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {name: value.to(device) for name, value in batch.items()}


__all__ = ["FORGET_ON", "LOSS_ON", "require_forget_on", "require_loss_on", "example_batches", "scored_on", "sequence_labels",
           "to_device", "unlearning_sets"]
