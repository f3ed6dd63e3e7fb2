"""The benchmark: people, their questions, their training pairs and the splits, from one seed.

``make_benchmark(n_profiles, seed)`` is fully determined by its arguments: the same arguments give
byte-identical profiles, questions and portraits on every machine. The course uses 40 people (a tiny
VLM memorises them in minutes on a CPU); ``n_profiles=500`` is MLLMU-Bench's size, for a GPU.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import pandas as pd

from .images import ImageRef, RenderedImage
from .portraits import sample_faces, test_views
from .profiles import FACTS, Profile, make_names, make_profiles
from .questions import (MODALITIES, TEMPLATES, QAPair, Question, balanced_letters, phrase, profile_questions,
                        training_pairs, with_image)
from .splits import SPLITS, Split, check_ratio, n_forget

DEFAULT_N_PROFILES = 40
DEFAULT_N_UTILITY = 10
DEFAULT_N_TEST_VIEWS = 3


@dataclass
class Benchmark:
    """People who never existed, what we ask about them, and the splits of MLLMU-Bench.

    Build one with :func:`make_benchmark` (generated) or :func:`mini_unlearn.bench.mllmu.load_mllmu`
    (the real MLLMU-Bench files). ``split(name, ratio)`` gives the people and questions of
    ``"forget"``, ``"retain"``, ``"test"`` or ``"utility"``.
    """

    name: str
    profiles: list[Profile]                       # the fictitious people (forget + retain)
    utility_profiles: list[Profile]               # the celebrity stand-ins
    questions: dict[str, list[Question]]          # profile id -> its evaluation questions
    pairs: dict[str, list[QAPair]]                # profile id -> its training pairs
    test_images: dict[str, ImageRef]              # forget-candidate id -> the transformed view used by "test"
    forget_order: list[str]                       # forget_r = the first round(r·n) of these (nested)
    forget_sets: dict[float, list[str]] = field(default_factory=dict)  # explicit sets (MLLMU files) override the order

    def __post_init__(self):
        self._by_id = {p.id: p for p in self.profiles + self.utility_profiles}

    # -- people -------------------------------------------------------------------------------
    @property
    def n_profiles(self) -> int:
        return len(self.profiles)

    def profile(self, profile_id: str) -> Profile:
        if profile_id not in self._by_id:
            raise KeyError(f"no profile with id {profile_id!r} in {self.name}")
        return self._by_id[profile_id]

    def option_sentences(self, question: Question) -> dict[str, str] | None:
        """An MCQ's options, each written as the fact's answer sentence ("… was born in {option}.").

        The correct option's sentence is the reference answer of the same fact's ``gen`` question.
        ``None`` when the fact has no sentence template (e.g. a loaded MLLMU-Bench question).
        """
        if question.task != "mcq":
            raise ValueError(f"option_sentences needs an MCQ; {question.id!r} is a {question.task!r} question")
        if question.fact not in TEMPLATES:
            return None
        name = self.profile(question.profile_id).name
        return {letter: phrase(question.fact, question.modality, name, option)[1]
                for letter, option in question.options.items()}

    def forget_ids(self, ratio: float = 0.05) -> list[str]:
        """The IDs of the people to forget at this ratio (nested across ratios)."""
        ratio = check_ratio(ratio)
        if ratio in self.forget_sets:
            return list(self.forget_sets[ratio])
        return self.forget_order[: n_forget(len(self.profiles), ratio)]

    # -- splits -------------------------------------------------------------------------------
    def split(self, name: str, ratio: float = 0.05) -> Split:
        """The people and questions of one split: "forget", "retain", "test" or "utility"."""
        if name not in SPLITS:
            raise ValueError(f"unknown split name {name!r}; expected one of {SPLITS}")
        forget = set(self.forget_ids(ratio))   # validates ratio for every split, utility included
        if name == "utility":
            people, split_ratio = self.utility_profiles, None
        elif name == "retain":
            people, split_ratio = [p for p in self.profiles if p.id not in forget], ratio
        else:
            people, split_ratio = [self.profile(i) for i in self.forget_ids(ratio)], ratio
        questions = [q for p in people for q in self.questions[p.id]]
        if name == "test":
            questions = [with_image(q, self.test_images[q.profile_id]) if q.image is not None else q
                         for q in questions]
        pairs = [] if name == "test" else [pair for p in people for pair in self.pairs[p.id]]
        return Split(name, split_ratio, tuple(people), tuple(questions), tuple(pairs))

    def train_pairs(self) -> list[QAPair]:
        """Every training pair (fictitious and utility people): what the vanilla model is taught."""
        return [pair for p in self.profiles + self.utility_profiles for pair in self.pairs[p.id]]

    def summary(self, ratio: float = 0.05) -> pd.DataFrame:
        """People and questions per split and modality at this forget ratio."""
        rows = []
        for name in SPLITS:
            split = self.split(name, ratio)
            row = {"split": name, "people": len(split)}
            for modality in MODALITIES:
                row[f"{modality} questions"] = len(split.select(modality=modality))
            row["training pairs"] = len(split.pairs)
            rows.append(row)
        return pd.DataFrame(rows).set_index("split")

    def __repr__(self) -> str:
        n_questions = sum(len(qs) for qs in self.questions.values())
        return (f"Benchmark({self.name!r}: {len(self.profiles)} fictitious people, {len(self.utility_profiles)} "
                f"utility people, {n_questions} questions)")


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer; got {seed!r} ({type(seed).__name__})")
    return seed


def _check_count(value, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an integer; got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}; got {value}")
    return value


def make_benchmark(n_profiles: int = DEFAULT_N_PROFILES, seed: int = 0, *, n_utility: int = DEFAULT_N_UTILITY,
                   n_test_views: int = DEFAULT_N_TEST_VIEWS) -> Benchmark:
    """A benchmark of ``n_profiles`` fictitious people plus ``n_utility`` utility people.

    Every random choice comes from its own stream seeded by ``seed`` (faces, names, facts, option
    order, forget order, test views), so the result depends on the arguments only.
    """
    n_profiles = _check_count(n_profiles, "n_profiles", 2)
    seed = check_seed(seed)
    n_utility = _check_count(n_utility, "n_utility", 1)
    n_test_views = _check_count(n_test_views, "n_test_views", 1)

    def stream(purpose: str) -> random.Random:
        return random.Random(f"mini_unlearn/{seed}/{purpose}")

    n_all = n_profiles + n_utility
    faces = sample_faces(n_all, stream("faces"))
    names = make_names(n_all, stream("names"))
    facts_rng = stream("facts")
    people = make_profiles(names[:n_profiles], faces[:n_profiles], facts_rng)
    utility = make_profiles(names[n_profiles:], faces[n_profiles:], facts_rng, id_prefix="u", kind="utility")

    everyone = people + utility
    letters = iter(balanced_letters(len(everyone) * len(MODALITIES) * len(FACTS), stream("letters")))
    options_rng = stream("options")
    questions, pairs = {}, {}
    for person in everyone:
        portrait = RenderedImage(person.face)
        correct = {f"{m}/{f}": next(letters) for m in MODALITIES for f in FACTS}
        questions[person.id] = profile_questions(person, portrait, correct, options_rng)
        pairs[person.id] = training_pairs(person, portrait)

    views_rng = stream("test-views")
    test_images = {}
    for person in people:
        views = test_views(person.face, n_test_views, seed=views_rng.randrange(2**31))
        test_images[person.id] = RenderedImage(person.face, views_rng.choice(views))

    forget_order = [p.id for p in people]
    stream("forget-order").shuffle(forget_order)
    return Benchmark(f"mini-mllmu(n={n_profiles}, seed={seed})", people, utility, questions, pairs,
                     test_images, forget_order)
