"""The benchmark: people, their questions, their training pairs and the splits, from one seed.

``make_benchmark(n_profiles, seed)`` is fully determined by its arguments: the same arguments give
byte-identical profiles, questions and portraits on every machine. The course uses 40 people (a tiny
VLM memorises them in minutes on a CPU); ``n_profiles=500`` is MLLMU-Bench's size, for a GPU.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

import pandas as pd

from .images import ImageRef, RenderedImage
from .portraits import sample_faces, test_views
from .profiles import FACTS, Profile, make_names, make_profiles, recombined_names
from .questions import (MODALITIES, TEMPLATES, QAPair, Question, balanced_letters, phrase, profile_questions,
                        training_pairs, with_image)
from .splits import ALL_SPLITS, HOLDOUT, PAPER_RATIOS, SPLITS, Split, require_ratio, forget_and_retain
from .. import validate
from ..text import fit

DEFAULT_N_PROFILES = 40
DEFAULT_N_UTILITY = 10
DEFAULT_N_TEST_VIEWS = 3


@dataclass
class Benchmark:
    """People who never existed, what we ask about them, and the splits of MLLMU-Bench.

    Build one with :func:`make_benchmark` (generated) or :func:`mini_unlearn.bench.mllmu.load_mllmu`
    (the real MLLMU-Bench files). ``split(name, ratio)`` gives the people and questions of
    ``"forget"``, ``"retain"``, ``"test"`` or ``"utility"``, and of ``"holdout"``: people no model is
    trained on (chapter 09's membership attacks), whose questions and pairs sit in ``questions`` and
    ``pairs`` beside everyone else's but never in :meth:`train_pairs`.
    """

    name: str
    profiles: list[Profile]                       # the fictitious people (forget + retain)
    utility_profiles: list[Profile]               # the celebrity stand-ins
    questions: dict[str, list[Question]]          # profile id -> its evaluation questions
    pairs: dict[str, list[QAPair]]                # profile id -> its training pairs
    test_images: dict[str, ImageRef]              # forget-candidate id -> the transformed view used by "test"
    forget_order: list[str]                       # forget_r = the first round(r·n) of these (nested)
    forget_sets: dict[float, list[str]] = field(default_factory=dict)  # explicit sets (MLLMU files) override the order
    holdout_profiles: list[Profile] = field(default_factory=list)     # never trained on; holdout_r = a prefix
    forgotten: tuple[str, ...] = ()   # people earlier requests forgot: never retained (:meth:`request`)
    base: Benchmark | None = None     # a model of this benchmark continues a model of ``base`` (:meth:`background_pairs`)

    def __post_init__(self):
        self._by_id = {p.id: p for p in self.profiles + self.utility_profiles + self.holdout_profiles}

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
        return self.forget_and_retain_ids(ratio)[0]

    def forget_and_retain_ids(self, ratio: float = 0.05) -> tuple[list[str], list[str]]:
        """The IDs to forget and the IDs to retain at this ratio (:func:`.splits.forget_and_retain`).

        Explicit forget sets (MLLMU-Bench's ``forget_N`` files) name the people to forget themselves.
        """
        ratio = require_ratio(ratio)
        ids = [p.id for p in self.profiles]
        if ratio in self.forget_sets:
            forget = list(self.forget_sets[ratio])
            chosen = set(forget)
            retain = [i for i in ids if i not in chosen]
        else:
            forget, retain = forget_and_retain(ids, self.forget_order, ratio)
        if self.forgotten:                   # a request's view: whoever an earlier request forgot is never retained
            gone = set(self.forgotten)
            retain = [i for i in retain if i not in gone]
        return forget, retain

    def request(self, forget_ids, *, forgotten=(), ratio: float = 0.05) -> Benchmark:
        """This benchmark as one deletion request sees it (chapter 12, requests that keep coming).

        The view's ``split("forget", ratio)`` is ``forget_ids`` (this request's people) and its
        ``split("retain", ratio)`` every other fictitious person except ``forgotten`` (the people earlier
        requests forgot: a model asked to forget them must not be trained to keep them). The utility and
        holdout people, every person's questions and pairs (``profiles`` still lists everyone) are this
        benchmark's. The view is made for ``ratio``: it holds ``forget_ids`` as its one explicit forget set
        (:attr:`forget_sets`). Errors name the argument: an ID that is not one of the fictitious people, a
        person twice, a person both requested and forgotten, or nobody left to retain."""
        ratio = require_ratio(ratio)
        forget = self._people_ids(forget_ids, "forget_ids")
        if not forget:
            raise ValueError("forget_ids is empty: a request names at least one person to forget")
        gone = self._people_ids(forgotten, "forgotten")
        both = [i for i in forget if i in gone]
        if both:
            raise ValueError(f"forget_ids and forgotten share {both}: a person forgotten by an earlier request "
                             "cannot be requested again")
        left = [p.id for p in self.profiles if p.id not in set(forget) | set(gone)]
        if not left:
            raise ValueError(f"forget_ids and forgotten cover all {self.n_profiles} fictitious people of "
                             f"{self.name}: nobody is left to retain")
        about = f"{len(forget)} to forget" + (f", {len(gone)} forgotten before" if gone else "")
        return dataclasses.replace(self, name=f"{self.name}/request({about})", forget_sets={ratio: forget},
                                   forgotten=tuple(gone))

    def _people_ids(self, ids, name: str) -> list[str]:
        """``ids`` as a list of distinct IDs of this benchmark's fictitious people, or an error naming ``name``."""
        if isinstance(ids, str) or not isinstance(ids, (list, tuple)):
            example = [p.id for p in self.profiles[:2]]
            raise validate.WrongTypeError(f"{name} must be a list of people IDs (e.g. {example}); got {ids!r} "
                                          f"({type(ids).__name__})")
        known = {p.id for p in self.profiles}
        for i in ids:
            if not isinstance(i, str):
                raise validate.WrongTypeError(f"{name}: each ID must be a string; got {i!r} ({type(i).__name__})")
            if i not in known:
                raise ValueError(f"{name}: {i!r} is not one of the fictitious people of {self.name} "
                                 f"(their IDs: {sorted(known)[:5]}{' …' if len(known) > 5 else ''})")
        twice = sorted({i for i in ids if list(ids).count(i) > 1})
        if twice:
            raise ValueError(f"{name} names {twice} more than once")
        return list(ids)

    def holdout_ids(self, ratio: float = 0.05) -> list[str]:
        """The IDs of as many holdout people as :meth:`forget_ids` gives at this ratio (nested across ratios)."""
        count = len(self.forget_ids(ratio))
        if not self.holdout_profiles:
            raise ValueError(f"{self.name} has no holdout people (people no model was trained on): build it with "
                             f"make_benchmark(..., n_holdout={count}), or give MLLMU-Bench files a Holdout_Set")
        if count > len(self.holdout_profiles):
            raise ValueError(f"ratio={ratio} forgets {count} people but {self.name} has only "
                             f"{len(self.holdout_profiles)} holdout people to compare them with; use a smaller "
                             f"ratio or make_benchmark(..., n_holdout={count})")
        return [p.id for p in self.holdout_profiles[:count]]

    # -- splits -------------------------------------------------------------------------------
    def split(self, name: str, ratio: float = 0.05) -> Split:
        """The people and questions of one split: "forget", "retain", "test", "utility" or "holdout"."""
        if name not in ALL_SPLITS:
            raise ValueError(f"unknown split name {name!r}; expected one of {ALL_SPLITS}")
        forget, retain = self.forget_and_retain_ids(ratio)   # validates ratio for every split, utility included
        if name == "utility":
            people, split_ratio = self.utility_profiles, None
        elif name == HOLDOUT:
            people, split_ratio = [self.profile(i) for i in self.holdout_ids(ratio)], ratio
        elif name == "retain":
            people, split_ratio = [self.profile(i) for i in retain], ratio
        else:
            people, split_ratio = [self.profile(i) for i in forget], ratio
        questions = [q for p in people for q in self.questions[p.id]]
        if name == "test":
            questions = [with_image(q, self.test_images[q.profile_id]) if q.image is not None else q
                         for q in questions]
        pairs = [] if name == "test" else [pair for p in people for pair in self.pairs[p.id]]
        return Split(name, split_ratio, tuple(people), tuple(questions), tuple(pairs))

    def background_pairs(self) -> list[QAPair]:
        """Pairs every model of this benchmark is taught besides the people's own: what a pretrained model
        would bring. None for MLLMU-Bench; a generated CLEAR teaches its real faces in two wordings
        (:meth:`mini_unlearn.bench.clear.ClearBenchmark.background_pairs`). With ``base`` set, the course
        models of this benchmark start from those of ``base`` instead of from scratch
        (:mod:`mini_unlearn.models.cache`)."""
        return []

    def scored_texts(self) -> list[str]:
        """Texts the metrics score but no pair teaches (CLEAR's paraphrased and wrong answers): the
        tokenizer reads them too. None for MLLMU-Bench."""
        return []

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
        n_questions = sum(len(self.questions[p.id]) for p in self.profiles + self.utility_profiles)
        holdout = f", {len(self.holdout_profiles)} holdout people" if self.holdout_profiles else ""
        return fit(f"Benchmark({self.name!r}: {len(self.profiles)} fictitious people, "
                   f"{len(self.utility_profiles)} utility people, {n_questions} questions{holdout})")


HOLDOUT_NAMES: tuple[str, ...] = ("recombined", "syllables")    # how make_benchmark names the holdout people


def default_n_holdout(n_profiles: int) -> int:
    """As many holdout people as the largest paper ratio (15 %) forgets, at least one."""
    return max(1, math.floor(max(PAPER_RATIOS) * n_profiles + 0.5 + 1e-9))


def make_benchmark(n_profiles: int = DEFAULT_N_PROFILES, seed: int = 0, *, n_utility: int = DEFAULT_N_UTILITY,
                   n_test_views: int = DEFAULT_N_TEST_VIEWS, n_holdout: int | None = None,
                   holdout_names: str = "recombined") -> Benchmark:
    """A benchmark of ``n_profiles`` fictitious people plus ``n_utility`` utility people.

    Every random choice comes from its own stream seeded by ``seed`` (faces, names, facts, option
    order, forget order, test views), so the result depends on the arguments only. ``n_holdout``
    people (default: as many as 15 % forgets) come from streams of their own, after everyone else,
    so adding or removing them changes nobody else's name, face, questions or split. Their names
    recombine the forget people's first names and surnames (:func:`.profiles.recombined_names`): holdout
    person ``i`` is named from forget people ``i`` and ``i ^ 1``, so at every ratio the holdout names are
    made of the forget people's name parts, and a tokenizer trained without the holdout people still
    splits their names as it splits the forget people's. ``holdout_names="syllables"`` draws new
    syllable names instead, like everyone else's: chapter 09 measures what that does to a membership
    attack on a model that never saw either group.
    """
    if validate.positive_int(n_profiles, "n_profiles") < 2:
        raise ValueError(f"n_profiles must be at least 2; got {n_profiles}")
    seed = validate.seed(seed)
    n_utility = validate.positive_int(n_utility, "n_utility")
    n_test_views = validate.positive_int(n_test_views, "n_test_views")
    n_holdout = (default_n_holdout(n_profiles) if n_holdout is None
                 else validate.positive_int(n_holdout, "n_holdout", allow_zero=True))
    validate.one_of(holdout_names, "holdout_names", HOLDOUT_NAMES)
    if n_holdout > n_profiles and holdout_names == "recombined":
        raise ValueError(f"n_holdout must be at most n_profiles = {n_profiles} (each holdout name recombines two "
                         f"forget people's names); got {n_holdout}")

    def stream(purpose: str) -> random.Random:
        return random.Random(f"mini_unlearn/{seed}/{purpose}")

    n_all = n_profiles + n_utility
    faces = sample_faces(n_all, stream("faces"))
    names = make_names(n_all, stream("names"))
    facts_rng = stream("facts")
    people = make_profiles(names[:n_profiles], faces[:n_profiles], facts_rng)
    utility = make_profiles(names[n_profiles:], faces[n_profiles:], facts_rng, id_prefix="u", kind="utility")

    questions, pairs = {}, {}
    _add_questions(people + utility, stream("letters"), stream("options"), questions, pairs)
    forget_order = [p.id for p in people]
    stream("forget-order").shuffle(forget_order)
    by_id = {p.id: p.name for p in people}
    if holdout_names == "recombined":
        new_names = recombined_names([by_id[i] for i in forget_order], n_holdout, taken=names)
    else:
        new_names = make_names(n_holdout, stream("holdout-names"), taken=names)
    holdout = make_profiles(new_names,
                            sample_faces(n_holdout, stream("holdout-faces"), avoid=faces),
                            stream("holdout-facts"), id_prefix="h", kind="holdout")
    _add_questions(holdout, stream("holdout-letters"), stream("holdout-options"), questions, pairs)

    views_rng = stream("test-views")
    test_images = {}
    for person in people:
        views = test_views(person.face, n_test_views, seed=views_rng.randrange(2**31))
        test_images[person.id] = RenderedImage(person.face, views_rng.choice(views))

    return Benchmark(f"mini-mllmu(n={n_profiles}, seed={seed})", people, utility, questions, pairs,
                     test_images, forget_order, holdout_profiles=holdout)


def _add_questions(people: list[Profile], letters_rng: random.Random, options_rng: random.Random,
                   questions: dict, pairs: dict) -> None:
    """Each person's evaluation questions (correct letters balanced over the group) and training pairs."""
    letters = iter(balanced_letters(len(people) * len(MODALITIES) * len(FACTS), letters_rng))
    for person in people:
        portrait = RenderedImage(person.face)
        correct = {f"{m}/{f}": next(letters) for m in MODALITIES for f in FACTS}
        questions[person.id] = profile_questions(person, portrait, correct, options_rng)
        pairs[person.id] = training_pairs(person, portrait)
