"""The four evaluation splits of MLLMU-Bench, and how the forget people are chosen.

* ``forget`` — the people to be forgotten: a ratio (5%, 10% or 15% in MLLMU-Bench) of the
  fictitious profiles. The sets are **nested**: the 5% people are inside the 10% people, inside the
  15% people, because all are prefixes of one seeded ordering.
* ``retain`` — the other fictitious people: everything the model must still know.
* ``test`` — the forget people again, the same questions, but their portraits in transformed views
  (pose, crop, background, colour): does forgetting generalise beyond the training pictures?
  (MLLMU-Bench's ``Test_Set``.)
* ``utility`` — stand-ins for MLLMU-Bench's real celebrities (its ``Retain_Set``): other people the
  model also learned and must keep, never part of any forget set.

One more split serves the attacks of chapter 09 and is not one of MLLMU-Bench's, so ``evaluate`` leaves
it out (it is not in :data:`SPLITS`):

* ``holdout`` — people made by the same generator whom **no model is trained on**: the "never seen"
  side of a membership-inference attack. ``split("holdout", r)`` has as many people as
  ``split("forget", r)`` (nested prefixes of the holdout people, like the forget sets).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .profiles import Profile
from .questions import MODALITIES, TASKS, QAPair, Question
from .. import validate
from ..text import fit

SPLITS: tuple[str, ...] = ("forget", "retain", "test", "utility")
HOLDOUT = "holdout"
ALL_SPLITS: tuple[str, ...] = (*SPLITS, HOLDOUT)
PAPER_RATIOS: tuple[float, ...] = (0.05, 0.10, 0.15)


def require_ratio(ratio) -> float:
    """``ratio`` as a float in (0, 1), or a ValueError/TypeError naming it."""
    if not validate.is_number(ratio):
        raise validate.WrongTypeError(f"ratio must be a number in (0, 1), e.g. 0.05; got {ratio!r} "
                                      f"({type(ratio).__name__})")
    if not 0 < ratio < 1 or math.isnan(ratio):
        raise ValueError(f"ratio must lie strictly between 0 and 1 (MLLMU-Bench uses 0.05, 0.10, 0.15); got {ratio!r}")
    return float(ratio)


def n_forget(n_profiles: int, ratio: float) -> int:
    """How many people a forget ratio selects: ``round(ratio · n)``, halves rounded up.

    Raises a ValueError naming ``ratio`` and ``n_profiles`` when that leaves nobody to forget or
    nobody to retain.
    """
    ratio = require_ratio(ratio)
    count = math.floor(ratio * n_profiles + 0.5 + 1e-9)
    if count < 1 or count >= n_profiles:
        need = math.ceil(0.5 / ratio)
        raise ValueError(
            f"too few profiles for ratio={ratio}: n_profiles={n_profiles} gives {count} forget people "
            f"(need at least 1 to forget and 1 to retain; use n_profiles >= {need} or a larger ratio)"
        )
    return count


def forget_and_retain(profile_ids: Sequence[str], forget_order: Sequence[str], ratio: float
                      ) -> tuple[list[str], list[str]]:
    """The IDs to forget and the IDs to retain at one ratio.

    ``forget``: the first :func:`n_forget` ``(len(profile_ids), ratio)`` IDs of ``forget_order`` (one
    seeded ordering of every person), so a smaller ratio's people are always among a larger one's.
    ``retain``: every other ID, in the order of ``profile_ids``. Taught in chapter 01 (exercise).
    """
    forget = list(forget_order[: n_forget(len(profile_ids), ratio)])
    chosen = set(forget)
    return forget, [i for i in profile_ids if i not in chosen]


@dataclass(frozen=True)
class Split:
    """The people of one split and every question about them."""

    name: str
    ratio: float | None
    profiles: tuple[Profile, ...]
    questions: tuple[Question, ...]
    pairs: tuple[QAPair, ...] = ()   # the training pairs of these people (empty for "test")

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.profiles]

    def select(self, task: str | None = None, modality: str | None = None, fact: str | None = None) -> list[Question]:
        """The questions of one task and/or modality and/or fact (``None`` keeps all)."""
        if task is not None:
            validate.one_of(task, "task", TASKS)
        if modality is not None:
            validate.one_of(modality, "modality", MODALITIES)
        return [q for q in self.questions
                if (task is None or q.task == task) and (modality is None or q.modality == modality)
                and (fact is None or q.fact == fact)]

    def __len__(self) -> int:
        return len(self.profiles)

    def __repr__(self) -> str:
        ratio = "" if self.ratio is None else f", ratio={self.ratio}"
        return fit(f"Split({self.name!r}{ratio}: {len(self.profiles)} people, {len(self.questions)} questions)")
