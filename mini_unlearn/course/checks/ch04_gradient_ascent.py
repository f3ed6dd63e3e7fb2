"""Chapter 04 · gradient ascent and its relatives: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips
from .plug import plugs_into

__all__ = ["check_ga_loss", "check_ga_diff_loss", "check_score_table", "check_npo_loss"]


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


# -- 4.2 the GA_Diff loss -------------------------------------------------------------------------------

def _gd_cases() -> list[Case]:
    """An untrained tiny LLaVA and pairs of (forget, retain) batches of a 4-person benchmark: portraits,
    names, both mixed; the answers scored (``loss_on="answer"``) or whole rows (``"sequence"``); several λ."""
    import random

    from ...bench import make_benchmark
    from ...methods.data import example_batches, scored_on, unlearning_sets
    from ...models import build_model, build_processor, build_tokenizer, get_preset
    bench = make_benchmark(n_profiles=4, seed=0, n_utility=1)
    preset = get_preset("tiny")
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    model, processor = build_model(preset, tokenizer, seed=4), build_processor(tokenizer, preset)
    cases = []
    for forget_on, rows, loss_on, weight in (("image+text", 3, "answer", 1.0), ("text", 2, "answer", 0.5),
                                             ("both", 4, "sequence", 2.0)):
        forget, retain = unlearning_sets(bench, 0.25, forget_on)
        rng = random.Random(f"check_ga_diff_loss/{forget_on}")
        forget_batch = scored_on(next(example_batches(processor, forget, rows, rng)), loss_on)
        retain_batch = scored_on(next(example_batches(processor, retain, rows + 1, rng)), loss_on)
        described = (f"{rows} forget rows ({forget_on}), {rows + 1} retain rows, loss_on={loss_on!r}, "
                     f"retain_weight={weight}")
        cases.append((described, (model, forget_batch, retain_batch, weight)))
    return cases


def _gd_as_numbers(f: Callable) -> Callable:
    """The dict's three numbers, in order; the loss must carry a gradient (the loop backpropagates it)."""
    def numbers(*args):
        out = f(*args)
        if not isinstance(out, dict) or set(out) != {"loss", "forget_ce", "retain_ce"}:
            keys = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise AssertionError(f"ga_diff_loss must return a dict with the keys 'forget_ce', 'loss' and "
                                 f"'retain_ce' (the loop logs them); got {keys}")
        if not getattr(out["loss"], "requires_grad", False):
            raise AssertionError("ga_diff_loss's 'loss' carries no gradient: compute it from the model's "
                                 "logits, outside torch.no_grad(), so that the loop can backpropagate it")
        values = [out[key] for key in ("loss", "forget_ce", "retain_ce")]
        return [float(value.detach() if hasattr(value, "detach") else value) for value in values]
    return numbers


def _gd_answer_ce(model, batch, shift=1, extra=1):
    """Answer-token CE with the alignment spoilt on purpose: ``shift=0`` scores each position's logits
    against its own token, ``extra=0`` keeps one position too few."""
    import torch.nn.functional as F
    labels = batch["labels"]
    span = int((labels != -100).sum(dim=1).max()) + extra
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    logits = model(**inputs, logits_to_keep=span, use_cache=False).logits
    if shift:
        logits, labels = logits[:, :-1], labels[:, labels.shape[1] - span + 1:]
    else:
        labels = labels[:, labels.shape[1] - span:]
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def _gd_combine(forget_ce, retain_ce, loss):
    return {"loss": loss, "forget_ce": forget_ce, "retain_ce": retain_ce}


def _gd_unshifted(model, forget_batch, retain_batch, retain_weight):
    forget_ce, retain_ce = _gd_answer_ce(model, forget_batch, 0), _gd_answer_ce(model, retain_batch, 0)
    return _gd_combine(forget_ce, retain_ce, -forget_ce + retain_weight * retain_ce)


def _gd_span_short(model, forget_batch, retain_batch, retain_weight):
    forget_ce = _gd_answer_ce(model, forget_batch, extra=0)
    retain_ce = _gd_answer_ce(model, retain_batch, extra=0)
    return _gd_combine(forget_ce, retain_ce, -forget_ce + retain_weight * retain_ce)


def _gd_descends_forget(model, forget_batch, retain_batch, retain_weight):
    forget_ce, retain_ce = _gd_answer_ce(model, forget_batch), _gd_answer_ce(model, retain_batch)
    return _gd_combine(forget_ce, retain_ce, forget_ce + retain_weight * retain_ce)


def _gd_weight_on_forget(model, forget_batch, retain_batch, retain_weight):
    forget_ce, retain_ce = _gd_answer_ce(model, forget_batch), _gd_answer_ce(model, retain_batch)
    return _gd_combine(forget_ce, retain_ce, -retain_weight * forget_ce + retain_ce)


@plugs_into("mini_unlearn.methods.gradient:ga_diff_loss")
@slips(Slip(_gd_unshifted, "the logits are not shifted against the labels: the logits at position t predict "
                           "the token at t+1, so drop the last position's logits and the first label "
                           "(logits[:, :-1] against labels[:, 1:] of the kept span)"),
       Slip(_gd_span_short, "the span is one position short: the first answer token is predicted by the "
                            "position before it (the end of the prompt), so keep the logits of the answer's "
                            "length + 1 last positions"),
       Slip(_gd_descends_forget, "the forget term has a plus sign: that descends on the forget set (it learns it "
                                 "better); GA_Diff climbs it: loss = −CE(forget) + λ·CE(retain)"),
       Slip(_gd_weight_on_forget, "λ (retain_weight) scales the forget term: it weighs the retain term, "
                                  "loss = −CE(forget) + λ·CE(retain)"))
def check_ga_diff_loss(fn: Callable) -> None:
    """Chapter 04: ``fn(model, forget_batch, retain_batch, retain_weight)`` → ``{"loss": −CE_f + λ·CE_r,
    "forget_ce": CE_f, "retain_ce": CE_r}``, each CE the mean over the batch's scored answer tokens, from
    the model's logits aligned with the labels (:func:`mini_unlearn.models.train.answer_loss`)."""
    from ...methods.gradient import ga_diff_loss

    compare("ga_diff_loss", fn, ga_diff_loss, _gd_cases(), atol=1e-5, slips=check_ga_diff_loss.slips,
            adapt=_gd_as_numbers)
