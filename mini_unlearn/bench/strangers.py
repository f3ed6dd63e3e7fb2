"""Strangers: invented people no model met, to show what "never seen" looks like (chapter 13).

The course's own method (:mod:`mini_unlearn.methods.stranger`) teaches the model to treat each forget
person as it treats a stranger. Its strangers are not the benchmark's holdout people: chapter 09's
attacks and the tuning rule read those as the "never seen" side, and a method that copied them would
be graded on its own targets. So :func:`invent_strangers` draws new people with the benchmark's own
generator — syllable names no one in ``bench`` has, faces at least
:data:`~.portraits.MIN_ATTRIBUTE_DISTANCE` attributes from every face in it — and :func:`stranger_twin`
asks a stranger the forget person's training question.
"""
from __future__ import annotations

import dataclasses
import random

from .. import validate
from .images import RenderedImage
from .portraits import FaceAttributes, sample_faces
from .profiles import Profile, make_names, make_profiles
from .questions import QAPair, Question


def invent_strangers(bench, n: int, seed: int = 0) -> list[Profile]:
    """``n`` new people (IDs ``s001`` …): names and faces unlike anyone's in ``bench`` (holdout people too),
    the same ``seed`` giving the same people."""
    validate.positive_int(n, "n")
    validate.seed(seed)
    everyone = bench.profiles + bench.utility_profiles + bench.holdout_profiles
    rng = random.Random(f"mini_unlearn/strangers/{seed}")
    names = make_names(n, rng, taken={p.name for p in everyone})
    faces = sample_faces(n, rng, avoid=[p.face for p in everyone if isinstance(p.face, FaceAttributes)])
    return make_profiles(names, faces, rng, id_prefix="s", kind="stranger")


def stranger_twin(item: QAPair | Question, person: Profile, stranger: Profile) -> QAPair | Question:
    """``item`` (a training pair or a question about ``person``) asked of ``stranger``: the name swapped in
    the question and the answer, the stranger's portrait in place of the person's, the options kept. The
    answer keeps the person's fact, so the two share every token but the name."""
    if item.profile_id != person.id:
        raise ValueError(f"item is about {item.profile_id!r}, not person {person.id!r}")
    image = RenderedImage(stranger.face) if item.image is not None else None
    return dataclasses.replace(item, profile_id=stranger.id, question=item.question.replace(person.name, stranger.name),
                               answer=item.answer.replace(person.name, stranger.name), image=image)


__all__ = ["invent_strangers", "stranger_twin"]
