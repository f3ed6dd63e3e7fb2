"""Chapter 01 · the benchmark: the exercises' checkers."""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from ... import bench
from .compare import Case, Slip, compare, slips

__all__ = ["check_attribute_distance", "check_forget_and_retain", "check_text_only_twin"]


# -- 1.1 · how different two faces are ----------------------------------------------------------------
def _distance_cases(seed: int = 11) -> list[Case]:
    """Faces of a small benchmark: a face with itself, with one attribute changed, and pairs of people."""
    small = bench.make_benchmark(n_profiles=6, seed=seed, n_utility=1)
    faces = [p.face for p in small.profiles]
    first = faces[0]
    other_hair = next(v for v in bench.ATTRIBUTE_VALUES["hair_colour"] if v != first.hair_colour)
    cases = [("a face and itself", (first, first)),
             ("a face and the same face with another hair colour",
              (first, dataclasses.replace(first, hair_colour=other_hair)))]
    for i, j in ((0, 1), (1, 2), (2, 5), (3, 4)):
        cases.append((f"the faces of people {small.profiles[i].id} and {small.profiles[j].id}", (faces[i], faces[j])))
    return cases


def _distance_counts_agreements(a, b):
    return sum(getattr(a, name) == getattr(b, name) for name in bench.ATTRIBUTE_VALUES)


def _distance_whole_face(a, b):
    return int(a != b)


@slips(Slip(_distance_whole_face, "it compares the faces as a whole (0 or 1); the distance counts, attribute "
                                  "by attribute, how many differ"),
       Slip(_distance_counts_agreements, "it counts the attributes the two faces SHARE; the distance counts "
                                         "those that differ (0 for the same face)"))
def check_attribute_distance(fn: Callable) -> None:
    """Chapter 01: ``fn(a, b)`` → how many of the two faces' attributes differ (``FaceAttributes``)."""
    compare("attribute_distance", fn, bench.attribute_distance, _distance_cases(),
            slips=check_attribute_distance.slips)


# -- 1.2 · the text-only twin -------------------------------------------------------------------------
def _twin_cases(seed: int = 11) -> list[Case]:
    """Image+text MCQ and cloze questions of a small benchmark, each with its person's name."""
    small = bench.make_benchmark(n_profiles=4, seed=seed, n_utility=1)
    cases = []
    for profile in small.profiles[:2]:
        for question in small.questions[profile.id]:
            if question.modality == bench.IMAGE_TEXT and question.task in ("mcq", "cloze"):
                cases.append((f"{question.question!r} for {profile.name}", (question.question, profile.name)))
    return cases


def _twin_lower_case_only(question, name):
    return question.replace("the person in the image", name)


@slips(Slip(_twin_lower_case_only, "\"The person in the image\" at the start of a sentence (a cloze question) "
                                   "is left as it is: replace the capitalised phrase too"))
def check_text_only_twin(fn: Callable[[str, str], str]) -> None:
    """Chapter 01: ``fn(question, name)`` turns an image+text question into its text-only twin."""
    compare("text_only_twin", fn, bench.text_only_twin, _twin_cases(), slips=check_text_only_twin.slips)


# -- 1.3 · who is forgotten, who is retained ----------------------------------------------------------
def _split_cases(seed: int = 4) -> list[Case]:
    """People ``p01…pNN`` in a seeded order; ratios whose r·n is whole, a half (round up!), or neither."""
    rng = random.Random(seed)
    cases = []
    for n, ratio in ((40, 0.05), (10, 0.15), (50, 0.05), (10, 0.05), (25, 0.10), (40, 0.15)):
        ids = [f"p{i:02d}" for i in range(1, n + 1)]
        order = ids.copy()
        rng.shuffle(order)
        cases.append((f"{n} people, ratio={ratio} (r·n = {ratio * n:g})", (ids, order, ratio)))
    return cases


def _split_round(profile_ids, forget_order, ratio):
    forget = list(forget_order[: round(ratio * len(profile_ids))])
    return forget, [i for i in profile_ids if i not in forget]


def _split_truncate(profile_ids, forget_order, ratio):
    forget = list(forget_order[: int(ratio * len(profile_ids))])
    return forget, [i for i in profile_ids if i not in forget]


def _split_retain_in_shuffled_order(profile_ids, forget_order, ratio):
    count = bench.n_forget(len(profile_ids), ratio)
    return list(forget_order[:count]), list(forget_order[count:])


@slips(Slip(_split_round, "Python's round() rounds a half to the even number (round(2.5) == 2, round(0.5) == 0); "
                          "the package rounds halves UP: ⌊r·n + ½⌋"),
       Slip(_split_truncate, "int() cuts r·n down (int(1.5) == 1); the package rounds it to the nearest whole "
                             "number, halves up: ⌊r·n + ½⌋"),
       Slip(_split_retain_in_shuffled_order, "the retain people come in the shuffled forget order; keep them in "
                                             "the order of profile_ids (every person who is not forgotten)"))
def check_forget_and_retain(fn: Callable) -> None:
    """Chapter 01: ``fn(profile_ids, forget_order, ratio)`` → ``(forget, retain)``, two lists of IDs."""
    def as_lists(f):
        return lambda *args: tuple(list(part) for part in f(*args))

    compare("forget_and_retain", fn, bench.forget_and_retain, _split_cases(),
            slips=check_forget_and_retain.slips, adapt=as_lists)
