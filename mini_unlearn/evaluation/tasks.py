"""The three tasks of MLLMU-Bench, scored as its ``eval.py`` scores them (chapter 03).

* **Multiple choice, by generated letter** (MLLMU-Bench's way): greedy decoding; the prediction is
  the first non-space character of the answer, upper-cased, if it is one of A–D (else ``None``).
* **Multiple choice, by option likelihood** (an extension): the option the model finds most likely.
  Two forms. ``"sentence"`` (the default of :func:`~.suite.evaluate`): each option written into the
  fact's answer sentence ("… was born in {option}.") and scored as the answer to the question, as
  TOFU scores perturbed answers; it reads what the model *knows*, independent of whether it can map
  a fact onto a letter. ``"options"``: the option's text scored right after the MCQ prompt (options
  listed, letter instruction); a model trained to write a letter there gives that little meaning.
  No parsing either way, so both also read a model that no longer answers with a letter.
* **Generation**: greedy decoding, scored by ROUGE-L F1 against the reference sentence.
* **Cloze** (fill in the blank): greedy decoding; correct iff the answer is a substring of the
  response, both lower-cased.

Scoring is pure functions of strings (:func:`letter_of`, :func:`rouge_l`, :func:`cloze_correct`);
the model plumbing is three batched functions that turn questions into predictions
(:func:`predict_letters`, :func:`predict_by_likelihood`, :func:`predict_text`). Zero-shot
throughout: MLLMU-Bench prepends few-shot examples, which confuse small models (its issue #2).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace

import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer

from ..bench import LETTERS
from ..bench.questions import Question
from ..models import question_prompt, target
from ..models.prompts import render
from ..models.train_data import position_ids
from .. import distributed, validate

TASKS: tuple[str, ...] = ("mcq_letter", "mcq_likelihood", "gen", "cloze")
QUESTION_TASK = {"mcq_letter": "mcq", "mcq_likelihood": "mcq", "gen": "gen", "cloze": "cloze"}  # which questions
METRIC = {"mcq_letter": "accuracy", "mcq_likelihood": "accuracy", "gen": "rougeL", "cloze": "accuracy"}
NORMALIZE: tuple[str, ...] = ("sum", "mean")
MAX_NEW_TOKENS = 50   # MLLMU-Bench's eval.py
MROPE_MODELS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")   # compute their own 3-D positions; leave them alone


# -- scoring: pure functions of strings ------------------------------------------------------------
def letter_of(text: str) -> str | None:
    """The MCQ letter a response gives: its first non-space character, upper-cased, if in A–D.

    >>> letter_of("  b) Paris"), letter_of("E"), letter_of("")
    ('B', None, None)
    """
    text = text.lstrip()
    letter = text[:1].upper()
    return letter if letter in LETTERS else None


_ROUGE = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def rouge(ground_truth: str, prediction: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F1 of a prediction against the reference (``rouge_score``, stemmed)."""
    scores = _ROUGE.score(ground_truth, prediction)
    return {"rouge1": scores["rouge1"].fmeasure, "rougeL": scores["rougeL"].fmeasure}


def rouge_l(ground_truth: str, prediction: str) -> float:
    """ROUGE-L F1: the longest common subsequence of words, as a harmonic mean of precision and recall."""
    return rouge(ground_truth, prediction)["rougeL"]


def rouge_recall(ground_truth: str, prediction: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L **recall** (same scorer): the share of the reference's words the prediction gives
    back, in order for ROUGE-L (CLEAR's and TOFU's ``eval_rouge_recall``)."""
    scores = _ROUGE.score(ground_truth, prediction)
    return {"rouge1": scores["rouge1"].recall, "rougeL": scores["rougeL"].recall}


def cloze_correct(ground_truth: str, response: str) -> bool:
    """MLLMU-Bench's cloze rule: the answer appears in the response, ignoring case."""
    return ground_truth.lower() in response.lower()


# -- model plumbing ---------------------------------------------------------------------------------
@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode and no autograd inside; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


def batches(questions: list[Question], batch_size: int):
    """Batches of at most ``batch_size`` questions of one modality, as (their positions, the questions).

    Questions with an image and questions without one never share a batch: a batch either carries
    one image per prompt or none.
    """
    for has_image in (True, False):
        positions = [i for i, q in enumerate(questions) if (q.image is not None) == has_image]
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            yield chunk, [questions[i] for i in chunk]


def shared_batches(vlm, items: list, batch_size: int, function) -> list[tuple[list[int], object]]:
    """``(positions, function(positions, chunk))`` for each of :func:`batches`' batches of ``items``.

    Under a multi-process launcher process ``r`` of ``N`` runs batches ``r, r + N, …`` and every process
    gets all the results, in order (:func:`~mini_unlearn.distributed.split_map`), each from the very batch
    one process runs (same rows, same padding). ``vlm``'s model must be whole on every process; a sharded
    one runs every batch on every process. Keep the results small and on the CPU: they travel pickled."""
    pieces = list(batches(items, batch_size))
    found = distributed.split_map(lambda piece: function(*piece), pieces, split=distributed.holds_whole(vlm.model))
    return [(positions, result) for (positions, _), result in zip(pieces, found)]


def encode(vlm, prompts: list[str], questions: list[Question]) -> dict[str, torch.Tensor]:
    """A left-padded batch of prompts with each question's image (if it has one)."""
    images = [q.image.load() for q in questions if q.image is not None]
    if images and len(images) != len(prompts):
        raise ValueError("a batch mixes questions with and without an image; batch them by modality")
    return vlm.encode(prompts, images or None)


def with_positions(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the position ids that ``generate`` gives a left-padded batch: padding does not count.

    Without them a padded row would start at position 5 instead of 0. (Rotary embeddings make that
    almost harmless, but "almost" is not "equal to generate".)
    """
    if getattr(model.config, "model_type", "") in MROPE_MODELS or "attention_mask" not in batch:
        return batch
    return {**batch, "position_ids": position_ids(batch["attention_mask"])}


def eos_ids(vlm) -> list[int]:
    """Every token id that ends an answer (the tokenizer's and the generation config's)."""
    ids = {vlm.tokenizer.eos_token_id}
    configured = getattr(getattr(vlm.model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return sorted(i for i in ids if i is not None)


def generate(vlm, batch: dict[str, torch.Tensor], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy decoding of a batch; the new text of each row, special tokens removed, not stripped."""
    tokenizer = vlm.tokenizer
    output = vlm.model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids(vlm))
    return tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def _progress(bar, n: int) -> None:
    if bar is not None:
        bar.update(n)


def predict_text(vlm, questions: list[Question], *, batch_size: int = 32, max_new_tokens: int = MAX_NEW_TOKENS,
                 bar=None) -> list[str]:
    """The greedy answer to each question (generation and cloze), stripped."""
    answers = [None] * len(questions)
    with evaluating(vlm.model):
        for positions, chunk in batches(questions, batch_size):
            batch = encode(vlm, [question_prompt(q) for q in chunk], chunk)
            for i, text in zip(positions, generate(vlm, batch, max_new_tokens)):
                answers[i] = text.strip()
            _progress(bar, len(chunk))
    return answers


def predict_letters(vlm, questions: list[Question], *, batch_size: int = 32, max_new_tokens: int = MAX_NEW_TOKENS,
                    bar=None) -> list[str | None]:
    """The letter each MCQ answer starts with, exactly as greedy ``generate`` + :func:`letter_of` gives it.

    The first greedy token is the argmax of the logits at the prompt's last position, so one forward
    pass answers almost every question. Only a row whose first token is blank (a space, a newline)
    needs more: for those rows we run ``generate`` itself, so the result always equals
    ``letter_of(generate(...))`` with ``max_new_tokens`` (greedy, with no logits processors).
    """
    letters = [None] * len(questions)
    stop = set(eos_ids(vlm))
    with evaluating(vlm.model):
        for positions, chunk in batches(questions, batch_size):
            prompts = [question_prompt(q) for q in chunk]
            batch = encode(vlm, prompts, chunk)
            logits = vlm.model(**with_positions(vlm.model, batch), logits_to_keep=1).logits[:, -1]
            first = logits.argmax(-1).tolist()
            texts = vlm.tokenizer.batch_decode([[token] for token in first], skip_special_tokens=True)
            blank = [i for i, (token, text) in enumerate(zip(first, texts)) if not text.strip() and token not in stop]
            if blank:   # rare in a trained model: let generate continue past the blank token
                rest = encode(vlm, [prompts[i] for i in blank], [chunk[i] for i in blank])
                for i, text in zip(blank, generate(vlm, rest, max_new_tokens)):
                    texts[i] = text
            for i, text in zip(positions, texts):
                letters[i] = letter_of(text)
            _progress(bar, len(chunk))
    return letters


def answer_log_likelihood(logits: torch.Tensor, input_ids: torch.Tensor, answer_lengths: torch.Tensor) -> torch.Tensor:
    """``[batch]``: log p(answer | prompt), the answer being the last ``answer_lengths[i]`` tokens of row i.

    ``logits[:, t]`` is the model's prediction for the *next* token, ``input_ids[:, t + 1]``: the
    last position predicts nothing we have, and the first token is never predicted. Rows are
    left-padded, so every answer ends at the last position. Taught in chapter 03 (exercise).
    """
    token_logp = F.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    position = torch.arange(token_logp.shape[1], device=token_logp.device)
    in_answer = position >= (token_logp.shape[1] - answer_lengths).unsqueeze(1)
    return (token_logp * in_answer).sum(-1)


def likelihood_rows(question: Question, sentences: dict[str, str] | None) -> list[tuple[str, str]]:
    """``(prompt, continuation)`` per option, A–D: the option's sentence after the question asked
    for one sentence (``sentences`` given), else the option's text after the MCQ prompt."""
    if sentences is None:
        return [(question_prompt(question), target(question.options[letter])) for letter in LETTERS]
    prompt = question_prompt(replace(question, task="gen", options=None, correct=None))
    return [(prompt, target(sentences[letter])) for letter in LETTERS]


@torch.inference_mode()
def option_log_likelihoods(vlm, questions: list[Question], normalize: str = "sum",
                           sentences: list[dict[str, str]] | None = None) -> torch.Tensor:
    """``[len(questions), 4]``: log p(option | prompt) of each option, in A–D order, from one forward pass.

    Without ``sentences`` the option is scored as the model would say it, ``target(option)`` after
    the MCQ prompt. With ``sentences`` (one ``{letter: sentence}`` per question, from
    :meth:`Benchmark.option_sentences <mini_unlearn.bench.Benchmark.option_sentences>`) each option's
    sentence is scored as the one-sentence answer to the question (the ``"sentence"`` form).
    ``normalize="sum"`` is the option's total log-likelihood (the log-probability of the whole
    string); ``"mean"`` divides by its number of tokens, which stops long options from being
    penalised for their length. The default is ``"sum"``: a model that memorised "glassblower" gives
    each of its tokens a probability near 1, so its total is near 0 however many tokens it has.
    """
    validate.one_of(normalize, "normalize", NORMALIZE)
    if sentences is not None and len(sentences) != len(questions):
        raise ValueError(f"sentences: expected one dict per question ({len(questions)}); got {len(sentences)}")
    per_question = sentences if sentences is not None else [None] * len(questions)
    rows = [(q, *render(vlm.processor, prompt, answer, closed=False)) for q, options in zip(questions, per_question)
            for prompt, answer in likelihood_rows(q, options)]
    prompts = [prompt for _, prompt, _ in rows]
    full = [prompt + answer for _, prompt, answer in rows]
    prompt_ids = vlm.tokenizer(prompts, add_special_tokens=True)["input_ids"]
    full_ids = vlm.tokenizer(full, add_special_tokens=True)["input_ids"]
    if any(f[:len(p)] != p for p, f in zip(prompt_ids, full_ids)):
        raise ValueError("the tokenizer merges the end of the prompt with the start of the option, "
                         "so the option's tokens cannot be told apart from the prompt's")
    n_option = torch.tensor([len(f) - len(p) for p, f in zip(prompt_ids, full_ids)], device=vlm.device)

    batch = encode(vlm, full, [q for q, _, _ in rows])
    keep = int(n_option.max()) + 1        # left padding: every option sits at the end of its row
    logits = vlm.model(**with_positions(vlm.model, batch), logits_to_keep=keep).logits
    total = answer_log_likelihood(logits, batch["input_ids"][:, -keep:], n_option)
    scores = total / n_option if normalize == "mean" else total
    return scores.view(len(questions), len(LETTERS))


def predict_by_likelihood(vlm, questions: list[Question], *, batch_size: int = 32, normalize: str = "sum",
                          sentences: list[dict[str, str]] | None = None, bar=None) -> list[str]:
    """The letter of the most likely option of each MCQ (``batch_size`` rows = batch_size // 4 questions)."""
    per_batch = max(1, batch_size // len(LETTERS))
    letters = [None] * len(questions)
    with evaluating(vlm.model):
        for positions, chunk in batches(questions, per_batch):
            chosen = [sentences[i] for i in positions] if sentences is not None else None
            best = option_log_likelihoods(vlm, chunk, normalize, chosen).argmax(-1).tolist()
            for i, option in zip(positions, best):
                letters[i] = LETTERS[option]
            _progress(bar, len(chunk))
    return letters


def score(task: str, question: Question, prediction: str | None) -> dict:
    """One row of results: what was predicted, whether it is correct, and its score in [0, 1]."""
    if task in ("mcq_letter", "mcq_likelihood"):
        correct = prediction == question.correct
        return {"answer": question.correct, "prediction": prediction, "correct": correct, "score": float(correct)}
    if task == "gen":
        scores = rouge(question.answer, prediction)
        return {"answer": question.answer, "prediction": prediction, "correct": None,
                "score": scores["rougeL"], "rouge1": scores["rouge1"]}
    if task == "cloze":
        correct = cloze_correct(question.answer, prediction)
        return {"answer": question.answer, "prediction": prediction, "correct": correct, "score": float(correct)}
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def questions_per_batch(task: str, batch_size: int) -> int:
    """How many questions one batch of ``task`` holds: ``batch_size``, or for ``mcq_likelihood``, whose
    questions take a row per option, ``batch_size // 4`` (at least one)."""
    return max(1, batch_size // len(LETTERS)) if task == "mcq_likelihood" else batch_size


def predict(vlm, task: str, questions: list[Question], *, batch_size: int = 32,
            max_new_tokens: int = MAX_NEW_TOKENS, normalize: str = "sum",
            sentences: list[dict[str, str]] | None = None, bar=None) -> list:
    """The predictions of one task for its questions (MCQ: letters or None; gen and cloze: text).

    Batch by batch (:func:`batches`: one modality, :func:`questions_per_batch` questions each). Under a
    multi-process launcher the processes share the batches out and every process returns all the
    predictions, in order (:func:`shared_batches`).
    The functions it calls (:func:`predict_letters`, …) run all the questions they are given.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if sentences is not None and len(sentences) != len(questions):
        raise ValueError(f"sentences: expected one dict per question ({len(questions)}); got {len(sentences)}")
    done = [0]

    def one_batch(positions, chunk):
        chosen = None if sentences is None else [sentences[i] for i in positions]
        predicted = _predict(vlm, task, chunk, batch_size=batch_size, max_new_tokens=max_new_tokens,
                             normalize=normalize, sentences=chosen, bar=bar)
        done[0] += len(chunk)
        return predicted

    predictions = [None] * len(questions)
    for positions, predicted in shared_batches(vlm, questions, questions_per_batch(task, batch_size), one_batch):
        for i, prediction in zip(positions, predicted):
            predictions[i] = prediction
    _progress(bar, len(questions) - done[0])      # the other processes' questions
    return predictions


def _predict(vlm, task: str, questions: list[Question], *, batch_size: int, max_new_tokens: int, normalize: str,
             sentences: list[dict[str, str]] | None, bar) -> list:
    """One task's predictions, every question on this process (what :func:`predict` runs on each batch)."""
    if task == "mcq_letter":
        return predict_letters(vlm, questions, batch_size=batch_size, max_new_tokens=max_new_tokens, bar=bar)
    if task == "mcq_likelihood":
        return predict_by_likelihood(vlm, questions, batch_size=batch_size, normalize=normalize, sentences=sentences,
                                     bar=bar)
    return predict_text(vlm, questions, batch_size=batch_size, max_new_tokens=max_new_tokens, bar=bar)
