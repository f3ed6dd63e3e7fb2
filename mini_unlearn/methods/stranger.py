"""Stranger matching: the course's own method (chapter 13) — make a forget person a stranger to the model.

Chapters 09 and 10 measured why the papers' methods hide rather than remove: gradient ascent has no
floor, so the forget people end up *less* likely than people the model never met (membership
inference reads the over-shoot); RMU pushes hidden states to a random direction, which a linear probe
reads straight through. The target that no attack can tell from perfect forgetting is what the model
does with someone it never saw. We have that in hand: invent strangers (:mod:`mini_unlearn.bench.strangers`),
ask the frozen input model the forget person's training questions about them instead, and teach the
model to answer — and to think, layer by layer — about the forget person exactly as it did about the
stranger::

    L = KL(p₀(·|x̃) ‖ p_θ(·|x))  +  α · (1/|ℓ|) Σ_ℓ mean ‖h_θ^ℓ(x) − h₀^ℓ(x̃)‖²  +  γ · KL(p₀(·|x_r) ‖ p_θ(·|x_r))

* ``x`` is a forget pair (the question, then its answer teacher-forced), ``x̃`` the same pair asked of
  the person's stranger (:func:`~mini_unlearn.bench.strangers.stranger_twin`: the name swapped, the
  stranger's portrait shown); ``p₀``/``h₀`` are the frozen input model's, ``p_θ``/``h_θ`` the model's.
* The **answer term** compares the next-token distributions at the answer positions the two sequences
  share (:func:`aligned_positions`): it is zero once the forget person is answered like the stranger,
  so it has a floor where gradient ascent has none.
* The **state term** compares every language layer's residual stream where the two line up (every
  shared token, and the name's last one): chapter 09's probes read those states. Chapter 13 measures how
  far matching them gets (it moves the answers; the letter probe still reads the forget MCQ's letter).
* The **retain term** holds the retain people's answers where the input model had them.
* **Multiple-choice twins** (``multiple_choice``): the model was taught to answer each fact both as a
  question and as a four-option question, and what gradient steps on the first format change barely
  reaches the second (chapter 13 measures it). So each forget pair is also asked as a multiple-choice
  question with freshly drawn options (:func:`multiple_choice_items`, never the benchmark's own), matched
  to the stranger the same way, and the retain people are held in both formats too.

The means are over the aligned positions of the batch (the KL sums over the vocabulary at each, the
squared distance averages over the hidden units). See chapter 13 for the measurement behind each term.
"""
from __future__ import annotations

import difflib
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import distributed, validate
from ..bench.profiles import FACT_POOLS
from ..bench.questions import IMAGE_TEXT, LETTERS, Question, mcq_options
from ..bench.strangers import invent_strangers, stranger_twin
from ..models.train import IGNORE_INDEX, answer_logits
from ..models.train_data import Example, make_batch
from .base import register
from .data import require_forget_on, unlearning_sets
from .loop import require_trainable, run_gradient_loop, trainable_parameters
from .losses import kl_to_reference

STRANGER = "stranger_"     # the prefix of the stranger batch's tensors inside a forget batch


# ---------------------------------------------------------------------------------------------------
# Which positions the two sequences share

def matched_tokens(tokens: list[int], other: list[int], answer: int, other_answer: int, *,
                   portrait: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where the forget sequence ``tokens`` and its stranger twin ``other`` line up (a diff of the token ids,
    ``difflib``): ``(states, predictions)``, each a list of index pairs ``(i, j)``.

    * ``states``: every token the two share (the chat template, the question's words, the image
      placeholders, the answer's words), and the *last* token of each stretch that differs — the name,
      where a language model gathers what it knows of a person;
    * ``predictions``: the positions that predict a shared answer token (``answer``/``other_answer``: where
      each answer starts). On a portrait question (``portrait``) also the position that predicts the first
      piece of a differing stretch inside the answer — "The person in the image is …": naming the face
      is the answer's own choice there; by name, it is a copy of the question's."""
    states, predictions = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, tokens, other, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                states.append((i1 + k, j1 + k))
                if i1 + k >= answer and j1 + k >= other_answer:
                    predictions.append((i1 + k - 1, j1 + k - 1))
        elif i2 > i1 and j2 > j1:
            states.append((i2 - 1, j2 - 1))
            if portrait and i1 >= answer and j1 >= other_answer:
                predictions.append((i1 - 1, j1 - 1))
    return states, predictions


def aligned_positions(forget_batch: dict, stranger_batch: dict, portrait: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every matched position of the two batches (:func:`matched_tokens`) as batch columns:
    ``{"state_rows", "state_columns", "state_stranger_columns", "prediction_rows", "prediction_columns",
    "prediction_stranger_columns"}``. ``portrait[row]``: the row is a portrait question."""
    found = {name: [] for name in ("state_rows", "state_columns", "state_stranger_columns", "prediction_rows",
                                   "prediction_columns", "prediction_stranger_columns")}
    for row in range(forget_batch["labels"].shape[0]):
        real = [batch["attention_mask"][row].nonzero().flatten() for batch in (forget_batch, stranger_batch)]
        tokens = [batch["input_ids"][row, where].tolist() for batch, where in zip((forget_batch, stranger_batch), real)]
        answers = [int((batch["labels"][row, where] != IGNORE_INDEX).nonzero()[0])
                   for batch, where in zip((forget_batch, stranger_batch), real)]
        states, predictions = matched_tokens(*tokens, *answers, portrait=bool(portrait[row]))
        for kind, pairs in (("state", states), ("prediction", predictions)):
            for i, j in pairs:
                found[f"{kind}_rows"].append(row)
                found[f"{kind}_columns"].append(int(real[0][i]))
                found[f"{kind}_stranger_columns"].append(int(real[1][j]))
    device = forget_batch["labels"].device
    return {name: torch.tensor(values, dtype=torch.long, device=device) for name, values in found.items()}


# ---------------------------------------------------------------------------------------------------
# The three terms (pure functions of tensors)

def answer_match_loss(logits: torch.Tensor, stranger_logits: torch.Tensor) -> torch.Tensor:
    """``KL(p₀(·|x̃) ‖ p_θ(·|x))`` summed over the vocabulary, averaged over the aligned positions: both
    ``[positions, vocabulary]``, the stranger's from the frozen model."""
    total = F.kl_div(torch.log_softmax(logits.float(), -1), torch.log_softmax(stranger_logits.float(), -1),
                     reduction="sum", log_target=True)
    return distributed.global_mean(total, logits.shape[0])


def state_match_loss(states: torch.Tensor, stranger_states: torch.Tensor) -> torch.Tensor:
    """``(1/|ℓ|) Σ_ℓ mean ‖h_θ^ℓ − h₀^ℓ‖²``: both ``[layers, positions, width]``; the mean over the
    positions and the hidden units of each layer, then over the layers."""
    squared = (states.float() - stranger_states.float()) ** 2
    return distributed.global_mean(squared.sum() / (squared.shape[0] * squared.shape[2]), squared.shape[1])


def stranger_loss(answer_term: torch.Tensor, state_term: torch.Tensor, retain_term: torch.Tensor, *,
                  answer_weight: float = 1.0, state_weight: float = 1.0, retain_weight: float = 1.0) -> torch.Tensor:
    """``answer + α·state + γ·retain`` (each weight 0 drops its term: the ablations)."""
    return answer_weight * answer_term + state_weight * state_term + retain_weight * retain_term


# ---------------------------------------------------------------------------------------------------
# Reading both sides

def outputs_at(model, batch: dict, where: dict, stranger: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [predictions, vocab], states [layers, positions, width])`` of ``model`` on ``batch`` at the
    matched positions ``where`` (:func:`aligned_positions`; the stranger's columns with ``stranger``);
    ``states``: the output of every language-model layer."""
    side = "_stranger" if stranger else ""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    predicted = where[f"prediction{side}_columns"]
    # the head runs on the answers' span only (from the first matched prediction on), not the whole prompt
    first = int(predicted.min()) if predicted.numel() else inputs["input_ids"].shape[1] - 1
    out = model(**inputs, output_hidden_states=True, use_cache=False,
                logits_to_keep=inputs["input_ids"].shape[1] - first)
    rows, columns = where["state_rows"], where[f"state{side}_columns"]
    states = torch.stack([h[rows, columns] for h in out.hidden_states[1:]])
    return out.logits[where["prediction_rows"], predicted - first], states


def paired_batch_maker(strangers: dict[tuple, object]):
    """A batch builder for :func:`.loop.run_gradient_loop`: each forget batch carries its stranger twin
    (``stranger_*`` tensors) and which rows are portrait questions (``stranger_portrait``). Options stay in
    the order they were drawn in (:func:`multiple_choice_items`), the same for the person and the stranger."""
    def make(processor, examples, rng, rows=slice(None)):
        chosen = examples[rows]
        twins = [Example(strangers[_key(example.source)], example.task) for example in chosen]
        forget, stranger = (make_batch(processor, [(*item.draw(rng, shuffle_options=False), item.image(None))
                                                   for item in items]) for items in (chosen, twins))
        forget.update({STRANGER + name: value for name, value in stranger.items()})
        forget[STRANGER + "portrait"] = torch.tensor([example.modality == IMAGE_TEXT for example in chosen])
        return forget
    return make


def multiple_choice_items(bench, pairs: list, seed: int = 0) -> list[Question]:
    """Each fact of ``pairs`` (training pairs) asked as a four-option question, the way the model was taught
    to answer one: the person's value and three others drawn from the fact's pool, the correct letter
    drawn too (seeded). Not the benchmark's questions: those are for scoring."""
    rng = random.Random(f"mini_unlearn/stranger/options/{seed}")
    items = []
    for pair in pairs:
        if pair.fact not in FACT_POOLS:
            continue
        value = bench.profile(pair.profile_id).fact(pair.fact)
        correct = rng.choice(LETTERS)
        items.append(Question(f"{pair.profile_id}-{pair.modality}-{pair.fact}-twin", pair.profile_id, "mcq",
                              pair.modality, pair.fact, pair.question, value,
                              options=mcq_options(value, FACT_POOLS[pair.fact], correct, rng), correct=correct,
                              image=pair.image))
    return items


def _key(item) -> tuple:
    return (item.profile_id, item.modality, item.fact, type(item).__name__)


def split_batch(batch: dict) -> tuple[dict, dict, torch.Tensor]:
    """``(forget batch, stranger batch, portrait flags)`` from a paired batch."""
    forget = {k: v for k, v in batch.items() if not k.startswith(STRANGER)}
    stranger = {k[len(STRANGER):]: v for k, v in batch.items() if k.startswith(STRANGER) and k != STRANGER + "portrait"}
    return forget, stranger, batch[STRANGER + "portrait"]


# ---------------------------------------------------------------------------------------------------
# The method, registered

@dataclass(frozen=True)
class StrangerConfig:
    """Stranger matching. ``state_weight`` = α, ``retain_weight`` = γ (0 drops a term: the ablations);
    ``answer_weight`` scales the answer term (0 drops it); ``strangers_seed``: which invented people;
    ``multiple_choice``: also match (and hold) every fact asked as a four-option question. The defaults:
    chapter 13's measurements on the course model (its appendix note says why)."""

    steps: int = 100
    lr: float = 3e-4
    batch_size: int = 8
    forget_on: str = "both"
    train: str = "all"
    answer_weight: float = 1.0
    state_weight: float = 1.0
    retain_weight: float = 1.0
    grad_clip: float = 1.0
    seed: int = 0
    strangers_seed: int = 0
    multiple_choice: bool = True

    def __post_init__(self):
        validate.positive_int(self.steps, "steps")
        validate.positive(self.lr, "lr", hint="the learning rate")
        validate.positive_int(self.batch_size, "batch_size")
        for name in ("answer_weight", "state_weight", "retain_weight"):
            validate.positive(getattr(self, name), name, allow_zero=True, finite=True)
        validate.positive(self.grad_clip, "grad_clip")
        require_forget_on(self.forget_on)
        require_trainable(self.train)
        validate.seed(self.seed)
        validate.seed(self.strangers_seed, "strangers_seed")


def strangers_for(bench, forget: list, seed: int = 0) -> dict[tuple, object]:
    """Each forget pair's stranger twin, by (person, modality, fact): forget person ``i`` (in forget order)
    gets invented stranger ``i`` (:func:`~mini_unlearn.bench.strangers.invent_strangers`)."""
    people = list(dict.fromkeys(example.profile_id for example in forget))
    strangers = dict(zip(people, invent_strangers(bench, len(people), seed)))
    return {_key(example.source): stranger_twin(example.source, bench.profile(example.profile_id),
                                                strangers[example.profile_id]) for example in forget}


def _prepare(vlm, bench, ratio, config, progress=True):
    forget, retain = unlearning_sets(bench, ratio, config.forget_on)
    if config.multiple_choice:
        forget = forget + [Example(item, "mcq") for item in multiple_choice_items(bench, [e.source for e in forget], config.seed)]
        retain = retain + [Example(item, "mcq") for item in multiple_choice_items(bench, [e.source for e in retain], config.seed)]
    return {"forget": forget, "retain": retain, "twins": strangers_for(bench, forget, config.strangers_seed)}


@register("stranger", StrangerConfig, "the course's own: answer and represent a forget person as the input model "
          "does an invented stranger", prepare=_prepare, reads_input=True,
          trains=lambda model, config: trainable_parameters(model, config.train),
          grid={"lr": [1e-4, 3e-4, 1e-3], "steps": [50, 100]}, quick={"steps": 2}, shards=True)
def stranger_matching(vlm, bench, ratio, config, *, forget, retain, twins, original, progress, monitor, probe_every):
    frozen = original.model
    frozen.eval()

    def loss_fn(model, paired, retain_batch):
        forget_batch, stranger_batch, portrait = split_batch(paired)
        where = aligned_positions(forget_batch, stranger_batch, portrait)
        logits, states = outputs_at(model, forget_batch, where)
        with torch.no_grad():
            stranger_logits, stranger_states = outputs_at(frozen, stranger_batch, where, stranger=True)
            retain_reference, _ = answer_logits(frozen, retain_batch)
        retain_logits, labels = answer_logits(model, retain_batch)
        answer_term = answer_match_loss(logits, stranger_logits)
        state_term = state_match_loss(states, stranger_states)
        retain_term = kl_to_reference(retain_logits, retain_reference, labels)
        loss = stranger_loss(answer_term, state_term, retain_term, answer_weight=config.answer_weight,
                             state_weight=config.state_weight, retain_weight=config.retain_weight)
        return {"loss": loss, "answer_kl": answer_term, "state_mse": state_term, "retain_kl": retain_term}

    return run_gradient_loop(vlm, forget, retain, loss_fn, steps=config.steps, lr=config.lr,
                             batch_size=config.batch_size, grad_clip=config.grad_clip, train=config.train,
                             seed=config.seed, progress=progress, monitor=monitor, probe_every=probe_every,
                             desc="stranger", make_forget_batch=paired_batch_maker(twins))


__all__ = ["StrangerConfig", "aligned_positions", "answer_match_loss", "matched_tokens", "state_match_loss",
           "strangers_for", "stranger_loss"]
