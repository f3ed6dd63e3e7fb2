"""Membership inference: can the answers' likelihoods still tell the forget people from people the model
never saw? (chapter 09)

Each attack gives every training pair a *membership score*, higher meaning "more likely seen in
training"; the area under the ROC curve (scikit-learn) of forget people's pairs against never-seen
people's pairs measures what is left. AUC ≈ 1: the model still treats the forget people as familiar;
≈ 0.5: it cannot tell them from strangers (what a model that never saw them gives). The scores, as open-unlearning computes them for MUSE and TOFU, from the answer
tokens' log-probabilities ``log p(x_t)``:

* ``loss`` — the mean ``log p(x_t)`` (Yeom et al.: minus the loss);
* ``zlib`` — the loss over the answer's zlib-compressed length in bytes (Carlini et al.: a text that
  is simply easy, short or repetitive, gets less credit), negated so higher = member;
* ``min_k`` — the mean of the lowest ``int(k · n)`` (at least one) of the ``n`` values ``log p(x_t)``
  (Min-K%, Shi et al.): a seen text has few very unlikely tokens. As in open-unlearning, the answer's last
  token (the end-of-answer ``</s>``) is left out of Min-K% and Min-K%++; the loss and zlib attacks keep it;
* ``min_k++`` — Min-K% of ``(log p(x_t) − μ_t) / σ_t``, with ``μ_t, σ_t`` the mean and standard deviation
  of ``log p(z)`` under the model's own next-token distribution at position t (Min-K%++, Zhang et al.);
  the variance ``σ_t²`` is floored at ``1e-6`` (open-unlearning's guard for a near one-hot row);
* ``reference`` — the mean ``log p(x_t)`` minus a reference model's on the same tokens (Carlini et al.;
  MUSE's PrivLeak compares with the retain-only model).

Scores here are "higher = member"; open-unlearning's are "higher = non-member" with the labels swapped,
so the AUCs are the same numbers.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from .. import distributed, validate
from ..evaluation.tasks import evaluating
from ..models.train import answer_logits
from ..models.train_data import canonical_batch, training_examples

MIA_ATTACKS: tuple[str, ...] = ("loss", "zlib", "min_k", "min_k++", "reference")
K = 0.2          # Min-K%: the lowest 20 % of the tokens (the Min-K% paper's default)
VARIANCE_FLOOR = 1e-6   # Min-K%++: σ_t² below this is raised to it (open-unlearning's min_k_plus_plus.py)


@dataclass(frozen=True)
class TokenStats:
    """One answer's tokens: ``log p(x_t)``, and the mean ``μ_t`` and std ``σ_t`` of ``log p`` over the vocabulary."""

    log_probs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    text: str


def require_k(k) -> float:
    if not validate.is_number(k) or not 0 < k <= 1:
        raise ValueError(f"k must be a fraction of the tokens in (0, 1]; got {k!r}")
    return float(k)


def lowest_mean(values: np.ndarray, k: float) -> float:
    """The mean of the lowest ``int(k · n)`` values, at least one (the Min-K% paper's and open-unlearning's
    count: ``k · n`` rounded down)."""
    count = max(1, int(require_k(k) * len(values)))
    return float(np.sort(values)[:count].mean())


def zlib_bytes(text: str) -> int:
    """The length in bytes of the text compressed by zlib: a cheap estimate of its information content."""
    return len(zlib.compress(text.encode("utf-8")))


def membership_scores(stats: TokenStats, k: float = K, reference: TokenStats | None = None) -> dict[str, float]:
    """Every attack's score of one answer (higher = more likely a member); ``reference`` adds the reference attack.

    Min-K% and Min-K%++ leave out the last scored token (the end of the answer), as open-unlearning does."""
    if len(stats.log_probs) < 2:
        raise ValueError("an answer needs at least two scored tokens: Min-K% leaves out the last one (the end "
                         f"of the answer) and scores the rest; got {len(stats.log_probs)}")
    loss = -float(stats.log_probs.mean())
    sigma = np.sqrt(np.maximum(stats.sigma ** 2, VARIANCE_FLOOR))
    normalised = (stats.log_probs - stats.mu) / sigma
    scores = {"loss": -loss, "zlib": -loss / zlib_bytes(stats.text), "min_k": lowest_mean(stats.log_probs[:-1], k),
              "min_k++": lowest_mean(normalised[:-1], k)}
    if reference is not None:
        scores["reference"] = float(stats.log_probs.mean() - reference.log_probs.mean())
    return scores


def name_mask(tokenizer, token_ids: list[int], name: str) -> np.ndarray:
    """True for each token that does **not** overlap ``name`` in the text the tokens decode to."""
    pieces = [tokenizer.decode([i]) for i in token_ids]
    text = "".join(pieces)
    keep = np.ones(len(pieces), dtype=bool)
    start = text.find(name)
    while start != -1 and name:
        end, position = start + len(name), 0
        for t, piece in enumerate(pieces):
            if position < end and position + len(piece) > start:
                keep[t] = False
            position += len(piece)
        start = text.find(name, end)
    return keep


def token_stats(vlm, examples, batch_size: int = 16, names: dict[str, str] | None = None) -> list[TokenStats]:
    """The answer tokens' statistics of each example (canonical portraits, teacher-forced).

    ``names`` (profile id → name): leave out the tokens of the person's name (see :func:`mia_scores`).

    Under a multi-process launcher, with the model whole on every process, the batches are shared out
    (:func:`~mini_unlearn.distributed.split_map`) and every process gets every example's statistics: call it
    on every process."""
    examples = list(examples)
    chunks = [examples[start:start + batch_size] for start in range(0, len(examples), batch_size)]
    with evaluating(vlm.model) as model:
        found = distributed.split_map(lambda chunk: _chunk_stats(vlm, model, chunk, names), chunks,
                                      split=distributed.holds_whole(vlm.model))
    return [stats for chunk in found for stats in chunk]


def _chunk_stats(vlm, model, chunk, names: dict[str, str] | None) -> list[TokenStats]:
    """:func:`token_stats` of one batch of examples (on the CPU)."""
    batch = canonical_batch(vlm.processor, chunk, random.Random(0))
    batch = {name: value.to(vlm.device) for name, value in batch.items()}
    logits, labels = answer_logits(model, batch)
    log_p = torch.log_softmax(logits.float(), dim=-1)
    picked = log_p.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    p = log_p.exp()
    mu = (p * log_p).sum(-1)
    sigma = ((p * log_p ** 2).sum(-1) - mu ** 2).clamp(min=0).sqrt()
    out = []
    for row, example in enumerate(chunk):
        scored = (labels[row] != -100).cpu()
        text = example.draw(random.Random(0))[1].text
        name = (names or {}).get(example.profile_id)
        if name:
            ids = labels[row][scored].tolist()
            scored[scored.clone()] = torch.from_numpy(name_mask(vlm.tokenizer, ids, name))
            text = text.replace(name, "")
        out.append(TokenStats(picked[row].cpu()[scored].numpy(), mu[row].cpu()[scored].numpy(),
                              sigma[row].cpu()[scored].numpy(), text))
    return out


def require_reference(vlm, reference) -> None:
    """A clear error unless ``reference`` reads the same tokens as ``vlm`` (same architecture and vocabulary)."""
    if type(reference.model) is not type(vlm.model):
        raise ValueError(f"reference: expected a model of the same architecture as the attacked one "
                         f"({type(vlm.model).__name__}); got {type(reference.model).__name__}")
    if reference.tokenizer.get_vocab() != vlm.tokenizer.get_vocab():
        raise ValueError("reference: its tokenizer differs from the attacked model's, so the two cannot score the "
                         "same tokens; use a reference trained with the same tokenizer (e.g. the retain-only model)")


def mia_scores(vlm, examples, *, k: float = K, reference=None, batch_size: int = 16,
               names: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per example (``profile_id``, ``modality``) with every attack's membership score.

    ``names`` (profile id → name) leaves each person's name out of the scored tokens and of the zlib text.
    Why: the course tokenizer was trained on the training people's text, so their names are a few merged
    tokens while a holdout stranger's name splits into many rare pieces; scored, the name alone would tell
    the two groups apart in any model, even one that never saw either (chapter 09 measures it).

    Under a multi-process launcher call it on every process: each runs its share of the batches
    (:func:`token_stats`), and every process gets the whole frame."""
    examples = list(examples)
    if not examples:
        raise ValueError("examples is empty: nothing to score")
    require_k(k)
    if reference is not None:
        require_reference(vlm, reference)
    stats = token_stats(vlm, examples, batch_size, names)
    ref_stats = token_stats(reference, examples, batch_size, names) if reference is not None else [None] * len(stats)
    return pd.DataFrame([{"profile_id": e.profile_id, "modality": e.modality, **membership_scores(s, k, r)}
                         for e, s, r in zip(examples, stats, ref_stats)])


def membership_auc(member, scores) -> float:
    """The ROC AUC of an attack's ``scores`` (higher = more likely a member) against ``member`` (1 or 0).

    It is the probability that a random member scores higher than a random non-member, a tie counting
    one half (the Mann–Whitney U statistic over the number of pairs): 1.0 separates them perfectly, 0.5 is a
    coin, below 0.5 the members look *less* familiar than the non-members. Computed by scikit-learn."""
    return float(roc_auc_score(member, scores))


def auc_table(scores: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of every attack in ``scores`` (a ``member`` column: 1 or 0), per modality and overall."""
    attacks = [a for a in MIA_ATTACKS if a in scores]
    rows = []
    for modality, group in [*scores.groupby("modality"), ("all", scores)]:
        if group["member"].nunique() < 2:
            continue
        rows += [{"attack": a, "modality": modality, "auc": membership_auc(group["member"], group[a])}
                 for a in attacks]
    return pd.DataFrame(rows)


def labelled_scores(vlm, members, nonmembers, *, k: float = K, reference=None, batch_size: int = 16,
                    names: dict[str, str] | None = None) -> pd.DataFrame:
    """:func:`mia_scores` of ``members`` (``member`` = 1) and ``nonmembers`` (0) in one frame."""
    members, nonmembers = list(members), list(nonmembers)
    for name, given in (("members", members), ("nonmembers", nonmembers)):
        if not given:
            raise ValueError(f"{name} is empty: an AUC needs examples on both sides")
    options = dict(k=k, reference=reference, batch_size=batch_size, names=names)
    return pd.concat([mia_scores(vlm, members, **options).assign(member=1),
                      mia_scores(vlm, nonmembers, **options).assign(member=0)], ignore_index=True)


def mia_auc(vlm, members, nonmembers, *, k: float = K, reference=None, batch_size: int = 16,
            names: dict[str, str] | None = None) -> pd.DataFrame:
    """ROC AUC of each attack, members (label 1) against non-members (0), per modality and overall."""
    return auc_table(labelled_scores(vlm, members, nonmembers, k=k, reference=reference, batch_size=batch_size,
                                     names=names))


def people_names(bench) -> dict[str, str]:
    """Profile id → name for everyone in ``bench`` (the ``names`` that the attacks leave unscored)."""
    return {p.id: p.name for p in bench.profiles + bench.utility_profiles + bench.holdout_profiles}


def forget_vs_holdout(bench, ratio: float = 0.05) -> tuple[list, list]:
    """The membership attack's two sides: the forget people's training pairs (members of the vanilla model's
    training set) and as many holdout people's pairs (people no model was trained on)."""
    forget = training_examples(bench, bench.split("forget", ratio).ids, practice=False)
    holdout = training_examples(bench, bench.split("holdout", ratio).ids, practice=False)
    return forget, holdout


def privleak(auc: float, reference_auc: float) -> float:
    """MUSE's PrivLeak, in percent, as MUSE and open-unlearning compute it::

        PrivLeak = ((1 − AUC) − (1 − AUC_retain-only)) / (1 − AUC_retain-only) × 100

    MUSE reads its AUCs as ``1 − AUC`` of the "higher = member" convention used here, hence the ``1 −``.
    0: no more leak than the model that never saw the forget set. **Negative: a leak** (under-unlearning;
    a model that gives every forget person away, AUC 1 against a retain-only 0.5, scores −100). Positive:
    over-unlearning (the forget people now look *less* familiar than strangers)."""
    for name, value in (("auc", auc), ("reference_auc", reference_auc)):
        if not validate.is_number(value) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be an AUC in [0, 1]; got {value!r}")
    if reference_auc == 1:
        raise ValueError("reference_auc must be below 1: PrivLeak divides by 1 − reference_auc")
    return ((1 - auc) - (1 - reference_auc)) / (1 - reference_auc) * 100


__all__ = ["K", "MIA_ATTACKS", "VARIANCE_FLOOR", "TokenStats", "auc_table", "require_k", "forget_vs_holdout", "labelled_scores",
           "lowest_mean", "membership_auc", "membership_scores", "mia_auc", "mia_scores", "name_mask", "people_names", "privleak", "token_stats", "zlib_bytes"]
