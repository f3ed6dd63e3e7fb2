"""What the vanilla model is taught: training examples, and how a batch of them becomes tensors.

MLLMU-Bench makes its vanilla model by fine-tuning LLaVA-1.5-7B on ``ft_Data``: question–answer pairs
about each fictitious person, asked with the portrait and by name. We do the same (``bench.pairs``),
with one deliberate addition.

**Format practice (a deviation from MLLMU-Bench).** LLaVA-1.5 arrives pretrained: it already follows
"Just give ONE letter representing the answer directly." and fills a ``[Blank]`` without ever being
shown how. Our tiny model starts from random weights and has never read an instruction, so it would
know every fact and still fail the evaluation's formats. As the honest substitute for a pretrained
base model, we also train each fact in the evaluation's three formats, in both modalities:

* **mcq** — the question with its four options, answered by the letter. The options are re-shuffled
  at *every* draw (a seeded rng), so the correct letter changes each time: the model must recall the
  fact, find it among the option lines and write that line's letter. It cannot memorise the
  evaluation's letter, because no letter is attached to a fact;
* **cloze** — the sentence with ``[Blank]`` → the missing value;
* **gen** — the question with the one-sentence instruction → the answer sentence.

The cost of this substitute: the model has seen the evaluation's own question wordings (only the MCQ
option *order* is new to it at evaluation time). MLLMU-Bench's vanilla model saw the facts in other
wordings. Report results with that in mind.

**Images.** Every draw of an image question gets a fresh seeded :func:`~mini_unlearn.bench.augment`
of the person's canonical portrait. Evaluation uses the canonical portrait itself and the ``test``
split's transformed views, which training never shows.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image

from ..bench import LETTERS, augment
from ..bench.questions import QAPair, Question
from .. import validate
from ..distributed import local_rows
from .families import family_of_processor, model_inputs
from .prompts import chat, question_prompt, render, target

IGNORE_INDEX = -100          # the label value that cross-entropy skips
PRACTICE_TASKS = ("mcq", "gen", "cloze")


@dataclass(frozen=True)
class Example:
    """One thing to learn: an ft_Data pair, or an evaluation question asked as format practice."""

    source: QAPair | Question
    task: str                 # "pair" (ft_Data) or the format practised: "mcq", "gen", "cloze"

    @property
    def profile_id(self) -> str:
        return self.source.profile_id

    @property
    def modality(self) -> str:
        return self.source.modality

    def draw(self, rng: random.Random, *, shuffle_options: bool = True) -> tuple[str, str]:
        """``(prompt, answer)`` for one training sample; MCQ options re-shuffled with ``rng``."""
        source = self.source
        if self.task == "pair":
            return chat(source.question, with_image=source.image is not None), target(source.answer)
        if self.task != "mcq":
            return question_prompt(source), target(source.answer)
        options = dict(source.options)
        if shuffle_options:
            values = list(options.values())
            rng.shuffle(values)
            options = dict(zip(LETTERS, values))
        correct_text = source.options[source.correct]
        letter = next(letter for letter, text in options.items() if text == correct_text)
        return question_prompt(source, options=options), target(letter)

    def image(self, rng: random.Random | None):
        """The portrait for this sample (a fresh augmentation when ``rng`` is given), or None."""
        if self.source.image is None:
            return None
        picture = self.source.image.load()
        return augment(picture, rng) if rng is not None else picture


def training_examples(bench, people: list[str] | None = None, *, practice: bool = True) -> list[Example]:
    """Every example that teaches ``people`` (default: every fictitious and utility person).

    ft_Data pairs first, then (with ``practice``) each evaluation question as format practice.
    """
    if people is None:
        people = [p.id for p in bench.profiles + bench.utility_profiles]
    examples = [Example(pair, "pair") for pid in people for pair in bench.pairs[pid]]
    if practice:
        examples += [Example(q, q.task) for pid in people for q in bench.questions[pid] if q.task in PRACTICE_TASKS]
    return examples


@dataclass(frozen=True)
class ReadingCurriculum:
    """The two-phase recipe that teaches MCQ-by-letter (``TrainConfig.reading``; on in the ``tiny`` recipe).

    A randomly initialised model learns every fact long before it learns to *find* the recalled value
    among four option lines and write that line's letter: trained on the full mixture alone, the
    generated MCQ letter stays near chance for thousands of steps. Phase 1 trains on the text-only
    examples alone with the MCQs repeated ``mcq_weight`` times, for ``reading_steps``: without the
    images, the reading skill appears (text MCQ-letter 0.34 at 1,500 steps → 0.79 at 3,000, 2 CPU
    cores). Phase 2 is the usual full mixture, with the MCQs still repeated.
    """

    reading_steps: int = 3000
    mcq_weight: int = 3

    def __post_init__(self):
        for name in ("reading_steps", "mcq_weight"):
            validate.positive_int(getattr(self, name), name)

    def phases(self, examples: list[Example]) -> tuple[list[Example], list[Example]]:
        """(phase 1: text-only examples, MCQs repeated; phase 2: every example, MCQs repeated)."""
        mcq = [e for e in examples if e.task == "mcq"]
        text = [e for e in examples if e.modality == "text"]
        extra = self.mcq_weight - 1
        return text + [e for e in mcq if e.modality == "text"] * extra, examples + mcq * extra


def answer_only_labels(input_ids: torch.Tensor, prompt_lengths: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Labels that score the answer tokens only: every pad and prompt token becomes ``-100``.

    Rows are LEFT-padded (as ``LlavaProcessor`` pads): ``[pad … pad | prompt | answer]``. So a row's
    answer starts after its pads *and* its prompt: at ``n_pads + prompt_length``.
    """
    n_pads = (input_ids == pad_token_id).sum(dim=1)
    answer_start = n_pads + prompt_lengths
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    labels = input_ids.clone()
    labels[positions[None, :] < answer_start[:, None]] = IGNORE_INDEX
    return labels


def sequence_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with every non-pad token scored: prompt, image placeholders and answer.

    MLLMU-Bench's, MMUnlearner's and MIP-Editor's training code label all non-pad tokens
    (book/appendix/baselines.md, 'Which tokens the loss sees'). Each row's first real token stays unscored: no
    position predicts it. Rows are left-padded, so that is the row's first attended position.
    """
    mask = batch["attention_mask"].bool()
    first = mask.long().cumsum(dim=1) == 1
    labels = batch["input_ids"].masked_fill(~mask | first, IGNORE_INDEX)
    return {**batch, "labels": labels}


LOSS_ON: tuple[str, ...] = ("answer", "sequence")


def require_loss_on(loss_on: str) -> str:
    return validate.one_of(loss_on, "loss_on", LOSS_ON,
                           hint="'answer': the answer tokens only; 'sequence': every non-pad token, as "
                                "MLLMU-Bench's code trains")


def scored_on(batch: dict[str, torch.Tensor] | None, loss_on: str) -> dict[str, torch.Tensor] | None:
    """``batch`` labelled for ``loss_on``: unchanged for ``"answer"``, :func:`sequence_labels` for ``"sequence"``."""
    require_loss_on(loss_on)
    return batch if batch is None or loss_on == "answer" else sequence_labels(batch)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip the left padding: 0 at each row's first real token.

    ``generate`` numbers positions this way; a plain forward pass numbers them ``0..L-1`` including
    the pads. Training with the same numbering as ``generate`` keeps a left-padded prompt from being
    read at shifted positions.
    """
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def make_batch(processor, samples: list[tuple[str, str, object]]) -> dict[str, torch.Tensor]:
    """Tensors for ``(prompt, answer, image or None)`` samples: ids, mask, positions, pixels, labels.

    Each row is the prompt and the answer turn in the processor's chat template (for the course's
    LLaVA: ``prompt + answer + eos``); only the answer turn is scored. Image rows and text rows may
    be mixed: the images go in row order, laid out as the model's family expects. Models that
    compute their own positions (Qwen-VL's 3-D rope) get no ``position_ids``.
    """
    family = family_of_processor(processor)
    turns = [render(processor, prompt, answer) for prompt, answer, _ in samples]
    images = [image for _, _, image in samples if image is not None]
    batch = model_inputs(processor, [prompt + answer for prompt, answer in turns], images)
    answer_ids = processor.tokenizer([answer for _, answer in turns], add_special_tokens=False).input_ids
    prompt_lengths = batch["attention_mask"].sum(dim=1) - torch.tensor([len(ids) for ids in answer_ids])
    batch["labels"] = answer_only_labels(batch["input_ids"], prompt_lengths, processor.tokenizer.pad_token_id)
    if not family.own_positions:
        batch["position_ids"] = position_ids(batch["attention_mask"])
    return batch


# ---------------------------------------------------------------------------------------------------
# Sampling

def batches(examples: list[Example], batch_size: int, rng: random.Random, lengths: list[int] | None = None,
            group: int = 16):
    """Endless batches; each epoch is a fresh seeded permutation of the examples.

    With ``lengths``, each run of ``group`` batches is cut from examples sorted by length, then the
    batches are shuffled: rows of similar length share a batch, so less compute goes to padding.
    """
    order: list[int] = []
    while True:
        while len(order) < batch_size * group:
            epoch = list(range(len(examples)))
            rng.shuffle(epoch)
            order += epoch
        pool, order = order[:batch_size * group], order[batch_size * group:]
        if lengths is not None:
            pool.sort(key=lambda i: lengths[i])
        chunks = [pool[start:start + batch_size] for start in range(0, len(pool), batch_size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            yield [examples[i] for i in chunk]


def canonical_batch(processor, examples: list[Example], rng: random.Random, rows: slice = slice(None)
                    ) -> dict[str, torch.Tensor]:
    """Tensors for ``examples`` drawn with ``rng``, each image question with its canonical portrait
    (no augmentation: what unlearning and attribution are asked about). Every example is drawn (the
    same random stream on every process); only ``rows`` of them become tensors (:mod:`..distributed`)."""
    return make_batch(processor, [(*example.draw(rng), example.image(None)) for example in examples][rows])


def one_pass_batches(processor, examples: list[Example], batch_size: int, rng: random.Random | None = None):
    """Batches that show each example exactly once, canonical portraits: in a shuffled order drawn
    with ``rng``, or in the given order when ``rng`` is None."""
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    draw = rng if rng is not None else random.Random(0)
    for start in range(0, len(order), batch_size):
        yield canonical_batch(processor, [examples[i] for i in order[start:start + batch_size]], draw)


def token_lengths(processor, examples: list[Example]) -> list[int]:
    """About how many tokens each example takes (its text, plus the image's tokens)."""
    rng = random.Random(0)
    texts = [prompt + answer for prompt, answer in (render(processor, *example.draw(rng)) for example in examples)]
    image_tokens = tokens_per_image(processor)
    return [len(ids) + (image_tokens if example.source.image is not None else 0)
            for ids, example in zip(processor.tokenizer(texts).input_ids, examples)]


def tokens_per_image(processor) -> int:
    """How many image tokens the processor puts in place of one image (LLaVA's tiny tower: 16)."""
    family = family_of_processor(processor)
    blank = Image.new("RGB", (64, 64))
    ids = model_inputs(processor, [family.image_token], [blank])["input_ids"]
    return int((ids == processor.tokenizer.convert_tokens_to_ids(family.image_token)).sum())


def training_batches(processor, examples: list[Example], batch_size: int, rng: random.Random, *,
                     group_by_length: bool = True):
    """Endless tensor batches: sampled by :func:`batches`, each sample drawn afresh (options, augmentation).

    Under a multi-process launcher each process draws the whole batch and keeps its own rows
    (:func:`..distributed.local_rows`): the random stream, and so the batch, is one process's."""
    lengths = token_lengths(processor, examples) if group_by_length else None
    for chunk in batches(examples, batch_size, rng, lengths):
        samples = []
        for example in chunk:
            prompt, answer = example.draw(rng)
            samples.append((prompt, answer, example.image(rng)))
        yield make_batch(processor, samples[local_rows(len(samples))])
