"""MANU's neuron importance: which neurons are *about the forget people*, per modality (chapter 05).

MANU (Liu et al., ACL 2025) scores every MLP neuron with four importance functions computed from
its activations, then prunes the neurons whose importance on the forget data most exceeds their
importance on the retain data. Two readings exist, offered by name (book/appendix/manu.md):

``"paper"`` — the formulas of the paper. For one data set D, compare its two *views*, multimodal
(portrait + question) and text-only (the person named, no image). With per-neuron means Z̄,
variances, mean squares (ΣZ²/n) and firing rates (N/n, the share of the n samples above τ) over D::

    I_abs  = |Z̄_multi − Z̄_text| / (|Z̄_multi| + |Z̄_text| + ε)
    I_freq = |N_multi/n_multi − N_text/n_text| / (N_multi/n_multi + N_text/n_text + ε)
    I_var  = sqrt(Var_multi + Var_text)
    I_rms  = sqrt(|ΣZ²_multi/n_multi − ΣZ²_text/n_text| / (ΣZ²_multi/n_multi + ΣZ²_text/n_text + ε))
    I(D)   = I_abs + I_freq + I_var + I_rms
    S      = I(D_f) / (I(D_r) + ε)                        (a ratio of sums)

Three readings of ours, each where the paper's formula cannot be taken as printed:

* ``|·|`` in the I_abs denominator: the paper's ``Z̄_multi + Z̄_text`` can be ≈ 0 or negative
  (activations are signed), which makes the ratio explode or flip sign.
* **Per sample, not raw counts.** The paper writes N and ΣZ²: it turns one data set into both views,
  so the two views have the same samples. Ours do not: a person has 7 image+text pairs and 6
  text-only ones (the name question has no text-only form). Raw counts would then give a neuron that
  behaves identically in both views I_rms ≈ 0.28 and I_freq ≈ 0.08 from the counts alone; rates and
  mean squares give 0 (with equal counts the two forms are the same).
* **Vision neurons: the spread ratio.** A question without an image never runs the vision tower, so
  a vision neuron has no text-only activation. Read literally (the text view silent: all zero),
  I_abs = I_freq = I_rms = 1 for every active vision neuron and its score is ``(3 + σ_f)/(3 + σ_r)``:
  the constant 3 says nothing about the neuron and squeezes every vision score towards 1. We keep
  the one function that still compares something, I_var: a vision neuron's score is
  ``S = σ_multi(D_f) / (σ_multi(D_r) + ε)`` — how much more its response varies across the forget
  people's portraits than across the retain people's. (:func:`literal_vision_score` is the literal
  reading, for comparison.)

``"released"`` — the released code (franciscoliu/MANU, ``prune/prune_utility.py``). No comparison of
views: per data set, ``I_abs = mean|z|``, ``I_freq = share of |z| > τ``, ``I_var = std(z)``,
``I_rms = sqrt(mean z²)``; vision neurons are scored on the multimodal data, language neurons on the
text-only data; and the score is a weighted sum of per-metric ratios, with the frequency weight 0::

    S = Σ_m w_m · (I_m(D_f) / (I_m(D_r) + 1e-5) − 1),   w = {abs: 2, freq: 0, var: 2, rms: 2}

Three details of the released code that this variant reproduces, and the paper variant does not:

* **Per batch, then averaged.** The four statistics are taken over each batch's samples and averaged
  over the batches — in chunks of 10 batches, then over the chunks (``collect_feedforward_activations``;
  :class:`.activations.BatchAverages`). A batch counts once whatever its size, so the statistics
  depend on the batch size: ``MANUConfig.batch_size``, for this variant by default 4, the released
  scripts' ``--batch_size``. Batches are consecutive samples in the data's order (the released
  DataLoaders shuffle).
* **``I_var`` is ``torch.std``: divided by n − 1** within each batch (a one-sample batch has none:
  refused, see :meth:`.activations.BatchAverages.averages`).
* **The top α: ``int(α·N)`` and every tie** (:func:`select_released`, ``compute_top_k_pruning_mask``):
  the count is floored, the threshold is the ``int(α·N)``-th largest score, and every neuron scoring
  ``>=`` it is pruned, so a tie at the threshold prunes more than ``int(α·N)``.

The paper variant keeps the package's own choices there, deliberately: statistics of the whole set
(sums over samples, independent of how they are batched), the population variance (the paper writes
Var without saying which; with all samples in one set the two differ by n/(n − 1) only), and exactly
``round(α·N)`` neurons with ties to the lower index (:func:`mini_unlearn.neurons.select_top`), so α
means the share pruned whatever the scores.

Where the statistics are read differs too. Both variants here read a neuron where it is one: the
input of ``fc2`` / ``down_proj``, after the activation function (and, in the language model, after
the gate). The released code hooks the *outputs* of vision ``fc1`` and ``fc2`` and of the language
``gate_proj``, ``up_proj`` and ``down_proj`` — pre-activation values, and the MLP's output, which is
not a neuron — and pools every token, pads included (a bug also pools all layers: book/appendix/manu.md,
'What the released code does differently'). Both variants here aggregate each sample's tokens first
(:mod:`.activations`; MANU reads the question and answer tokens, not the image placeholders).
Both select the top α **within each tower**, as the released code does (``scope="per_tower"``), each
by its own rule (:func:`mini_unlearn.neurons.select_top`, :func:`select_released`).
"""
from __future__ import annotations

import math

import torch

from .. import validate
from .activations import NeuronStats
from .edit import require_alpha, select_top, selection_groups

METRICS: tuple[str, ...] = ("abs", "freq", "var", "rms")
VARIANTS: tuple[str, ...] = ("paper", "released")
RENAMED_VARIANTS: dict[str, str] = {"official": "released"}   # old spelling -> new, accepted with a FutureWarning
RELEASED_WEIGHTS: dict[str, float] = {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}
EPS = 1e-6


def _moments(stats: NeuronStats) -> dict[str, torch.Tensor]:
    """Per sample: mean, variance, mean square ΣZ²/n and firing rate N(>τ)/n of one set; all zeros for
    a set that never ran (no samples)."""
    if stats.count == 0:
        zeros = torch.zeros(stats.site.width, dtype=torch.float64)
        return {"mean": zeros, "var": zeros, "mean_sq": zeros, "rate": zeros}
    return {"mean": stats.mean(), "var": stats.variance(), "mean_sq": stats.mean_square(),
            "rate": stats.sums()["above"] / stats.count}


# -- the paper: two views of one data set ---------------------------------------------------------

def importance_abs(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``|Z̄_multi − Z̄_text| / (|Z̄_multi| + |Z̄_text| + ε)``: how differently the two views drive the neuron on average."""
    m, t = _moments(multi)["mean"], _moments(text)["mean"]
    return (m - t).abs() / (m.abs() + t.abs() + eps)


def importance_freq(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``|r_multi − r_text| / (r_multi + r_text + ε)``, r = N/n, the share of samples that fire above τ."""
    m, t = _moments(multi)["rate"], _moments(text)["rate"]
    return (m - t).abs() / (m + t + eps)


def importance_var(multi: NeuronStats, text: NeuronStats) -> torch.Tensor:
    """``sqrt(Var_multi + Var_text)``: how much the neuron varies across samples (unbounded, unlike the others)."""
    return (_moments(multi)["var"] + _moments(text)["var"]).sqrt()


def importance_rms(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``sqrt(|q_multi − q_text| / (q_multi + q_text + ε))``, q = ΣZ²/n: the views' energy difference per sample."""
    m, t = _moments(multi)["mean_sq"], _moments(text)["mean_sq"]
    return ((m - t).abs() / (m + t + eps)).sqrt()


def paper_importance(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> dict[str, torch.Tensor]:
    """The four functions of one data set and their equal-weight sum ``"total"`` (the paper's I(D, n))."""
    parts = {"abs": importance_abs(multi, text, eps), "freq": importance_freq(multi, text, eps),
             "var": importance_var(multi, text), "rms": importance_rms(multi, text, eps)}
    return {**parts, "total": sum(parts.values())}


def relative_score(forget_importance: torch.Tensor, retain_importance: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``S = I(D_f) / (I(D_r) + ε)``: important on the forget people, unimportant on everyone else."""
    return forget_importance / (retain_importance + eps)


def paper_score(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor], eps: float = EPS) -> torch.Tensor:
    """A language neuron's paper score: ``S = I(D_f) / (I(D_r) + ε)``, ``I = I_abs + I_freq + I_var + I_rms`` —
    a ratio of sums (the released code sums per-function ratios instead: :func:`released_score`).
    ``forget`` / ``retain``: the four functions of each set, as :func:`paper_importance` gives them."""
    return relative_score(sum(forget[m] for m in METRICS), sum(retain[m] for m in METRICS), eps)


def vision_score(forget_multi: NeuronStats, retain_multi: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """A vision neuron's paper score: ``σ(D_f) / (σ(D_r) + ε)`` on the portraits (see the module docstring)."""
    return relative_score(_moments(forget_multi)["var"].sqrt(), _moments(retain_multi)["var"].sqrt(), eps)


def literal_vision_score(forget_multi: NeuronStats, retain_multi: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """The literal reading for a vision neuron: the paper's S with a silent (all-zero) text view."""
    silent = NeuronStats(forget_multi.site, forget_multi.tau)
    return relative_score(paper_importance(forget_multi, silent, eps)["total"],
                          paper_importance(retain_multi, silent, eps)["total"], eps)


# -- the released code: one view per tower, per-set statistics ------------------------------------

def released_importance(stats: NeuronStats) -> dict[str, torch.Tensor]:
    """The released code's per-set statistics: mean|z|, share of |z| > τ, std(z) (n − 1) and sqrt(mean z²),
    each per batch and averaged over the batches (:meth:`NeuronStats.batch_averages`; NaN if it never ran)."""
    averages = stats.batch_averages()
    return {"abs": averages["mean_abs"], "freq": averages["abs_above"], "var": averages["std"], "rms": averages["rms"]}


def released_score(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor],
                   weights: dict[str, float] = RELEASED_WEIGHTS, eps: float = 1e-5) -> torch.Tensor:
    """``Σ_m w_m · (I_m(D_f) / (I_m(D_r) + ε) − 1)``: a weighted sum of per-metric ratios."""
    return sum(weights[m] * (forget[m] / (retain[m] + eps) - 1) for m in METRICS)


def official_importance(stats: NeuronStats) -> dict[str, torch.Tensor]:
    """The old name of :func:`released_importance` (a ``FutureWarning``)."""
    validate.deprecated("official_importance", "released_importance")
    return released_importance(stats)


def official_score(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor],
                   weights: dict[str, float] = RELEASED_WEIGHTS, eps: float = 1e-5) -> torch.Tensor:
    """The old name of :func:`released_score` (a ``FutureWarning``)."""
    validate.deprecated("official_score", "released_score")
    return released_score(forget, retain, weights, eps)


def select_released(scores: dict[str, torch.Tensor], alpha: float, scope: str = "per_tower",
                    towers: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """The released code's top α (``compute_top_k_pruning_mask``): the indices of the selected neurons per site.

    Per group of neurons — each tower (``"per_tower"``, the released code's; ``towers`` maps each site to
    its tower), all of them (``"global"``) or each site (``"per_layer"``) — with N neurons in the group:
    ``k = int(α·N)`` (floored), the threshold is the k-th largest score, and **every** neuron scoring
    ``>=`` the threshold is selected: ties at the threshold are all kept, so more than k can be
    selected. NaN scores are never selected. A group with ``int(α·N) = 0`` is refused (the released code
    fails there: ``topk`` of 0 has no k-th value). :func:`mini_unlearn.neurons.select_top` is the
    package's rule: exactly ``round(α·N)``, ties to the lower index."""
    alpha = require_alpha(alpha)
    selection = {}
    for group, names in selection_groups(scores, scope, towers).items():
        flat = torch.cat([scores[name].double().flatten() for name in names])
        k = int(alpha * flat.numel())
        if k == 0:
            raise ValueError(f"alpha={alpha} selects int(alpha·N) = 0 of the {flat.numel()} neurons of {group!r} "
                             f"(the released code's count, floored); raise alpha to at least 1/{flat.numel()}")
        threshold = torch.topk(torch.nan_to_num(flat, nan=-math.inf), k).values[-1]
        for name in names:
            selection[name] = (scores[name].double() >= threshold).nonzero().flatten()
    return {name: selection[name] for name in scores}


SELECTIONS = {"paper": select_top, "released": select_released}   # each variant's top-α rule


# -- all sites at once ------------------------------------------------------------------------------

def neuron_scores(stats: dict[str, dict[str, dict[str, NeuronStats]]], variant: str = "paper",
                  eps: float = EPS) -> dict[str, torch.Tensor]:
    """Per site, the score of every neuron. ``stats[set][view][site]`` with set in {"forget", "retain"}
    and view in {"image+text", "text"}. ``variant``: ``"paper"`` or ``"released"`` (``"official"``, its old
    spelling, still works with a ``FutureWarning``)."""
    variant = validate.one_of(validate.renamed(variant, "variant", RENAMED_VARIANTS), "variant", VARIANTS)
    scores = {}
    for name in stats["forget"]["image+text"]:
        f_multi, f_text = stats["forget"]["image+text"][name], stats["forget"]["text"][name]
        r_multi, r_text = stats["retain"]["image+text"][name], stats["retain"]["text"][name]
        if variant == "paper" and f_multi.site.tower == "vision":
            scores[name] = vision_score(f_multi, r_multi, eps)
        elif variant == "paper":
            scores[name] = paper_score(paper_importance(f_multi, f_text, eps), paper_importance(r_multi, r_text, eps), eps)
        else:
            view = "image+text" if f_multi.site.tower == "vision" else "text"
            scores[name] = released_score(released_importance(stats["forget"][view][name]),
                                          released_importance(stats["retain"][view][name]))
    return scores


__all__ = ["EPS", "METRICS", "RELEASED_WEIGHTS", "RENAMED_VARIANTS", "VARIANTS", "importance_abs", "importance_freq",
           "importance_rms", "importance_var", "literal_vision_score", "neuron_scores", "official_importance",
           "official_score", "released_importance", "released_score",
           "paper_importance", "paper_score", "relative_score", "select_released", "SELECTIONS", "vision_score"]
