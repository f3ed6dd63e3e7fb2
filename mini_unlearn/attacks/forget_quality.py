"""Forget quality (TOFU): does the unlearned model look, on the forget questions, like a model that never
saw the forget people? (chapter 09)

TOFU's **truth ratio** of a question compares the wrong answers with the right one, each scored by its
length-normalised likelihood ``p̄(a | q) = exp(mean_t log p(a_t | q, a_<t))``. As open-unlearning and
TOFU's evaluation code compute it, the wrong answers' ``log p̄`` are averaged first — a **geometric** mean::

    R_truth = exp(mean over wrong answers a' of log p̄(a' | q)) / p̄(a | q)

(``mean="arithmetic"``: the mean of the ratios ``p̄(a' | q) / p̄(a | q)``, the formula as the TOFU paper
prints it; it is never smaller than the geometric one.)

A model that knows the answer gives ``R ≪ 1``; one that does not, ``R`` near 1. Here the answers are the
MCQ's four options, each written into the fact's answer sentence (:meth:`Benchmark.option_sentences`)
and scored as the answer to the question asked for one sentence — the ``"sentence"`` form of chapter 03's
MCQ-by-likelihood. TOFU's **forget quality** is the p-value of the two-sample Kolmogorov–Smirnov test
(scipy) between the unlearned model's truth ratios on the forget questions and the retain-only model's:
a high p-value means the two distributions cannot be told apart, which is the goal.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import validate
from ..bench import LETTERS
from ..evaluation.statistics import ks_test   # one KS test for TOFU's and CLEAR's forget quality
from ..evaluation.tasks import evaluating, option_log_likelihoods, shared_batches


def require_mcqs(bench, questions) -> list:
    questions = [q for q in questions if q.task == "mcq"]
    if not questions:
        raise ValueError("questions holds no MCQ: the truth ratio compares an MCQ's correct option with its wrong ones")
    if any(bench.option_sentences(q) is None for q in questions):
        raise ValueError("the truth ratio needs each MCQ's options as answer sentences; this benchmark's facts have "
                         "no sentence templates (Benchmark.option_sentences returned None)")
    return questions


MEANS: tuple[str, ...] = ("geometric", "arithmetic")


def require_mean(mean: str) -> str:
    return validate.one_of(mean, "mean", MEANS)


def truth_ratio(log_likelihoods: torch.Tensor, correct: int, mean: str = "geometric") -> float:
    """``R_truth`` of one question from its options' length-normalised log-likelihoods ``log p̄`` (``correct``:
    the index of the right one): ``exp(mean over the wrong options of log p̄(a') − log p̄(a))``, the geometric
    mean of the ratios ``p̄(a') / p̄(a)`` (open-unlearning, TOFU's code); ``mean="arithmetic"``: their mean."""
    log_likelihoods = torch.as_tensor(log_likelihoods, dtype=torch.float64)
    wrong = torch.cat([log_likelihoods[:correct], log_likelihoods[correct + 1:]])
    if require_mean(mean) == "geometric":
        return float(torch.exp(wrong.mean() - log_likelihoods[correct]))
    return float(torch.exp(wrong - log_likelihoods[correct]).mean())


def option_rows(vlm, bench, questions, normalize: str, batch_size: int = 8):
    """``(position, question, its four options' log-likelihoods, the correct option's index)`` for each MCQ,
    scored as answer sentences (one modality per batch); the order is the batches', positions say where.

    Under a multi-process launcher, with the model whole on every process, the batches are shared out
    (:func:`~mini_unlearn.evaluation.tasks.shared_batches`) and every process gets every row: call it on every
    process."""
    def scored(_, chunk):
        return option_log_likelihoods(vlm, chunk, normalize, [bench.option_sentences(q) for q in chunk]).double().cpu()

    with evaluating(vlm.model):
        found = shared_batches(vlm, questions, batch_size, scored)
    for positions, scores in found:
        for i, row in zip(positions, scores):
            yield i, questions[i], row, LETTERS.index(questions[i].correct)


def truth_ratios(vlm, bench, questions, batch_size: int = 8, mean: str = "geometric") -> np.ndarray:
    """``R_truth`` of each MCQ among ``questions`` (the others are skipped), in order.

    Under a multi-process launcher call it on every process: each scores its share of the batches
    (:func:`option_rows`), and every process gets every ratio."""
    questions, mean = require_mcqs(bench, questions), require_mean(mean)
    ratios = np.zeros(len(questions))
    for i, _, row, correct in option_rows(vlm, bench, questions, "mean", batch_size):
        ratios[i] = truth_ratio(row, correct, mean)
    return ratios


def option_scores(vlm, bench, questions, normalize: str = "sum", batch_size: int = 8) -> pd.DataFrame:
    """Per MCQ: the log-likelihood of the correct option's sentence, the mean and the best of the wrong ones,
    and whether the correct one wins (chapter 03's MCQ-by-likelihood). Chapter 09 reads from it whether an
    edit *erased* the right answer or only made every option unlikely. (Under a launcher: on every process,
    as :func:`truth_ratios`.)"""
    questions = require_mcqs(bench, questions)
    rows = [None] * len(questions)
    for i, q, row, correct in option_rows(vlm, bench, questions, normalize, batch_size):
        wrong = torch.cat([row[:correct], row[correct + 1:]])
        rows[i] = {"question_id": q.id, "modality": q.modality, "correct": float(row[correct]),
                   "wrong_mean": float(wrong.mean()), "best_wrong": float(wrong.max()),
                   "correct_wins": bool(row[correct] > wrong.max())}
    return pd.DataFrame(rows)


def forget_quality(vlm, reference, bench, ratio: float = 0.05, split: str = "forget") -> pd.DataFrame:
    """Per modality: the KS statistic and p-value between ``vlm``'s and ``reference``'s truth ratios on the
    ``split`` questions (TOFU: ``reference`` is the retain-only model), with each model's median ratio."""
    questions = list(bench.split(split, ratio).questions)
    rows = []
    for modality in sorted({q.modality for q in questions}):
        asked = [q for q in questions if q.modality == modality]
        mine, theirs = truth_ratios(vlm, bench, asked), truth_ratios(reference, bench, asked)
        statistic, p_value = ks_test(mine, theirs)
        rows.append({"modality": modality, "ks_statistic": statistic, "forget_quality": p_value,
                     "median_truth_ratio": float(np.median(mine)), "reference_median": float(np.median(theirs))})
    return pd.DataFrame(rows)


__all__ = ["MEANS", "require_mcqs", "require_mean", "forget_quality", "ks_test", "option_rows", "option_scores", "truth_ratio", "truth_ratios"]
