"""CLEAR's own metrics (arXiv 2410.18057; code: github.com/somvy/multimodal_unlearning, ``mm/eval.py`` and
``mm/calculate_metrics.py``), named as CLEAR names them, and :func:`evaluate_clear` (chapter 12).

    report = mu.evaluate(vlm, clear_bench, ratio=0.05, reference=retain_only_vlm)   # a ClearReport
    report.score("forget", "image+text", "rougeL_recall"); report.model_utility

Every item of a CLEAR split is one question with one reference answer: a face image with a "describe the
image" question and its **caption** (modality ``"image+text"``), or a TOFU-style text **question and answer**
(``"text"``). Per item, CLEAR measures:

* **ROUGE-L recall** (``rougeL_recall``) of the greedy generation against the reference: the share of the
  reference's words the model gives back, in order (``rouge_score``, stemmed; recall, not F1);
* **probability** (``prob``) of the reference, per token: ``p̄ = exp(−mean token loss)``. On the forget and
  retain sets CLEAR reports ``p̄`` itself; on the others (real faces, real world, face recognition) it
  normalises it against the perturbed answers, ``p̄(a) / (p̄(a) + Σ p̄(a'))`` (its ``eval_log*`` tasks are
  the forget and retain ones; every other task is normalised);
* **truth ratio** (``truth_ratio``): ``TR = exp(mean perturbed loss − paraphrased loss)`` (per-token losses),
  reported on the forget sets as ``mean(min(TR, 1/TR))`` and on the others as ``mean(max(0, 1 − 1/TR))``.

CLEAR's **face recognition** tasks (``facerec_*``) ask each face for the person's name and score the true
name against the perturbed names the same three ways, on the forget and retain sets.

**Forget quality** is the p-value of the two-sample KS test between the forget truth ratios of the model
and of the retain-only ("gold") model, per modality here (CLEAR computes it on its forget captions; the
text row applies the same test to the questions by name, as TOFU does). **Model utility** is the harmonic
mean of every non-forget score of those metrics. MMUnlearner's name classification (``name_mcq``; its
``CLEAR_eval.py``) lists the true name among the perturbed names, at a seeded random position, and reads
the generated letter; ``name_mcq_likelihood`` picks the most likely name instead.

Where ours deviates from CLEAR's code, in short:

* generation stops at ``max_new_tokens`` = :data:`CLEAR_MAX_NEW_TOKENS` (128); CLEAR generates up to 300
  tokens. Our longest reference, a caption listing many features, is 102 tokens for the course's tokenizer
  (MMUnlearner's CLEAR evaluation stops at 50, which would cut it);
* a caption item is asked the "describe the image" request the benchmark gives it; CLEAR draws one of 9
  at random, unseeded, at every evaluation;
* a face is asked "What is the name of the person in the image?"
  (:data:`mini_unlearn.bench.clear.FACE_QUESTION`, MMUnlearner's question, which our real-faces set is
  trained with), where CLEAR completes "The name of the person on the image is ";
* the name MCQ lists its options as our MCQs do ("A: …", then the one-letter instruction);
* the loss covers the answer's tokens, not the chat template's closing ones;
* the truth ratio is per item by default; ``variant="released"`` reproduces ``calculate_metrics.py``,
  which averages the perturbed losses over the whole set first;
* in the generated form of CLEAR (:mod:`mini_unlearn.bench.clear`) the paraphrased and perturbed answers
  come from templates, not from an LLM as CLEAR's do.
"""
from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import hmean
from tqdm.auto import tqdm

from .. import distributed, validate
from ..bench.clear import CLEAR_SPLITS, FACE_QUESTION, ClearItem
from ..bench.images import ImageRef
from ..bench.questions import IMAGE_TEXT, MODALITIES, TEXT_ONLY, Question
from ..models import chat, question_prompt, target
from ..models.prompts import render
from .report import DETAIL_COLUMNS, Report
from .statistics import ks_test
from .tasks import (NORMALIZE, answer_log_likelihood, encode, evaluating, generate, shared_batches,
                    rouge_recall, with_positions)

# -- names ------------------------------------------------------------------------------------------
CLEAR_TASKS: tuple[str, ...] = ("rougeL_recall", "prob", "truth_ratio", "facerec_rougeL_recall", "facerec_prob",
                                "facerec_truth_ratio", "name_mcq", "name_mcq_likelihood")
CLEAR_METRIC: dict[str, str] = {
    "rougeL_recall": "rougeL_recall", "prob": "probability", "truth_ratio": "truth_ratio_score",
    "facerec_rougeL_recall": "rougeL_recall", "facerec_prob": "probability",
    "facerec_truth_ratio": "truth_ratio_score", "name_mcq": "accuracy", "name_mcq_likelihood": "accuracy",
    "forget_quality": "ks_pvalue", "model_utility": "harmonic_mean"}
# CLEAR's own metrics: the ones model utility averages (the name MCQ is MMUnlearner's, not CLEAR's)
UTILITY_TASKS: tuple[str, ...] = ("rougeL_recall", "prob", "truth_ratio", "facerec_rougeL_recall", "facerec_prob",
                                  "facerec_truth_ratio")
FORGET_SPLITS: tuple[str, ...] = ("forget",)                  # min(TR, 1/TR); every other split: max(0, 1 − 1/TR)
NORMALISED_SPLITS: tuple[str, ...] = ("real_faces", "real_world")   # p̄ normalised against the perturbed answers
FACEREC_SPLITS: tuple[str, ...] = ("forget", "retain")         # CLEAR's eval_forget_facerec / eval_retain_facerec
VARIANTS: tuple[str, ...] = ("paper", "released")
CLEAR_MAX_NEW_TOKENS = 128     # above our longest reference (102 tokens); CLEAR's own code generates up to 300
KINDS = {"caption": IMAGE_TEXT, "qa": TEXT_ONLY}               # ClearItem.kind -> modality
ALL = "all"                                                     # split and modality of the model-utility row
MCQ_LETTERS = tuple(chr(ord("A") + i) for i in range(26))
RAW_COLUMNS = ("raw",)   # details' extra column: the untransformed truth ratio, the unnormalised p̄


# -- the metrics: pure functions of numbers and strings ------------------------------------------------
def _losses(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one loss per item (a 1-D sequence); got shape {array.shape}")
    return array


def _perturbed(perturbed_losses, n: int) -> list[np.ndarray]:
    rows = [np.asarray(row, dtype=float).reshape(-1) for row in perturbed_losses]
    if len(rows) != n:
        raise ValueError(f"perturbed_losses must hold one sequence per item ({n}); got {len(rows)}")
    if any(row.size == 0 for row in rows):
        raise ValueError("perturbed_losses: every item needs at least one perturbed answer's loss")
    return rows


def answer_probability(gt_losses, perturbed_losses=None) -> np.ndarray:
    """Per item, CLEAR's "Prob.": the reference's per-token probability ``p̄ = exp(−loss)`` (``loss``: its mean
    token loss), or with ``perturbed_losses`` (one sequence of per-token losses per item) that probability
    normalised against the perturbed answers', ``p̄(a) / (p̄(a) + Σ p̄(a'))`` (``calculate_metrics.py``)."""
    gt_losses = _losses(gt_losses, "gt_losses")
    true = np.exp(-gt_losses)
    if perturbed_losses is None:
        return true
    false = np.array([np.exp(-row).sum() for row in _perturbed(perturbed_losses, len(gt_losses))])
    return true / (true + false)


def clear_truth_ratios(paraphrased_losses, perturbed_losses, variant: str = "paper") -> np.ndarray:
    """Per item, ``TR = exp(mean perturbed loss − paraphrased loss)`` (per-token losses): above 1 when the model
    prefers the right answer, near 1 when it cannot tell them apart.

    ``variant="paper"`` averages each item's own perturbed losses (TOFU's definition; CLEAR's ``eval.py`` also
    logs a ratio from each item's own perturbed answers, as its reciprocal: exp(paraphrased − perturbed)). ``"released"`` reproduces ``calculate_metrics.py``, which takes
    ``.mean()`` of the whole set's perturbed losses (no axis: one number for every item) before the ratio.
    """
    validate.one_of(variant, "variant", VARIANTS, hint="'paper': per item; 'released': CLEAR's calculate_metrics")
    paraphrased = _losses(paraphrased_losses, "paraphrased_losses")
    rows = _perturbed(perturbed_losses, len(paraphrased))
    if variant == "paper":
        perturbed = np.array([row.mean() for row in rows])
    else:
        perturbed = np.full(len(rows), np.concatenate(rows).mean() if rows else np.nan)
    return np.exp(perturbed - paraphrased)


def truth_ratio_scores(ratios, forget: bool) -> np.ndarray:
    """Each truth ratio as CLEAR reports it: on a forget set ``min(TR, 1/TR)`` (1 when the right and the wrong
    answers are equally likely: the goal), on any other set ``max(0, 1 − 1/TR)`` (near 1 when the wrong
    answers are far less likely than the right one; 0 once they are likelier)."""
    ratios = np.asarray(ratios, dtype=float)
    if not isinstance(forget, (bool, np.bool_)):
        raise TypeError(f"forget must be True (a forget set) or False (any other set); got {forget!r}")
    if np.any(ratios <= 0) or np.any(np.isnan(ratios)):
        raise ValueError("ratios must be positive numbers (a truth ratio is exp of a loss difference)")
    if forget:
        return np.minimum(ratios, 1 / ratios)
    return np.maximum(0.0, 1 - 1 / ratios)


def truth_ratio_score(ratios, forget: bool) -> float:
    """CLEAR's reported "Truth Ratio" of a set: the mean of :func:`truth_ratio_scores` (exercise 12.3)."""
    scores = truth_ratio_scores(ratios, forget)
    if not scores.size:
        raise ValueError("ratios is empty: no truth ratio to report")
    return float(scores.mean())


def clear_forget_quality(ratios, reference_ratios) -> float:
    """CLEAR's (and TOFU's) forget quality: the KS-test p-value between the forget truth ratios of the model
    and of the retain-only model. High (up to 1) when the two distributions cannot be told apart."""
    return ks_test(ratios, reference_ratios)[1]


def model_utility(scores) -> float:
    """CLEAR's model utility: the harmonic mean of the non-forget scores (``scipy.stats.hmean``: 0 as soon as
    one score is 0, which is the point: a model that lost one ability has no utility to average away)."""
    scores = np.asarray([float(s) for s in scores], dtype=float)
    if not scores.size or np.any(np.isnan(scores)) or np.any(scores < 0):
        raise ValueError(f"model_utility needs non-negative scores, at least one; got {scores.tolist()}")
    return float(hmean(scores))


def name_options(name: str, perturbed_names: Sequence[str], key: str, seed: int = 0) -> tuple[tuple[str, ...], str]:
    """The name MCQ's options and the correct letter: the true ``name`` inserted among ``perturbed_names`` (their
    order kept) at a position drawn from ``seed`` and ``key`` (the item's identity), as MMUnlearner's
    ``CLEAR_eval.py`` inserts it (``random.randint``). MIP-Editor's CLEAR MCQ always puts the right caption
    last (option F); a model that learned "the answer is the last option" would pass it. Here each item's
    position is drawn on its own, so it does not depend on which other items are evaluated."""
    validate.seed(seed)
    perturbed = list(perturbed_names)
    if not perturbed:
        raise ValueError("perturbed_names is empty: the name MCQ needs at least one wrong name")
    if name in perturbed:
        raise ValueError(f"the true name {name!r} is also among perturbed_names; the MCQ would have two right options")
    if len(perturbed) + 1 > len(MCQ_LETTERS):
        raise ValueError(f"at most {len(MCQ_LETTERS) - 1} perturbed names (letters A–Z); got {len(perturbed)}")
    position = random.Random(f"clear-name-mcq/{seed}/{key}").randint(0, len(perturbed))
    perturbed.insert(position, name)
    return tuple(perturbed), MCQ_LETTERS[position]


def mcq_choice(text: str, n_options: int) -> str | None:
    """The letter a generated answer gives, as MMUnlearner reads it: the first letter or digit once everything
    else is removed, upper-cased, if it names one of the ``n_options`` options (else ``None``)."""
    validate.positive_int(n_options, "n_options")
    first = re.sub(r"[^A-Za-z0-9]", "", text)[:1].upper()
    return first if first in MCQ_LETTERS[:n_options] else None


# -- the model plumbing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ask:
    """One prompt (with its image, if any) and one answer to score or to generate after it."""
    prompt: str
    answer: str = ""
    image: ImageRef | None = None


def generations(vlm, asks: list[Ask], *, batch_size: int = 32, max_new_tokens: int = CLEAR_MAX_NEW_TOKENS,
                bar=None) -> list[str]:
    """The greedy answer to each prompt, stripped (chapter 03's ``generate``, one modality per batch). Under a
    launcher the processes share the batches out (:func:`shared_batches`)."""
    def one_batch(_, chunk):
        texts = [text.strip() for text in generate(vlm, encode(vlm, [a.prompt for a in chunk], chunk), max_new_tokens)]
        if bar is not None:
            bar.update(len(chunk))
        return texts

    answers = [""] * len(asks)
    with evaluating(vlm.model):
        for positions, texts in shared_batches(vlm, asks, batch_size, one_batch):
            for i, text in zip(positions, texts):
                answers[i] = text
    return answers


def answer_losses(vlm, asks: list[Ask], *, batch_size: int = 32, bar=None) -> tuple[np.ndarray, np.ndarray]:
    """``(log p(answer | prompt), number of answer tokens)`` per ask: the answer's tokens as the model would say
    them after the prompt (``target``), scored in one forward pass per batch with chapter 03's
    :func:`~mini_unlearn.evaluation.tasks.answer_log_likelihood`. CLEAR's per-token loss is
    ``−log p / n``. (CLEAR's labels also cover the chat template's closing tokens; ours stop at the answer.)"""
    def one_batch(_, chunk):
        rows = [render(vlm.processor, a.prompt, target(a.answer), closed=False) for a in chunk]
        prompt_ids = vlm.tokenizer([p for p, _ in rows], add_special_tokens=True)["input_ids"]
        full_ids = vlm.tokenizer([p + a for p, a in rows], add_special_tokens=True)["input_ids"]
        if any(f[:len(p)] != p for p, f in zip(prompt_ids, full_ids)):
            raise ValueError("the tokenizer merges the end of the prompt with the start of the answer, "
                             "so the answer's tokens cannot be told apart from the prompt's")
        n = torch.tensor([len(f) - len(p) for p, f in zip(prompt_ids, full_ids)], device=vlm.device)
        if int(n.min()) < 1:
            raise ValueError("an answer to score is empty; every CLEAR answer needs at least one token")
        batch = encode(vlm, [p + a for p, a in rows], chunk)
        keep = int(n.max()) + 1            # left padding: every answer sits at the end of its row
        logits = vlm.model(**with_positions(vlm.model, batch), logits_to_keep=keep).logits
        scores = answer_log_likelihood(logits, batch["input_ids"][:, -keep:], n)
        if bar is not None:
            bar.update(len(chunk))
        return scores.double().tolist(), n.tolist()

    total, count = np.zeros(len(asks)), np.zeros(len(asks), dtype=int)
    with evaluating(vlm.model):
        for positions, (values, tokens) in shared_batches(vlm, asks, batch_size, one_batch):
            total[positions], count[positions] = values, tokens
    return total, count


# -- the report -----------------------------------------------------------------------------------------
def _clear_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """CLEAR's splits, then the modalities, then the tasks in :data:`CLEAR_TASKS` order; other names after."""
    frame = frame.copy()
    tasks = CLEAR_TASKS + ("forget_quality", "model_utility")
    for column, order in (("split", CLEAR_SPLITS + (ALL,)), ("modality", MODALITIES + (ALL,)), ("task", tasks)):
        values = [str(v) for v in frame[column]]
        order = list(order) + [v for v in dict.fromkeys(values) if v not in order]
        frame[column] = pd.Categorical(values, categories=order, ordered=True)
    return frame


@dataclass
class ClearReport(Report):
    """CLEAR's metrics of one model: ``details`` has one row per item × task (``score``: the item's value as
    CLEAR averages it; ``raw``: the untransformed truth ratio, the unnormalised ``p̄``), ``forget_quality`` one
    row per modality when a reference model was given. :meth:`to_frame` adds the forget-quality and the
    model-utility rows to the per split × modality × task means, so a results folder records all of it."""

    METRICS = CLEAR_METRIC
    KIND = "CLEAR report"

    forget_quality: pd.DataFrame | None = None   # modality, ks_statistic, forget_quality, n, reference_n

    def __post_init__(self):
        super().__post_init__()
        self.details = _clear_ordered(self.details)

    def against(self, reference: ClearReport) -> ClearReport:
        """This report with its forget quality against ``reference``, the retain-only model's report at the same
        ratio. ``gold.against(gold)`` scores the retain-only model as its own reference: 1 in each modality (the
        same truth ratios), as a board's anchor row."""
        if not isinstance(reference, ClearReport):
            raise TypeError(f"reference must be a ClearReport (the retain-only model's, from mu.evaluate); "
                            f"got {type(reference).__name__}")
        if reference.settings.get("ratio") != self.settings.get("ratio"):
            raise ValueError(f"reference: a ClearReport at ratio={reference.settings.get('ratio')}, not "
                             f"ratio={self.settings.get('ratio')}")
        return dataclasses.replace(self, forget_quality=forget_quality_frame(self, reference))

    def _means(self) -> pd.DataFrame:
        groups = self.details.groupby(["split", "modality", "task"], observed=True, sort=True)
        main = groups.agg(score=("score", "mean"), n=("score", "size")).reset_index()
        main.insert(3, "metric", main["task"].astype(str).map(CLEAR_METRIC))
        return main

    @property
    def model_utility(self) -> float:
        """The harmonic mean of every non-forget split × modality score of CLEAR's own metrics
        (:data:`UTILITY_TASKS`), as ``calculate_metrics.py`` averages every score whose name lacks "Forget"."""
        main = self._means()
        kept = main[(main["split"].astype(str) != "forget") & main["task"].astype(str).isin(UTILITY_TASKS)]
        return model_utility(kept["score"]) if len(kept) else float("nan")

    def to_frame(self) -> pd.DataFrame:
        """A tidy table: one row per split × modality × task × metric (ROUGE-1 recall beside ROUGE-L recall, as
        CLEAR logs it), then forget quality per modality and model utility (split and modality ``"all"``)."""
        frames = [self._means()]
        for task in ("rougeL_recall", "facerec_rougeL_recall"):
            rows = self.details[self.details["task"] == task]
            if len(rows):
                extra = rows.groupby(["split", "modality", "task"], observed=True, sort=True)
                extra = extra.agg(score=("rouge1", "mean"), n=("rouge1", "size")).reset_index()
                extra.insert(3, "metric", "rouge1_recall")
                frames.append(extra)
        if self.forget_quality is not None and len(self.forget_quality):
            fq = self.forget_quality
            frames.append(pd.DataFrame({"split": "forget", "modality": fq["modality"], "task": "forget_quality",
                                        "metric": CLEAR_METRIC["forget_quality"], "score": fq["forget_quality"],
                                        "n": fq["n"]}))
        utility = self.model_utility
        if not np.isnan(utility):
            main = frames[0]
            n = int(((main["split"].astype(str) != "forget") & main["task"].astype(str).isin(UTILITY_TASKS)).sum())
            frames.append(pd.DataFrame([{"split": ALL, "modality": ALL, "task": "model_utility",
                                         "metric": CLEAR_METRIC["model_utility"], "score": utility, "n": n}]))
        frame = pd.concat([f.astype({"split": str, "modality": str, "task": str}) for f in frames], ignore_index=True)
        frame = _clear_ordered(frame).sort_values(["split", "modality", "task", "metric"],
                                                  ascending=[True, True, True, False])
        return frame.reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        """Split × modality rows, one column per task (its CLEAR metric); forget quality and model utility are
        in :meth:`to_frame` and :attr:`model_utility`."""
        main = self._means()
        return main.pivot(index=["split", "modality"], columns="task", values="score").rename_axis(columns=None)

    def __repr__(self) -> str:
        if self.details.empty:
            return "ClearReport(no items)"
        table = self.table()
        counts = self._means().groupby(["split", "modality"], observed=True)["n"]
        table["n"] = counts.agg(lambda n: str(n.iloc[0]) if n.nunique() == 1 else "/".join(map(str, n)))
        about = ", ".join(f"{k}={self.settings[k]}" for k in ("ratio", "variant") if k in self.settings)
        lines = [f"ClearReport({about}; {len(self.details)} scores; n = items per task)",
                 table.to_string(float_format=lambda x: f"{x:.3f}", na_rep="-")]
        if self.forget_quality is not None and len(self.forget_quality):
            cells = ", ".join(f"{m} {p:.3g}" for m, p in zip(self.forget_quality["modality"],
                                                             self.forget_quality["forget_quality"]))
            lines.append(f"forget quality (KS p-value against the reference): {cells}")
        utility = self.model_utility
        if not np.isnan(utility):
            lines.append(f"model utility (harmonic mean of the non-forget scores): {utility:.3f}")
        return "\n".join(lines)


# -- the evaluation -------------------------------------------------------------------------------------
def is_clear(bench) -> bool:
    """Whether ``bench`` is a CLEAR benchmark (it answers ``clear_items``), for ``mu.evaluate``'s dispatch."""
    return callable(getattr(bench, "clear_items", None))


def _modality(item: ClearItem) -> str:
    if item.kind not in KINDS:
        raise ValueError(f"a CLEAR item of kind {item.kind!r}; expected one of {tuple(KINDS)}")
    if (item.image is not None) != (item.kind == "caption"):
        raise ValueError(f"a CLEAR {item.kind!r} item {'without' if item.image is None else 'with'} an image; "
                         "caption items carry their image, qa items none")
    return KINDS[item.kind]


def _identity(item: ClearItem) -> str:
    """What names an item wherever it is evaluated (at any ratio, in any split): its person, name and answer."""
    return f"{item.profile_id}/{item.name}/{item.answer}"


def _has_names(item: ClearItem) -> bool:
    return item.kind == "caption" and bool(item.name) and bool(item.perturbed_names)


@dataclass
class _Plan:
    """Everything one split needs from the model, gathered first so that it runs in a few batches."""
    generate: list[Ask] = field(default_factory=list)
    score: list[Ask] = field(default_factory=list)
    index: dict = field(default_factory=dict)

    def loss(self, ask: Ask) -> int:
        key = (str(ask.prompt), ask.answer, id(ask.image))
        if key not in self.index:
            self.index[key] = len(self.score)
            self.score.append(ask)
        return self.index[key]


def _row(split, modality, task, qid, item, answer, prediction, score, *, correct=None, rouge1=float("nan"),
         raw=float("nan")) -> dict:
    return {"split": split, "modality": modality, "task": task, "question_id": qid, "profile_id": item.profile_id,
            "fact": item.kind, "answer": answer, "prediction": prediction, "correct": correct, "score": float(score),
            "rouge1": float(rouge1), "raw": float(raw)}


def _details(vlm, chosen: dict[str, list[ClearItem]], tasks: tuple[str, ...], *, batch_size: int, max_new_tokens: int,
             normalize: str, variant: str, seed: int, progress: bool) -> pd.DataFrame:
    """One row per item × task of ``chosen`` (split → items): generate, score every answer, then the metrics."""
    plan, jobs = _Plan(), []
    want = set(tasks)
    for split, items in chosen.items():
        for i, item in enumerate(items):
            modality, qid = _modality(item), f"{split}/{i}"
            prompt = chat(item.question, with_image=item.image is not None)
            job = {"split": split, "modality": modality, "qid": qid, "item": item}
            if "rougeL_recall" in want:
                job["gen"] = len(plan.generate)
                plan.generate.append(Ask(prompt, item.answer, item.image))
            if want & {"prob", "truth_ratio"}:
                job["gt"] = plan.loss(Ask(prompt, item.answer, item.image))
                if item.perturbed:
                    job["para"] = plan.loss(Ask(prompt, item.paraphrased or item.answer, item.image))
                    job["pert"] = [plan.loss(Ask(prompt, p, item.image)) for p in item.perturbed]
            if _has_names(item):
                face = chat(FACE_QUESTION, with_image=True)
                if "facerec_rougeL_recall" in want and split in FACEREC_SPLITS:
                    job["face_gen"] = len(plan.generate)
                    plan.generate.append(Ask(face, item.name, item.image))
                if want & {"facerec_prob", "facerec_truth_ratio", "name_mcq_likelihood"}:
                    job["name"] = plan.loss(Ask(face, item.name, item.image))
                    job["names"] = [plan.loss(Ask(face, n, item.image)) for n in item.perturbed_names]
                options, letter = name_options(item.name, item.perturbed_names, _identity(item), seed)
                job["options"], job["letter"] = options, letter
                if "name_mcq" in want:
                    asked = Question(qid, item.profile_id or "", "mcq", IMAGE_TEXT, "name", FACE_QUESTION, item.name,
                                     options=dict(zip(MCQ_LETTERS, options)), correct=letter, image=item.image)
                    job["mcq"] = len(plan.generate)
                    plan.generate.append(Ask(question_prompt(asked), letter, item.image))
            jobs.append(job)

    with tqdm(total=len(plan.generate) + len(plan.score), desc="evaluate CLEAR", unit="ask",
              disable=not progress or not distributed.is_main()) as bar:
        texts = generations(vlm, plan.generate, batch_size=batch_size, max_new_tokens=max_new_tokens, bar=bar)
        total, count = answer_losses(vlm, plan.score, batch_size=batch_size, bar=bar)
    loss = -total / np.maximum(count, 1)     # CLEAR's per-token loss

    rows, ratio_groups = [], {}
    for job in jobs:
        split, modality, qid, item = job["split"], job["modality"], job["qid"], job["item"]
        if "gen" in job:
            scores = rouge_recall(item.answer, texts[job["gen"]])
            rows.append(_row(split, modality, "rougeL_recall", qid, item, item.answer, texts[job["gen"]],
                             scores["rougeL"], rouge1=scores["rouge1"]))
        if "gt" in job:
            plain = answer_probability([loss[job["gt"]]])[0]
            if split in NORMALISED_SPLITS:
                if "pert" in job and "prob" in want:
                    shown = answer_probability([loss[job["gt"]]], [loss[job["pert"]]])[0]
                    rows.append(_row(split, modality, "prob", qid, item, item.answer, None, shown, raw=plain))
            elif "prob" in want:
                rows.append(_row(split, modality, "prob", qid, item, item.answer, None, plain, raw=plain))
            if "pert" in job and "truth_ratio" in want:
                ratio_groups.setdefault((split, modality, "truth_ratio"), []).append(
                    (job, item.answer, loss[job["para"]], loss[job["pert"]]))
        if "face_gen" in job:
            scores = rouge_recall(item.name, texts[job["face_gen"]])
            rows.append(_row(split, modality, "facerec_rougeL_recall", qid, item, item.name, texts[job["face_gen"]],
                             scores["rougeL"], rouge1=scores["rouge1"]))
        if "name" in job:
            name_loss, wrong = loss[job["name"]], loss[job["names"]]
            if "facerec_prob" in want and split in FACEREC_SPLITS:
                shown = answer_probability([name_loss], [wrong])[0]
                rows.append(_row(split, modality, "facerec_prob", qid, item, item.name, None, shown,
                                 raw=np.exp(-name_loss)))
            if "facerec_truth_ratio" in want and split in FACEREC_SPLITS:   # CLEAR: the name is its own paraphrase
                ratio_groups.setdefault((split, modality, "facerec_truth_ratio"), []).append(
                    (job, item.name, name_loss, wrong))
            if "name_mcq_likelihood" in want:
                by_name = {item.name: (-name_loss if normalize == "mean" else total[job["name"]])}
                for n, k in zip(item.perturbed_names, job["names"]):
                    by_name[n] = -loss[k] if normalize == "mean" else total[k]
                chosen_letter = MCQ_LETTERS[int(np.argmax([by_name[o] for o in job["options"]]))]
                correct = chosen_letter == job["letter"]
                rows.append(_row(split, modality, "name_mcq_likelihood", qid, item, job["letter"], chosen_letter,
                                 float(correct), correct=correct))
        if "mcq" in job:
            chosen_letter = mcq_choice(texts[job["mcq"]], len(job["options"]))
            correct = chosen_letter == job["letter"]
            rows.append(_row(split, modality, "name_mcq", qid, item, job["letter"], chosen_letter, float(correct),
                             correct=correct))
    for (split, modality, task), group in ratio_groups.items():
        ratios = clear_truth_ratios([g[2] for g in group], [g[3] for g in group], variant)
        scores = truth_ratio_scores(ratios, split in FORGET_SPLITS)
        for (job, answer, _, _), ratio, shown in zip(group, ratios, scores):
            rows.append(_row(split, modality, task, job["qid"], job["item"], answer, None, shown, raw=ratio))
    frame = pd.DataFrame(rows, columns=list(DETAIL_COLUMNS) + list(RAW_COLUMNS))
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def forget_ratios(report: ClearReport) -> dict[str, pd.Series]:
    """Per modality: the forget split's truth ratios (untransformed, indexed by item) in ``report``."""
    rows = report.details[(report.details["split"] == "forget") & (report.details["task"] == "truth_ratio")]
    return {str(m): group.set_index("question_id")["raw"] for m, group in rows.groupby("modality", observed=True)}


def forget_quality_frame(report: ClearReport, reference: ClearReport) -> pd.DataFrame:
    """Per modality: the KS statistic and p-value (forget quality) between ``report``'s and ``reference``'s forget
    truth ratios, with each side's count. Both reports must cover the same forget items."""
    mine, theirs = forget_ratios(report), forget_ratios(reference)
    if not mine:
        raise ValueError("report has no forget truth ratios; evaluate the 'forget' split with the 'truth_ratio' task")
    rows = []
    for modality, ratios in mine.items():
        other = theirs.get(modality)
        if other is None or set(other.index) != set(ratios.index):
            raise ValueError(f"reference: its forget {modality} truth ratios are not on the same items as the "
                             "report's; evaluate both at the same ratio on the same benchmark")
        statistic, p_value = ks_test(ratios.to_numpy(), other.to_numpy())
        rows.append({"modality": modality, "ks_statistic": statistic, "forget_quality": p_value, "n": len(ratios),
                     "reference_n": len(other)})
    return pd.DataFrame(rows)


def evaluate_clear(vlm, bench, ratio: float = 0.05, *, reference=None, splits=CLEAR_SPLITS, tasks=CLEAR_TASKS,
                   batch_size: int = 32, max_new_tokens: int = CLEAR_MAX_NEW_TOKENS, normalize: str = "sum",
                   variant: str = "paper", seed: int = 0, progress: bool = True) -> ClearReport:
    """CLEAR's metrics of ``vlm`` on a CLEAR benchmark (:class:`mini_unlearn.bench.clear.ClearBenchmark`) at this
    forget ``ratio``: a :class:`ClearReport`, per split × modality × task (``mu.evaluate`` calls this).

    ``splits``: some of ``("forget", "retain", "real_faces", "real_world")``. ``tasks``: some of
    :data:`CLEAR_TASKS`. ``reference``: the retain-only ("gold") model, or its ClearReport at the same ratio,
    for forget quality (the forget split's truth ratios are compared per modality). ``normalize``: how
    ``name_mcq_likelihood`` compares names, ``"sum"`` (the name's total log-likelihood) or ``"mean"`` per
    token. ``variant``: the truth ratio per item (``"paper"``) or as CLEAR's ``calculate_metrics.py`` computes it
    (``"released"``). ``seed``: where the name MCQ puts the true name. Deviations from CLEAR: see the module.

    An item without perturbed answers (a CLEAR file's picture outside the ``_perturbed`` configs) gets no
    ``prob`` row on the normalised sets and no ``truth_ratio`` row; one without a paraphrase uses its answer,
    as CLEAR does on its real sets. Face recognition runs on the forget and retain pictures that carry a name
    and perturbed names, the name MCQ on every such picture (real faces included, as MMUnlearner's
    ``eval_classification_real``).
    """
    if not hasattr(vlm, "model") or not hasattr(vlm, "processor"):
        raise TypeError(f"vlm must be a mini_unlearn VLM (a model and its processor); got {type(vlm).__name__}")
    if not is_clear(bench):
        raise TypeError(f"bench must be a CLEAR benchmark (mini_unlearn.bench.clear); got {type(bench).__name__}")
    splits = validate.names(splits, CLEAR_SPLITS, "split names")
    tasks = validate.names(tasks, CLEAR_TASKS, "task names")
    batch_size = validate.positive_int(batch_size, "batch_size")
    max_new_tokens = validate.positive_int(max_new_tokens, "max_new_tokens")
    validate.one_of(normalize, "normalize", NORMALIZE)
    validate.one_of(variant, "variant", VARIANTS, hint="'paper': per item; 'released': CLEAR's calculate_metrics")
    validate.seed(seed)
    if reference is not None and not isinstance(reference, ClearReport) and not (
            hasattr(reference, "model") and hasattr(reference, "processor")):
        raise TypeError("reference must be the retain-only VLM or its ClearReport (for forget quality); "
                        f"got {type(reference).__name__}")
    if reference is not None and ("forget" not in splits or "truth_ratio" not in tasks):
        raise ValueError("reference is given for forget quality, which needs the 'forget' split and the "
                         f"'truth_ratio' task; got splits={splits}, tasks={tasks}")
    if isinstance(reference, ClearReport) and reference.settings.get("ratio") != ratio:
        raise ValueError(f"reference: a ClearReport at ratio={reference.settings.get('ratio')}, not ratio={ratio}")
    chosen = {}
    for name in splits:
        items = list(bench.clear_items(name, ratio))   # validates ratio
        if not items:
            raise ValueError(f"split {name!r} at ratio={ratio} has no items in {bench!r}; nothing to evaluate")
        for item in items:
            _modality(item)
        chosen[name] = items

    options = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "normalize": normalize,
               "variant": variant, "seed": seed}
    settings = {"ratio": ratio, **{k: v for k, v in options.items() if k != "batch_size"}, "benchmark": "clear",
                "model": dict(getattr(vlm, "card", {}) or {})}
    report = ClearReport(_details(vlm, chosen, tasks, progress=progress, **options), settings)
    if reference is not None:
        if not isinstance(reference, ClearReport):
            details = _details(reference, {"forget": chosen["forget"]}, ("truth_ratio",), progress=progress, **options)
            reference = ClearReport(details, {**settings, "model": dict(getattr(reference, "card", {}) or {})})
        report.forget_quality = forget_quality_frame(report, reference)
    return report


__all__ = ["Ask", "CLEAR_MAX_NEW_TOKENS", "CLEAR_METRIC", "CLEAR_TASKS", "ClearReport", "UTILITY_TASKS",
           "VARIANTS", "answer_losses", "answer_probability", "clear_forget_quality", "clear_truth_ratios",
           "evaluate_clear", "forget_quality_frame", "forget_ratios", "generations", "is_clear", "ks_test",
           "mcq_choice", "model_utility", "name_options", "rouge_recall", "truth_ratio_score", "truth_ratio_scores"]
