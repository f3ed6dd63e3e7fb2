"""CLEAR, the second benchmark: people who never existed, seen in several pictures and asked about by name.

CLEAR (Dontsov et al., arXiv 2410.18057; Hugging Face ``therem/CLEAR``) gives TOFU's 200 fictitious authors
synthetic face images. Every image has a caption that names the person and says what the picture shows, and
every person keeps TOFU's question–answer pairs about their life, asked in text. A model is fine-tuned on both
and then asked to forget 1, 5 or 10 % of the people. :func:`make_clear` builds the same shape from the people
:func:`~mini_unlearn.bench.benchmark.make_benchmark` already generates; :mod:`.clear_files` reads and writes
the Hub's parquet layout (:func:`~mini_unlearn.bench.clear_files.load_clear`,
:func:`~mini_unlearn.bench.clear_files.write_clear`).

What a generated CLEAR holds, person by person:

* ``n_images`` pictures of the person's face: the canonical portrait and seeded transformed views
  (:func:`~mini_unlearn.bench.portraits.test_views`: pose, crop, background, colours), each with a **caption**
  that names the person and describes the picture from the face's attributes and the view ("Vela Thornbury
  with short black hair, blue eyes and a red shirt is turned to the left against a mint background."), a
  **paraphrased caption** (the same facts in other words) and ``n_perturbed`` **perturbed captions** (the same
  sentence with wrong attributes), plus :data:`N_PERTURBED_NAMES` **perturbed names** for the
  name-classification MCQ (other first names and surnames of the benchmark put together, so they read like
  the true ones);
* one TOFU-style **question by name** per fact, its answer sentence, a paraphrased answer and ``n_perturbed``
  perturbed answers (the same sentence with wrong values), as TOFU's ``_perturbed`` configs have them;
* one held-out picture (the ``test`` split's view from ``make_benchmark``) with its caption, never trained on.

The utility sets, in our own synthetic form:

* ``real_faces`` — CLEAR's real celebrities are ``make_benchmark``'s utility people: one portrait each, asked
  for the name (:data:`FACE_QUESTION`), with perturbed names as the wrong options;
* ``real_world`` — CLEAR's real-world VQA is replaced by pictures that show no person at all: coloured shapes
  on a coloured background (:class:`Scene`), each with a caption and perturbed captions. We chose scenes
  because they test what a picture shows without any face, so forgetting faces should leave them alone, and
  because they are drawn here (nothing downloaded). The model learns them beside everyone else, as a stand-in
  for the pretrained knowledge a real VLM brings: they are the pairs of one utility "person", ``"world"``
  (:data:`WORLD_ID`), so training, tokenizer and ``evaluate``'s utility split include them.

Training pairs (what a vanilla model is taught and what the methods unlearn on): every picture with its
describe request → its caption (``"image+text"``), and every question by name → its answer (``"text"``).
CLEAR draws one of nine describe requests at random each time; ours gives each picture one request from
:data:`CAPTION_QUESTIONS` (our own wording of the same idea), chosen from the name and the caption
(:func:`caption_question`), so a written and re-read benchmark asks the same. The evaluation questions in
``bench.questions`` are the same requests and questions, all ``task="gen"``. There are no ``"mcq"``
questions: CLEAR's name classification has five options (the package's MCQs have four), so its scores come
from :meth:`ClearBenchmark.clear_items` (the name and the perturbed names of each picture).

Forget sets follow :data:`CLEAR_RATIOS` (1, 5 and 10 %), nested prefixes of one seeded order. A generated
CLEAR forgets at least one person and keeps at least one at any ratio (CLEAR's 1 % of 200 is two people; a
small generated CLEAR still has a forget01); a loaded one forgets exactly the people of its ``forgetNN``
config and refuses a ratio it has no config for.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw

from .. import validate
from ..text import fit
from .benchmark import Benchmark, make_benchmark
from .images import ImageRef, RenderedImage
from .portraits import (ATTRIBUTE_VALUES, BACKGROUND_COLOURS, CANONICAL_VIEW, DEFAULT_BACKGROUND, SHIRT_COLOURS,
                        FaceAttributes, View)
from .portraits import test_views as transformed_views
from .profiles import FACT_POOLS, FACTS, Profile, make_names
from .questions import IMAGE_TEXT, TEXT_ONLY, QAPair, Question, phrase
from .splits import Split, require_ratio

CLEAR_SPLITS: tuple[str, ...] = ("forget", "retain", "real_faces", "real_world")
CLEAR_RATIOS: tuple[float, ...] = (0.01, 0.05, 0.10)
CLEAR_KINDS: tuple[str, ...] = ("caption", "qa")
N_PERTURBED_NAMES = 4            # CLEAR's perturbed_names: four wrong names beside the true one
DEFAULT_N_PROFILES = 200         # CLEAR's (TOFU's) 200 authors
DEFAULT_N_IMAGES = 4             # CLEAR has about 19 pictures a person (3,768 for 200 people); 4 keep a CPU quick
DEFAULT_N_PERTURBED = 4
WORLD_ID = "world"               # the utility "person" whose pairs are the real_world scenes

# Our own nine describe requests (CLEAR's list of nine is in its repository's mm/dataset.py).
CAPTION_QUESTIONS: tuple[str, ...] = (
    "Describe the image.",
    "What does this picture show?",
    "Give a description of this image.",
    "What can be seen in the picture?",
    "Tell me what this image shows.",
    "Describe what you see in this picture.",
    "What is shown in this image?",
    "Write a caption for this picture.",
    "Explain what this image shows.",
)
# CLEAR asks for a face's name with "The name of the person on the image is " (a completion); a question here.
FACE_QUESTION = "What is the name of the person in the image?"


# ==== the contract ====================================================================================
@dataclass(frozen=True)
class ClearItem:
    """One CLEAR evaluation item: a picture and its caption, or a text question and its answer.

    ``real_faces`` items are pictures whose answer is the name (``question`` = :data:`FACE_QUESTION`,
    ``perturbed`` = ``perturbed_names`` = the wrong names), ``real_world`` items pictures without a person.
    For those two sets ``paraphrased`` is the answer itself: CLEAR's evaluation uses the answer as the
    "paraphrased" one there (its ``base_answer_key`` is ``answer``), and the real files hold no paraphrase.
    """

    split: str                       # one of CLEAR_SPLITS
    kind: str                        # "caption" (an image and its caption) or "qa" (a text question and answer)
    profile_id: str | None           # the person (None for a real_world item)
    image: ImageRef | None           # the picture (caption items); None for qa
    question: str                    # the describe request (caption) or the question (qa)
    answer: str                      # the caption / the answer
    paraphrased: str | None          # paraphrased_caption / paraphrased answer (None when the data lacks it)
    perturbed: tuple[str, ...]       # perturbed_captions / perturbed answers (empty when the data lacks them)
    name: str | None                 # the person's true name (caption items of people)
    perturbed_names: tuple[str, ...]  # wrong names for the name-classification MCQ (empty when lacking)
    question_id: str | None = None   # the matching Question in bench.questions (its id), None if there is none


@dataclass
class ClearBenchmark(Benchmark):
    """A :class:`~mini_unlearn.bench.benchmark.Benchmark` in CLEAR's shape, with CLEAR's items beside it.

    Everything a ``Benchmark`` does works (``split``, ``pairs``, ``train_pairs``, ``mu.unlearn``,
    ``mu.evaluate``); :meth:`clear_items` adds what CLEAR's metrics need and the package's questions do not
    hold: paraphrased and perturbed captions and answers, and the perturbed names. ``items`` maps a person's
    id (and :data:`WORLD_ID`) to their items; ``test_questions`` maps a person's id to the questions of the
    ``test`` split (a held-out picture with its own caption, and the questions by name).
    """

    items: dict[str, tuple[ClearItem, ...]] = field(default_factory=dict)
    test_questions: dict[str, list[Question]] = field(default_factory=dict)

    def clear_items(self, split: str, ratio: float = 0.05, kind: str | None = None) -> list[ClearItem]:
        """The items of one of :data:`CLEAR_SPLITS` at this forget ratio, ``kind`` ``"caption"`` / ``"qa"``
        / ``None`` (both), each with ``split`` set to ``split``.

        ``"forget"`` / ``"retain"``: the people of :meth:`forget_and_retain_ids` (their captions, then their
        questions, person by person); ``"real_faces"``: the utility people's portraits; ``"real_world"``: the
        scenes. On files read from the Hub only the pictures in a ``_perturbed`` config carry perturbed and
        paraphrased captions and perturbed names, and no question carries a paraphrased or perturbed answer:
        filter on ``item.perturbed`` where a metric needs them.
        """
        validate.one_of(split, "split", CLEAR_SPLITS)
        if kind is not None:
            validate.one_of(kind, "kind", CLEAR_KINDS)
        forget, retain = self.forget_and_retain_ids(ratio)         # validates the ratio for every split
        people = {"forget": forget, "retain": retain,
                  "real_faces": [p.id for p in self.utility_profiles if p.id != WORLD_ID],
                  "real_world": [WORLD_ID]}[split]
        return [replace(item, split=split) for pid in people for item in self.items.get(pid, ())
                if kind is None or item.kind == kind]

    def background_pairs(self) -> list[QAPair]:
        """What a pretrained VLM brings to CLEAR, in our own form: the real faces (the utility people) described
        in both wordings CLEAR scores, the caption's and the paraphrase's, and their facts in both wordings too
        (:func:`wording_pairs`). CLEAR's fictitious people are taught one wording only, as CLEAR teaches them, so
        the paraphrase the truth ratio reads is never trained on them; without these pairs a model that learned
        one sentence shape finds every paraphrase unlikely, and the truth ratio reads 0 for everyone. A CLEAR read
        from files has none: a real pretrained VLM already knows the language."""
        if self.base is None:
            return []
        return wording_pairs([p for p in self.utility_profiles if p.id != WORLD_ID])

    def scored_texts(self) -> list[str]:
        """The paraphrased and perturbed answers and the perturbed names: scored by CLEAR's metrics, never taught."""
        return [text for items in self.items.values() for item in items
                for text in (item.paraphrased, *item.perturbed, *item.perturbed_names) if text]

    def forget_and_retain_ids(self, ratio: float = 0.05) -> tuple[list[str], list[str]]:
        """The IDs to forget and to retain at this ratio.

        A loaded CLEAR (or a request's view, :meth:`Benchmark.request`) forgets the people of its explicit forget
        sets (the ``forgetNN`` configs) and refuses any other ratio; a generated one forgets the first
        ``round(ratio · n)`` people of its seeded order, at least one and at most n − 1.
        """
        ratio = require_ratio(ratio)
        if self.forget_sets:
            if ratio not in self.forget_sets:
                ratio_config(ratio)                       # the error for a ratio CLEAR has no config for
                raise ValueError(f"{self.name} has no forget set for ratio={ratio}; it has forget sets for "
                                 f"ratios {sorted(self.forget_sets)}")
            return super().forget_and_retain_ids(ratio)
        ids = [p.id for p in self.profiles]
        count = min(max(1, math.floor(ratio * len(ids) + 0.5 + 1e-9)), len(ids) - 1)
        forget = list(self.forget_order[:count])
        gone = set(forget) | set(getattr(self, "forgotten", ()))   # people an earlier request forgot: never kept
        return forget, [i for i in ids if i not in gone]

    def split(self, name: str, ratio: float = 0.05) -> Split:
        """:meth:`Benchmark.split`, with CLEAR's ``test`` split: each forget person's held-out picture with its
        own caption, and their questions by name (a loaded CLEAR without held-out pictures asks the forget
        split's questions again: the real CLEAR has no test pictures)."""
        if name != "test":
            return super().split(name, ratio)
        forget, _ = self.forget_and_retain_ids(ratio)
        people = tuple(self.profile(i) for i in forget)
        questions = tuple(q for p in people for q in self.test_questions.get(p.id, self.questions[p.id]))
        return Split("test", require_ratio(ratio), people, questions, ())

    def __repr__(self) -> str:
        pictures = sum(item.kind == "caption" for p in self.profiles for item in self.items.get(p.id, ()))
        questions = sum(item.kind == "qa" for p in self.profiles for item in self.items.get(p.id, ()))
        real_faces = sum(len(self.items.get(p.id, ())) for p in self.utility_profiles if p.id != WORLD_ID)
        return fit(f"ClearBenchmark({self.name!r}: {len(self.profiles)} fictitious people, {pictures} captioned "
                   f"pictures, {questions} questions by name, {real_faces} real faces, "
                   f"{len(self.items.get(WORLD_ID, ()))} real-world pictures)")


# ==== names of the configs =============================================================================
def ratio_config(ratio: float) -> str:
    """The two digits CLEAR names a forget ratio by: ``0.01 -> "01"``, ``0.05 -> "05"``, ``0.10 -> "10"``.

    Raises a ValueError for a ratio CLEAR has no config for."""
    ratio = require_ratio(ratio)
    for known in CLEAR_RATIOS:
        if math.isclose(ratio, known, rel_tol=0, abs_tol=1e-9):
            return f"{round(known * 100):02d}"
    raise ValueError(f"CLEAR has forget sets for ratios {CLEAR_RATIOS} only (configs forget01, forget05, "
                     f"forget10); ratio={ratio} has no config")


def forget_config(ratio: float) -> str:
    """``"forget05"`` for 0.05 (see :func:`ratio_config`)."""
    return f"forget{ratio_config(ratio)}"


def retain_config(ratio: float) -> str:
    """``"retain95"`` for 0.05 (see :func:`ratio_config`)."""
    return f"retain{100 - int(ratio_config(ratio))}"


# ==== captions ==========================================================================================
_HAIR = {"short": "short {c} hair", "long": "long {c} hair", "bald": "a bald head", "bun": "{c} hair in a bun",
         "curly": "curly {c} hair", "spiky": "spiky {c} hair", "side_part": "side-parted {c} hair",
         "mohawk": "{a} {c} mohawk"}
_WORN = {"eyewear": {"round": "round glasses", "square": "square glasses", "sunglasses": "sunglasses"},
         "facial_hair": {"moustache": "a moustache", "beard": "a beard", "goatee": "a goatee"},
         "headwear": {"cap": "a cap", "beanie": "a beanie", "headband": "a headband", "hat": "a hat"}}
_PERTURBABLE = ("hair_style", "hair_colour", "eye_colour", "eyewear", "facial_hair", "headwear", "shirt_colour",
                "background")


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _features(face: FaceAttributes) -> list[str]:
    """What a picture shows of a face: hair, eyes (unless behind sunglasses), what is worn, the shirt."""
    parts = [_HAIR[face.hair_style].format(c=face.hair_colour, a=_a(face.hair_colour))]
    if face.eyewear != "sunglasses":
        parts.append(f"{face.eye_colour} eyes")
    parts += [_WORN[kind][getattr(face, kind)] for kind in _WORN if getattr(face, kind) in _WORN[kind]]
    return parts + [f"{_a(face.shirt_colour)} {face.shirt_colour} shirt"]


def _pose(view: View) -> str:
    turned = "facing the camera" if abs(view.turn) < 0.2 else \
        f"turned to the {'right' if view.turn > 0 else 'left'}"
    return turned + (" in a close-up" if view.zoom > 1.05 else "")


def portrait_caption(name: str, face: FaceAttributes, view: View = CANONICAL_VIEW) -> str:
    """The caption of one picture of a person: their name, what the face shows, the pose and the background."""
    background = _words(view.background or DEFAULT_BACKGROUND)
    return f"{name} with {_and(_features(face))} is {_pose(view)} against a {background} background."


def paraphrased_caption(name: str, face: FaceAttributes, view: View = CANONICAL_VIEW) -> str:
    """The same facts as :func:`portrait_caption` in other words and another order."""
    background = _words(view.background or DEFAULT_BACKGROUND)
    features = _features(face)
    return (f"This picture shows {name} {_pose(view)} in front of a {background} backdrop, wearing "
            f"{features[-1]}, with {_and(features[:-1])}.")


def perturbed_captions(name: str, face: FaceAttributes, view: View, n: int, rng: random.Random) -> list[str]:
    """``n`` captions of the same shape as :func:`portrait_caption` with two attributes wrong, all different."""
    true = portrait_caption(name, face, view)
    captions: list[str] = []
    for _ in range(200 * n):
        if len(captions) == n:
            break
        changed_face, changed_view = face, view
        for attribute in rng.sample(_PERTURBABLE, 2):
            if attribute == "background":
                current = view.background or DEFAULT_BACKGROUND
                changed_view = replace(changed_view, background=rng.choice(
                    [b for b in BACKGROUND_COLOURS if b != current]))
            else:
                values = [v for v in ATTRIBUTE_VALUES[attribute] if v != getattr(face, attribute)]
                changed_face = replace(changed_face, **{attribute: rng.choice(values)})
        caption = portrait_caption(name, changed_face, changed_view)
        if caption != true and caption not in captions:
            captions.append(caption)
    if len(captions) < n:
        raise ValueError(f"could not find n_perturbed={n} different wrong captions for {name}; use a smaller n")
    return captions


def caption_question(name: str, caption: str) -> str:
    """The describe request a picture is asked with: one of :data:`CAPTION_QUESTIONS`, fixed by the name and
    the caption (so a benchmark written and read back asks every picture the same)."""
    return CAPTION_QUESTIONS[random.Random(f"clear-question/{name}/{caption}").randrange(len(CAPTION_QUESTIONS))]


def perturbed_names(name: str, names: list[str], rng: random.Random, taken=(),
                    n: int = N_PERTURBED_NAMES) -> list[str]:
    """``n`` wrong names for ``name``: a first name and a surname of ``names`` put together (so they read like
    the benchmark's own names), never anyone's name in ``names`` or ``taken``; new syllable names when the
    combinations run out."""
    firsts = sorted({part.split(" ", 1)[0] for part in names})
    lasts = sorted({part.split(" ", 1)[-1] for part in names})
    avoid = set(names) | set(taken) | {name}
    chosen: list[str] = []
    for _ in range(50 * n):
        if len(chosen) == n:
            break
        candidate = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        if candidate not in avoid and candidate not in chosen:
            chosen.append(candidate)
    return chosen + make_names(n - len(chosen), rng, taken=avoid | set(chosen))


# ==== questions by name (TOFU-style) ===================================================================
_ANSWER_PARAPHRASES = {
    "birthplace": "The birthplace of {who} is {value}.",
    "birth_year": "The year {who} was born is {value}.",
    "occupation": "For a living, {who} is {a} {value}.",
    "education": "When it comes to education, {who} has {value}.",
    "hobby": "In their spare time, {who} likes {value}.",
    "favourite_food": "Of all dishes, {who} likes {value} best.",
}


def qa_items(profile: Profile, n_perturbed: int, rng: random.Random) -> list[ClearItem]:
    """One question by name per fact of ``profile``, with a paraphrased answer and ``n_perturbed`` wrong ones."""
    items = []
    for fact in FACTS:
        value = profile.fact(fact)
        question, answer = phrase(fact, TEXT_ONLY, profile.name, value)
        wrong = rng.sample([v for v in FACT_POOLS[fact] if v != value], n_perturbed)
        items.append(ClearItem("", "qa", profile.id, None, question, answer,
                               _ANSWER_PARAPHRASES[fact].format(who=profile.name, value=value, a=_a(value)),
                               tuple(phrase(fact, TEXT_ONLY, profile.name, v)[1] for v in wrong), None, ()))
    return items


# ==== the real_world scenes ==============================================================================
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
SCENE_COLOURS: tuple[str, ...] = tuple(SHIRT_COLOURS)
SCENE_BACKGROUNDS: tuple[str, ...] = tuple(b for b in BACKGROUND_COLOURS if b != "charcoal")


@dataclass(frozen=True)
class Scene:
    """A picture with no person in it: coloured shapes, left to right, on a coloured background."""

    shapes: tuple[tuple[str, str], ...]      # (colour, shape) pairs, left to right
    background: str

    def load(self, size: int = 128) -> Image.Image:
        """The picture, drawn (the same pixels every time)."""
        image = Image.new("RGB", (size, size), BACKGROUND_COLOURS[self.background])
        draw = ImageDraw.Draw(image)
        slot = size / len(self.shapes)
        for i, (colour, shape) in enumerate(self.shapes):
            cx, cy, r = slot * (i + 0.5), size / 2, min(slot, size) * 0.32
            fill = SHIRT_COLOURS[colour]
            if shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            elif shape == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
            elif shape == "triangle":
                draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
            else:
                draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
        return image

    def caption(self) -> str:
        """"A red circle and a blue square on a mint background." """
        things = _and([f"{_a(colour)} {colour} {shape}" for colour, shape in self.shapes])
        return f"{things[0].upper()}{things[1:]} on a {_words(self.background)} background."


def random_scene(rng: random.Random) -> Scene:
    """One or two shapes of distinct colours on a background."""
    colours = rng.sample(SCENE_COLOURS, rng.choice((1, 2)))
    return Scene(tuple((c, rng.choice(SHAPES)) for c in colours), rng.choice(SCENE_BACKGROUNDS))


def perturbed_scene_captions(scene: Scene, n: int, rng: random.Random) -> list[str]:
    """``n`` captions of the same shape with one colour, shape or the background wrong, all different."""
    captions: list[str] = []
    for _ in range(200 * n):
        if len(captions) == n:
            break
        shapes, background = list(scene.shapes), scene.background
        where = rng.randrange(len(shapes) + 1)
        if where == len(shapes):
            background = rng.choice([b for b in SCENE_BACKGROUNDS if b != background])
        else:
            colour, shape = shapes[where]
            shapes[where] = ((rng.choice([c for c in SCENE_COLOURS if c != colour]), shape) if rng.random() < 0.5
                             else (colour, rng.choice([s for s in SHAPES if s != shape])))
        caption = Scene(tuple(shapes), background).caption()
        if caption != scene.caption() and caption not in captions:
            captions.append(caption)
    if len(captions) < n:
        raise ValueError(f"could not find n_perturbed={n} different wrong captions for a scene; use a smaller n")
    return captions


# ==== building a ClearBenchmark from items ============================================================
def world_profile() -> Profile:
    """The utility "person" whose pairs and questions are the real_world scenes (:data:`WORLD_ID`)."""
    return Profile(id=WORLD_ID, name="the real world", face=None, facts={}, kind="utility")


def assemble(name: str, people: list[Profile], utility: list[Profile], holdout: list[Profile],
             items: dict[str, list[ClearItem]], facts: dict[str, list[str]], test_captions: dict[str, ClearItem],
             forget_order: list[str], forget_sets: dict[float, list[str]] | None = None,
             ) -> ClearBenchmark:
    """A :class:`ClearBenchmark` from every person's items (``split`` still empty): the questions, the
    training pairs and the ``test`` split follow from the items, the same way for generated and read data.

    ``facts[pid]`` names each question by name's fact (``qa1``, ``qa2``, … where missing);
    ``test_captions[pid]`` is a person's held-out picture, its caption and request.
    """
    questions, pairs, stored, test_questions, test_images = {}, {}, {}, {}, {}
    utility_ids = {p.id for p in utility}
    for person in people + utility + holdout:
        own, numbers = [], {"caption": 0, "qa": 0}
        questions[person.id], pairs[person.id] = [], []
        for item in items.get(person.id, []):
            numbers[item.kind] += 1
            k = numbers[item.kind]
            if item.kind == "qa":
                named = facts.get(person.id, [])
                fact, qid = named[k - 1] if k <= len(named) else f"qa{k}", f"{person.id}-qa{k}"
                modality = TEXT_ONLY
            else:
                stem = "scene" if person.id == WORLD_ID else ("face" if person.id in utility_ids else "caption")
                fact, qid, modality = f"{stem}{k}", f"{person.id}-{stem}{k}", IMAGE_TEXT
            questions[person.id].append(Question(qid, person.id, "gen", modality, fact, item.question, item.answer,
                                                 image=item.image))
            pairs[person.id].append(QAPair(person.id, modality, fact, item.question, item.answer, item.image))
            own.append(replace(item, question_id=qid))
        stored[person.id] = tuple(own)
        if person.id in test_captions:
            held_out = test_captions[person.id]
            test_images[person.id] = held_out.image
            test_questions[person.id] = [Question(f"{person.id}-test-caption", person.id, "gen", IMAGE_TEXT,
                                                  "caption-test", held_out.question, held_out.answer,
                                                  image=held_out.image)] + \
                [q for q in questions[person.id] if q.modality == TEXT_ONLY]
    holdout_ids = {p.id for p in holdout}
    return ClearBenchmark(name, people, utility, questions, pairs, test_images, forget_order,
                          dict(forget_sets or {}), holdout,
                          items={pid: own for pid, own in stored.items() if pid not in holdout_ids},
                          test_questions=test_questions)


def make_clear(n_profiles: int = DEFAULT_N_PROFILES, seed: int = 0, *, n_images: int = DEFAULT_N_IMAGES,
               n_perturbed: int = DEFAULT_N_PERTURBED, n_real_faces: int = 10, n_real_world: int = 10,
               n_holdout: int | None = None) -> ClearBenchmark:
    """A CLEAR-shaped benchmark of ``n_profiles`` fictitious people (see the module docstring), fully seeded.

    The people (names, faces, facts, forget order, held-out views, holdout people) are
    :func:`~mini_unlearn.bench.benchmark.make_benchmark`'s with the same ``n_profiles`` and ``seed``;
    ``n_real_faces`` is its ``n_utility``. Every person has ``n_images`` pictures (the canonical portrait
    first), every picture and every question by name ``n_perturbed`` wrong versions; ``n_real_world`` scenes
    make the real_world set. The holdout people (chapter 09's attacks; never trained on) get pictures and
    questions too, and no CLEAR items.
    """
    if validate.positive_int(n_profiles, "n_profiles") < 2:
        raise ValueError(f"n_profiles must be at least 2 (one to forget, one to retain); got {n_profiles}")
    seed = validate.seed(seed)
    n_images = validate.positive_int(n_images, "n_images", hint="pictures per person")
    n_perturbed = validate.positive_int(n_perturbed, "n_perturbed", hint="wrong captions and answers per item")
    if n_perturbed > 15:
        raise ValueError(f"n_perturbed must be at most 15 (the smallest fact pool leaves 15 wrong values); "
                         f"got {n_perturbed}")
    n_real_faces = validate.positive_int(n_real_faces, "n_real_faces")
    n_real_world = validate.positive_int(n_real_world, "n_real_world")
    base = make_benchmark(n_profiles, seed, n_utility=n_real_faces, n_holdout=n_holdout)

    def stream(purpose: str) -> random.Random:
        return random.Random(f"mini_unlearn/{seed}/clear/{purpose}")

    views_rng, wrong_rng, names_rng, qa_rng = stream("views"), stream("perturbed"), stream("names"), stream("qa")
    everyone = [p.name for p in base.profiles + base.utility_profiles + base.holdout_profiles]
    items: dict[str, list[ClearItem]] = {}
    test_captions: dict[str, ClearItem] = {}
    for group in (base.profiles, base.holdout_profiles):
        names = [p.name for p in group]
        for person in group:
            views = [CANONICAL_VIEW] + transformed_views(person.face, n_images - 1, seed=views_rng.randrange(2**31))
            wrong_names = tuple(perturbed_names(person.name, names, names_rng, taken=everyone))
            items[person.id] = [_picture(person, view, n_perturbed, wrong_rng, wrong_names) for view in views]
            items[person.id] += qa_items(person, n_perturbed, qa_rng)
            if person.id in base.test_images:
                test_captions[person.id] = _picture(person, base.test_images[person.id].view, n_perturbed,
                                                    wrong_rng, wrong_names)
    utility_names = [p.name for p in base.utility_profiles]
    for person in base.utility_profiles:
        wrong_names = tuple(perturbed_names(person.name, utility_names, names_rng, taken=everyone))
        items[person.id] = [ClearItem("", "caption", person.id, RenderedImage(person.face), FACE_QUESTION,
                                      person.name, person.name, wrong_names, person.name, wrong_names)]
    scenes_rng = stream("scenes")
    scenes: list[Scene] = []
    while len(scenes) < n_real_world:
        scene = random_scene(scenes_rng)
        if all(scene.caption() != s.caption() for s in scenes):
            scenes.append(scene)
    items[WORLD_ID] = [ClearItem("", "caption", None, s, caption_question("", s.caption()), s.caption(),
                                 s.caption(), tuple(perturbed_scene_captions(s, n_perturbed, wrong_rng)), None, ())
                       for s in scenes]
    facts = {p.id: list(FACTS) for p in base.profiles + base.holdout_profiles}
    clear = assemble(f"mini-clear(n={n_profiles}, seed={seed})", base.profiles,
                     base.utility_profiles + [world_profile()], base.holdout_profiles, items, facts, test_captions,
                     base.forget_order)
    return replace(clear, base=base)


def wording_pairs(people: list[Profile], n_views: int = 4, seed: int = 0) -> list[QAPair]:
    """Each person's pictures (the canonical portrait and ``n_views`` − 1 seeded views) described twice, by
    :func:`portrait_caption` and by :func:`paraphrased_caption`, and each fact answered twice, by the answer
    sentence and by its paraphrase: the two wordings of :meth:`ClearBenchmark.background_pairs`."""
    n_views = validate.positive_int(n_views, "n_views")
    rng = random.Random(f"mini_unlearn/{validate.seed(seed)}/clear/wording")
    pairs = []
    for person in people:
        views = [CANONICAL_VIEW] + transformed_views(person.face, n_views - 1, seed=rng.randrange(2**31))
        for view in views:
            for caption in (portrait_caption(person.name, person.face, view),
                            paraphrased_caption(person.name, person.face, view)):
                pairs.append(QAPair(person.id, IMAGE_TEXT, "caption", caption_question(person.name, caption), caption,
                                    RenderedImage(person.face, view)))
        for item in qa_items(person, 1, rng):
            pairs += [QAPair(person.id, TEXT_ONLY, "qa", item.question, answer)
                      for answer in (item.answer, item.paraphrased)]
    return pairs


def _picture(person: Profile, view: View, n_perturbed: int, rng: random.Random,
             wrong_names: tuple[str, ...]) -> ClearItem:
    """One captioned picture of ``person`` seen through ``view``."""
    caption = portrait_caption(person.name, person.face, view)
    return ClearItem("", "caption", person.id, RenderedImage(person.face, view),
                     caption_question(person.name, caption), caption,
                     paraphrased_caption(person.name, person.face, view),
                     tuple(perturbed_captions(person.name, person.face, view, n_perturbed, rng)),
                     person.name, wrong_names)


__all__ = ["CAPTION_QUESTIONS", "CLEAR_KINDS", "CLEAR_RATIOS", "CLEAR_SPLITS", "ClearBenchmark", "ClearItem",
           "FACE_QUESTION", "N_PERTURBED_NAMES", "Scene", "WORLD_ID", "caption_question", "forget_config",
           "make_clear", "paraphrased_caption", "perturbed_captions", "perturbed_names", "portrait_caption",
           "ratio_config", "retain_config", "wording_pairs"]
