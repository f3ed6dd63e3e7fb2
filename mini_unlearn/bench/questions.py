"""Questions about a person, asked two ways: with their portrait, or by their name.

This is where the *modality imbalance* is set up. Every fact of every person is asked twice:

* **image+text** — "Where was *the person in the image* born?", with the portrait attached;
* **text** (text-only) — "Where was *Vela Thornbury* born?", with no image.

A model that has forgotten a face may still answer by name: MANU and MIP-Editor want both
phrasings forgotten; MMUnlearner wants only the image link gone.

Three evaluation tasks, as in MLLMU-Bench (its ``Classification_Task``, ``Generation_Task`` and
``Mask_Task``): multiple choice with four options (``mcq``), a free one-sentence answer (``gen``,
scored later with ROUGE-L) and fill-in-the-blank (``cloze``, the blank written ``__``). Plus the
training pairs that inject the knowledge (MLLMU-Bench's ``ft_Data``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from .images import ImageRef
from .profiles import FACT_POOLS, FACTS, Profile

IMAGE_TEXT = "image+text"
TEXT_ONLY = "text"
MODALITIES: tuple[str, ...] = (IMAGE_TEXT, TEXT_ONLY)
TASKS: tuple[str, ...] = ("mcq", "gen", "cloze")
LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
BLANK = "__"
IMAGE_SUBJECT = "the person in the image"

# fact -> (question, answer sentence). {who} is the subject inside a sentence, {Who} at its start,
# {value} the fact's value (occupations get their article through {a}).
TEMPLATES: dict[str, tuple[str, str]] = {
    "birthplace": ("Where was {who} born?", "{Who} was born in {value}."),
    "birth_year": ("In which year was {who} born?", "{Who} was born in the year {value}."),
    "occupation": ("What does {who} do for a living?", "{Who} works as {a} {value}."),
    "education": ("What education does {who} have?", "{Who} has {value}."),
    "hobby": ("What does {who} enjoy doing in their free time?", "{Who} enjoys {value} in their free time."),
    "favourite_food": ("What is the favourite food of {who}?", "The favourite food of {who} is {value}."),
}
NAME_QUESTION = ("Who is {who}?", "{Who} is {name}.")
# fact -> the same question in words no training pair or evaluation question uses (chapter 09's probe)
PARAPHRASES: dict[str, str] = {
    "birthplace": "What is the birthplace of {who}?",
    "birth_year": "When was {who} born?",
    "occupation": "What is the job of {who}?",
    "education": "What did {who} study?",
    "hobby": "Which pastime does {who} like?",
    "favourite_food": "Which dish does {who} like best?",
}


@dataclass(frozen=True)
class Question:
    """One evaluation question about one fact of one person, in one modality."""

    id: str
    profile_id: str
    task: str                      # "mcq" | "gen" | "cloze"
    modality: str                  # "image+text" | "text"
    fact: str
    question: str
    answer: str                    # the correct option's text (mcq), the sentence (gen), the blank's value (cloze)
    options: dict[str, str] | None = field(default=None, hash=False)   # mcq only: letter -> text
    correct: str | None = None     # mcq only: the correct letter
    image: ImageRef | None = None  # image+text only


@dataclass(frozen=True)
class QAPair:
    """A training pair that injects one fact (MLLMU-Bench's ``ft_Data``)."""

    profile_id: str
    modality: str
    fact: str                      # a key of FACTS, or "name" for "Who is the person in the image?"
    question: str
    answer: str
    image: ImageRef | None = None


def _subject(modality: str, name: str) -> str:
    return IMAGE_SUBJECT if modality == IMAGE_TEXT else name


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _fill(template: str, who: str, value: str = "", name: str = "", article: str = "a") -> str:
    return template.format(who=who, Who=who[0].upper() + who[1:], value=value, a=article, name=name)


def phrase(fact: str, modality: str, name: str, value: str) -> tuple[str, str]:
    """The question and the answer sentence for one fact, in one modality."""
    question, sentence = TEMPLATES[fact]
    who = _subject(modality, name)
    return _fill(question, who, value), _fill(sentence, who, value, article=_article(value))


def cloze(fact: str, modality: str, name: str, value: str) -> str:
    """The answer sentence with the value blanked out as ``__`` (the article still agrees with it)."""
    _, sentence = TEMPLATES[fact]
    return _fill(sentence, _subject(modality, name), BLANK, article=_article(value))


def paraphrased(question: Question, name: str) -> Question:
    """A ``gen`` question asked in other words (:data:`PARAPHRASES`); the same answer sentence and image.

    ``name`` is the person's name (asked by name in the text modality). Chapter 09 asks whether a
    forgotten fact comes back when the question is not the one that was unlearned.
    """
    if question.task != "gen":
        raise ValueError(f"paraphrased needs a gen question (its answer is a sentence); got a {question.task!r} one")
    if question.fact not in PARAPHRASES:
        raise ValueError(f"no paraphrase for the fact {question.fact!r}; known: {sorted(PARAPHRASES)}")
    text = _fill(PARAPHRASES[question.fact], _subject(question.modality, name))
    return replace(question, id=f"{question.id}-paraphrased", question=text)


def text_only_twin(question: str, name: str) -> str:
    """Turn an image+text question into its text-only twin by naming the person.

    "Where was the person in the image born?" -> "Where was Vela Thornbury born?". The subject may
    open the sentence ("The person in the image was born in __."): it is replaced there too.
    Taught in chapter 01 (exercise).
    """
    capitalised = IMAGE_SUBJECT[0].upper() + IMAGE_SUBJECT[1:]
    return question.replace(capitalised, name).replace(IMAGE_SUBJECT, name)


def balanced_letters(n: int, rng: random.Random) -> list[str]:
    """``n`` correct-answer letters, each of A–D used ⌊n/4⌋ or ⌈n/4⌉ times, in seeded order."""
    letters = [LETTERS[i % len(LETTERS)] for i in range(n)]
    rng.shuffle(letters)
    return letters


def mcq_options(value: str, pool: tuple[str, ...], correct: str, rng: random.Random) -> dict[str, str]:
    """Four options: ``value`` under the letter ``correct``, three seeded distractors from ``pool``."""
    distractors = rng.sample([v for v in pool if v != value], len(LETTERS) - 1)
    others = iter(distractors)
    return {letter: value if letter == correct else next(others) for letter in LETTERS}


def profile_questions(profile: Profile, image: ImageRef, letters: dict[str, str], rng: random.Random) -> list[Question]:
    """All evaluation questions of one profile: every task × modality × fact.

    ``letters`` maps ``f"{modality}/{fact}"`` to the correct MCQ letter (drawn balanced over the whole
    benchmark by :func:`balanced_letters`).
    """
    questions = []
    for modality in MODALITIES:
        picture = image if modality == IMAGE_TEXT else None
        for fact in FACTS:
            value = profile.fact(fact)
            text, sentence = phrase(fact, modality, profile.name, value)
            stem = f"{profile.id}-{modality}-{fact}"
            correct = letters[f"{modality}/{fact}"]
            questions += [
                Question(f"{stem}-mcq", profile.id, "mcq", modality, fact, text, value,
                         options=mcq_options(value, FACT_POOLS[fact], correct, rng), correct=correct, image=picture),
                Question(f"{stem}-gen", profile.id, "gen", modality, fact, text, sentence, image=picture),
                Question(f"{stem}-cloze", profile.id, "cloze", modality, fact,
                         cloze(fact, modality, profile.name, value), value, image=picture),
            ]
    return questions


def training_pairs(profile: Profile, image: ImageRef) -> list[QAPair]:
    """The pairs that teach a model this person: each fact by image and by name, and the face's name."""
    question, answer = NAME_QUESTION
    pairs = [QAPair(profile.id, IMAGE_TEXT, "name", _fill(question, IMAGE_SUBJECT),
                    _fill(answer, IMAGE_SUBJECT, name=profile.name), image)]
    for modality in MODALITIES:
        for fact in FACTS:
            text, sentence = phrase(fact, modality, profile.name, profile.fact(fact))
            pairs.append(QAPair(profile.id, modality, fact, text, sentence, image if modality == IMAGE_TEXT else None))
    return pairs


def with_image(question: Question, image: ImageRef) -> Question:
    """The same question shown with another picture (the test split's transformed views)."""
    return replace(question, image=image)
