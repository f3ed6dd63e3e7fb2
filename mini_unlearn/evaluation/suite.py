"""``evaluate``: every split × modality × task of a benchmark, in one call (chapter 03)."""
from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from ..bench import SPLITS
from ..bench.questions import Question
from .. import distributed, validate
from .clear import CLEAR_MAX_NEW_TOKENS, CLEAR_SPLITS, CLEAR_TASKS, evaluate_clear, is_clear
from .report import DETAIL_COLUMNS, Report
from .tasks import MAX_NEW_TOKENS, NORMALIZE, QUESTION_TASK, TASKS, predict, score


def _is_default(value, default: tuple[str, ...]) -> bool:
    """Whether ``value`` is MLLMU-Bench's whole list (what a caller who chose nothing gets)."""
    return not isinstance(value, str) and tuple(value) == tuple(default)


def _wants_clear(bench, splits, tasks) -> bool:
    """Whether to evaluate with CLEAR's metrics: on a CLEAR benchmark, unless the caller names a split or a task
    only MLLMU-Bench's evaluation has (``tasks=("cloze",)``, ``splits=("test",)``): then its questions are asked
    as on any benchmark."""
    if not is_clear(bench):
        return False
    named = [] if _is_default(splits, SPLITS) else list((splits,) if isinstance(splits, str) else splits)
    named += [] if _is_default(tasks, TASKS) else list((tasks,) if isinstance(tasks, str) else tasks)
    return not any(n in SPLITS + TASKS and n not in CLEAR_SPLITS + CLEAR_TASKS for n in named)


def likelihood_sentences(bench, questions: list[Question]) -> list[dict[str, str]] | None:
    """Each MCQ's options as answer sentences (the ``"sentence"`` likelihood form), or ``None`` when
    there is no benchmark or one of its facts has no sentence template (then: the ``"options"`` form)."""
    if bench is None:
        return None
    sentences = [bench.option_sentences(q) for q in questions]
    return None if any(s is None for s in sentences) else sentences


def evaluate_questions(vlm, questions: list[Question], split: str = "", tasks=TASKS, *, batch_size: int = 32,
                       max_new_tokens: int = MAX_NEW_TOKENS, normalize: str = "sum", bench=None,
                       bar=None) -> pd.DataFrame:
    """One row per question × task (the rows of ``Report.details``) for any list of questions.

    ``bench`` (the questions' benchmark) lets ``mcq_likelihood`` use the ``"sentence"`` form;
    without it the options are scored after the MCQ prompt (the ``"options"`` form).

    Under a multi-process launcher (``torchrun``, ``accelerate launch``) each process scores its share of
    every task's batches and the predictions are gathered (:func:`~.tasks.predict`): every process returns
    the whole frame, the one process's rows in the same order. Call it on every process, with the model whole
    on each.
    """
    rows = []
    for task in tasks:
        asked = [q for q in questions if q.task == QUESTION_TASK[task]]
        if bar is not None:
            bar.set_description(f"{split} {task}".strip())
        sentences = likelihood_sentences(bench, asked) if task == "mcq_likelihood" else None
        predictions = predict(vlm, task, asked, batch_size=batch_size, max_new_tokens=max_new_tokens,
                              normalize=normalize, sentences=sentences, bar=bar)
        for q, prediction in zip(asked, predictions):
            rows.append({"split": split, "modality": q.modality, "task": task, "question_id": q.id,
                         "profile_id": q.profile_id, "fact": q.fact, "rouge1": float("nan"),
                         **score(task, q, prediction)})
    frame = pd.DataFrame(rows, columns=list(DETAIL_COLUMNS))
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def evaluate(vlm, bench, ratio: float = 0.05, splits=SPLITS, tasks=TASKS, *, batch_size: int = 32,
             max_new_tokens: int | None = None, normalize: str = "sum", few_shot: int = 0,
             progress: bool = True, **clear_options) -> Report:
    """Ask ``vlm`` every question of the chosen splits; a :class:`Report` of what it still knows.

    Splits: ``"forget"``, ``"retain"``, ``"test"``, ``"utility"`` at this forget ``ratio``. Tasks:
    ``"mcq_letter"`` (MLLMU-Bench's generated letter), ``"mcq_likelihood"`` (the most likely option,
    each written into the fact's answer sentence; ``normalize="sum"`` or ``"mean"`` per token), ``"gen"`` (ROUGE-L F1) and ``"cloze"``. Greedy
    decoding up to ``max_new_tokens`` (default: MLLMU-Bench's 50; CLEAR's, :data:`~.clear.CLEAR_MAX_NEW_TOKENS`). Zero-shot: ``few_shot`` must stay 0 for now.

    On a CLEAR benchmark (one with ``clear_items``, :mod:`mini_unlearn.bench.clear`) this is
    :func:`~mini_unlearn.evaluation.clear.evaluate_clear`: CLEAR's splits and metrics, a
    :class:`~mini_unlearn.evaluation.clear.ClearReport`. There the default splits and tasks (MLLMU-Bench's)
    stand for CLEAR's, and ``clear_options`` (``reference``, ``variant``, ``seed``) go to ``evaluate_clear``;
    naming a split or task only MLLMU-Bench has (``"test"``, ``"cloze"``…) asks the benchmark's questions instead.

    Under a multi-process launcher the questions are shared out and the predictions gathered
    (:func:`evaluate_questions`): every process gets the one report a single process makes (rank 0 shows the
    progress bar). CLEAR's evaluation shares its batches out the same way (:func:`~.tasks.shared_batches`).
    """
    if _wants_clear(bench, splits, tasks):
        validate.positive_int(few_shot, "few_shot", allow_zero=True)
        if few_shot > 0:
            raise NotImplementedError(f"few_shot={few_shot}: CLEAR is evaluated zero-shot, as CLEAR does")
        return evaluate_clear(vlm, bench, ratio, splits=CLEAR_SPLITS if _is_default(splits, SPLITS) else splits,
                              tasks=CLEAR_TASKS if _is_default(tasks, TASKS) else tasks, batch_size=batch_size,
                              max_new_tokens=CLEAR_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
                              normalize=normalize, progress=progress, **clear_options)
    if clear_options:
        raise TypeError(f"evaluate() got options {sorted(clear_options)} that only CLEAR's evaluation takes; "
                        f"{type(bench).__name__} with splits={splits!r}, tasks={tasks!r} is not evaluated with it")
    if not hasattr(vlm, "model") or not hasattr(vlm, "processor"):
        raise TypeError(f"vlm must be a mini_unlearn VLM (a model and its processor); got {type(vlm).__name__}")
    splits = validate.names(splits, SPLITS, "split names")
    tasks = validate.names(tasks, TASKS, "task names",
                   hint=" (multiple choice is scored two ways: 'mcq_letter' and 'mcq_likelihood')")
    batch_size = validate.positive_int(batch_size, "batch_size")
    max_new_tokens = validate.positive_int(MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
                                           "max_new_tokens")
    validate.one_of(normalize, "normalize", NORMALIZE)
    validate.positive_int(few_shot, "few_shot", allow_zero=True)
    if few_shot > 0:
        raise NotImplementedError(
            f"few_shot={few_shot}: few-shot evaluation is not implemented yet; mini_unlearn evaluates zero-shot "
            "(few_shot=0), which is what small models need (MLLMU-Bench issue #2: with few-shot profiles "
            "the prompt grows long and answers degenerate)")

    chosen = {}
    for name in splits:
        split = bench.split(name, ratio)   # validates ratio
        if not split.questions:
            raise ValueError(f"split {name!r} at ratio={ratio} has no questions in {bench!r}; nothing to evaluate")
        chosen[name] = list(split.questions)

    total = sum(1 for questions in chosen.values() for task in tasks for q in questions
                if q.task == QUESTION_TASK[task])
    frames = []
    with tqdm(total=total, desc="evaluate", unit="q", disable=not progress or not distributed.is_main()) as bar:
        for name, questions in chosen.items():
            frames.append(evaluate_questions(vlm, questions, name, tasks, batch_size=batch_size,
                                             max_new_tokens=max_new_tokens, normalize=normalize, bench=bench,
                                             bar=bar))
    mcqs = [q for questions in chosen.values() for q in questions if q.task == "mcq"]
    form = "sentence" if likelihood_sentences(bench, mcqs) is not None else "options"
    settings = {"ratio": ratio, "few_shot": few_shot, "max_new_tokens": max_new_tokens, "normalize": normalize,
                "likelihood": form,
                "model": dict(getattr(vlm, "card", {}) or {})}
    return Report(pd.concat(frames, ignore_index=True), settings)
