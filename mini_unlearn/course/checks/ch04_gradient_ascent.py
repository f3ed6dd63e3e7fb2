"""Chapter 04 · gradient ascent and its relatives: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips

__all__ = ["check_ga_loss", "check_score_table", "check_npo_loss"]


# -- 4.1 the GA loss -----------------------------------------------------------------------------------

def _ga_cases() -> list[Case]:
    """Aligned logits and labels, ``-100`` before each answer (left-padded rows, answers at the end)."""
    import torch
    generator = torch.Generator().manual_seed(4)
    cases = []
    for rows, length, vocab, answers in ((2, 5, 7, [3, 3]), (3, 8, 11, [1, 4, 7]), (4, 6, 5, [5, 2, 2, 1])):
        logits = torch.randn(rows, length, vocab, generator=generator) * 2
        labels = torch.full((rows, length), -100)
        for row, answer in enumerate(answers):
            labels[row, length - answer:] = torch.randint(0, vocab, (answer,), generator=generator)
        cases.append((f"{rows} rows of {length} positions, answer lengths {answers}", (logits, labels)))
    return cases


def _ga_no_minus(logits, labels):
    import torch.nn.functional as F
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def _ga_row_means(logits, labels):
    import torch.nn.functional as F
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    scored = labels != -100
    return -(per_token.sum(dim=1) / scored.sum(dim=1)).mean()


def _ga_row_sums(logits, labels):
    import torch.nn.functional as F
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return -per_token.sum(dim=1).mean()


@slips(Slip(_ga_no_minus, "the minus is missing: that is the ordinary training loss, and minimising it makes "
                          "the model learn the forget set better; gradient ascent minimises −CE"),
       Slip(_ga_row_means, "a mean over the batch where a token mean belongs: CE is the mean over ALL the "
                           "batch's answer tokens, so a 7-token answer weighs seven times a 1-token one, "
                           "not the mean of per-row means"),
       Slip(_ga_row_sums, "a sum over each answer's tokens where a mean belongs: that is −log p(answer) per "
                          "row (NPO's sequence log-likelihood); CE averages over the answer tokens"))
def check_ga_loss(fn: Callable) -> None:
    """Chapter 04: ``fn(logits, labels)`` → GA's loss −CE: minus the mean cross-entropy over every scored
    (``labels != -100``) token of the batch; ``logits`` ``[rows, positions, vocabulary]`` already aligned."""
    from ...methods.losses import ga_loss, token_cross_entropy

    def reference(logits, labels):
        return ga_loss(token_cross_entropy(logits, labels))

    compare("ga_loss", fn, reference, _ga_cases(), atol=1e-5, slips=check_ga_loss.slips, adapt=as_float)


# -- 4.2 the per-modality table ---------------------------------------------------------------------

_TASKS = ("mcq_likelihood", "cloze")
_CELLS = (("forget", "image+text"), ("forget", "text"), ("retain", "image+text"), ("retain", "text"),
          ("test", "image+text"), ("utility", "text"))


def _report(seed: int):
    """A made-up Report: three people's questions in every split × modality × task, random 0/1 scores."""
    import random

    import pandas as pd

    from ...evaluation.report import Report
    rng = random.Random(seed)
    rows = []
    for split, modality in _CELLS:
        for task in _TASKS:
            for person in range(3):
                correct = rng.random() < 0.6
                rows.append({"split": split, "modality": modality, "task": task,
                             "question_id": f"{split}-{modality}-{task}-{person}", "profile_id": f"p{person}",
                             "fact": "born", "answer": "x", "prediction": "x" if correct else "y",
                             "correct": correct, "score": float(correct), "rouge1": float("nan")})
    return Report(pd.DataFrame(rows))


def _table_cases() -> list[Case]:
    reports = {"vanilla": _report(0), "ga": _report(1), "npo": _report(2)}
    return [("two models, tasks ('cloze',), forget by image and by name",
             ({"vanilla": reports["vanilla"], "ga": reports["ga"]}, ("cloze",), _CELLS[:2])),
            ("three models, tasks ('mcq_likelihood', 'cloze'), six split / modality cells",
             (reports, _TASKS, _CELLS)),
            ("one model, tasks ('cloze', 'mcq_likelihood'), retain and utility cells",
             ({"npo": reports["npo"]}, _TASKS[::-1], (_CELLS[2], _CELLS[5])))]


def _as_rows(f: Callable) -> Callable:
    """A table as plain lists — row names, column names, values to 9 decimals — so that it compares exactly."""
    def table(reports, tasks, cells):
        frame = f(reports, tasks, cells)
        return {"rows": [str(name) for name in frame.index], "columns": [tuple(c) if isinstance(c, tuple) else c
                                                                          for c in frame.columns],
                "values": [[round(float(x), 9) for x in row] for row in frame.to_numpy()]}
    return table


def _table_transposed(reports, tasks, cells):
    import pandas as pd
    return pd.DataFrame({name: {(f"{split} / {modality}", task): report.score(split, modality, task)
                                for split, modality in cells for task in tasks}
                         for name, report in reports.items()})


def _table_task_first(reports, tasks, cells):
    import pandas as pd
    return pd.DataFrame({name: {(task, f"{split} / {modality}"): report.score(split, modality, task)
                                for task in tasks for split, modality in cells}
                         for name, report in reports.items()}).T


@slips(Slip(_table_transposed, "the table is transposed: one ROW per model (so models can be compared down a "
                               "column), one column per (split / modality, task) — build it, then take .T"),
       Slip(_table_task_first, "the column keys are the wrong way round: each column is "
                               "(\"split / modality\", task), split and modality first, in the order of cells, "
                               "then each task"))
def check_score_table(fn: Callable) -> None:
    """Chapter 04: ``fn(reports, tasks, cells)`` → one row per model, one column per
    (``"split / modality"``, task), each the report's score (``report.score(split, modality, task)``)."""
    from ...evaluation import score_table

    compare("score_table", fn, score_table, _table_cases(), slips=check_score_table.slips, adapt=_as_rows)


# -- 4.3 the NPO loss -----------------------------------------------------------------------------------

def _npo_cases() -> list[Case]:
    """Per-sequence log-likelihoods under the model and the reference; equal, far below, above; several β."""
    import torch
    generator = torch.Generator().manual_seed(7)
    log_p = -torch.rand(5, generator=generator) * 20
    cases = [("model equal to the reference, beta=0.4", (log_p, log_p.clone(), 0.4))]
    for beta in (0.4, 0.1, 2.0):
        ref = -torch.rand(5, generator=generator) * 20
        cases.append((f"5 random sequences, beta={beta}", (log_p, ref, beta)))
    cases.append(("the model already far below the reference, beta=0.4", (log_p - 80.0, log_p, 0.4)))
    return cases


def _npo_without_scale(log_p, ref_log_p, beta):
    import torch.nn.functional as F
    return -F.logsigmoid(-beta * (log_p - ref_log_p)).mean()


def _npo_flipped(log_p, ref_log_p, beta):
    import torch.nn.functional as F
    return -(2 / beta) * F.logsigmoid(beta * (log_p - ref_log_p)).mean()


@slips(Slip(_npo_flipped, "the sign inside σ is flipped: NPO pushes log p BELOW the reference, "
                          "so the loss is −(2/β)·log σ(−β·(log p − log p_ref)), with a minus inside σ"),
       Slip(_npo_without_scale, "the 2/β in front is missing: without it the loss's gradient does not "
                                "tend to gradient ascent's as β → 0"))
def check_npo_loss(fn: Callable) -> None:
    """Chapter 04: ``fn(log_p, ref_log_p, beta)`` → the NPO loss −(2/β)·mean log σ(−β(log_p − ref_log_p))."""
    from ...methods.losses import npo_loss

    compare("npo_loss", fn, npo_loss, _npo_cases(), atol=1e-5, slips=check_npo_loss.slips, adapt=as_float)
