"""MANU's neuron importance: which neurons are *about the forget people*, per modality (chapter 05).

MANU (Liu et al., ACL 2025) scores every MLP neuron with four importance functions computed from
its activations, then prunes the neurons whose importance on the forget data most exceeds their
importance on the retain data. Two readings exist, offered by name (implementation-notes §4):

``"paper"`` — the formulas of the paper. For one data set D, compare its two *views*, multimodal
(portrait + question) and text-only (the person named, no image). With per-neuron means Z̄,
variances, sums of squares ΣZ² and counts N of values above τ over D::

    I_abs  = |Z̄_multi − Z̄_text| / (|Z̄_multi| + |Z̄_text| + ε)
    I_freq = |N_multi − N_text| / (N_multi + N_text + ε)
    I_var  = sqrt(Var_multi + Var_text)
    I_rms  = sqrt(|ΣZ²_multi − ΣZ²_text| / (ΣZ²_multi + ΣZ²_text + ε))
    I(D)   = I_abs + I_freq + I_var + I_rms
    S      = I(D_f) / (I(D_r) + ε)                        (a ratio of sums)

We put ``|·|`` in the I_abs denominator: the paper's ``Z̄_multi + Z̄_text`` can be ≈ 0 or negative
(activations are signed), which makes the ratio explode or flip sign.

**Vision neurons under the text-only view.** A question without an image never runs the vision
tower, so a vision neuron has *no* text-only activation. We read that literally: the text-only view
contributes nothing (mean 0, variance 0, ΣZ² 0, N 0). Then I_abs = I_freq = I_rms = 1 whenever the
neuron is active at all, and a vision neuron's I(D) is ``3 + std_multi(D)`` — its score compares
how variable it is on the forget people's portraits with the retain people's.

``"official"`` — the released code (franciscoliu/MANU). No comparison of views: per data set,
``I_abs = mean|z|``, ``I_freq = share of |z| > τ``, ``I_var = std(z)``, ``I_rms = sqrt(mean z²)``;
vision neurons are scored on the multimodal data, language neurons on the text-only data; and the
score is a weighted sum of per-metric ratios, with the frequency weight 0::

    S = Σ_m w_m · (I_m(D_f) / (I_m(D_r) + 1e-5) − 1),   w = {abs: 2, freq: 0, var: 2, rms: 2}

Both variants here aggregate each sample's tokens first (mean over real tokens by default,
:mod:`.activations`); the released code pools every token, pads included.
"""
from __future__ import annotations

import torch

from .activations import NeuronStats

METRICS: tuple[str, ...] = ("abs", "freq", "var", "rms")
VARIANTS: tuple[str, ...] = ("paper", "official")
OFFICIAL_WEIGHTS: dict[str, float] = {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}
EPS = 1e-6


def _moments(stats: NeuronStats) -> dict[str, torch.Tensor]:
    """Mean, variance, ΣZ² and N(>τ) of one set; all zeros for a set that never ran (no samples)."""
    sums = stats.sums()                   # zeros when empty
    if stats.count == 0:
        zeros = torch.zeros(stats.site.width, dtype=torch.float64)
        return {"mean": zeros, "var": zeros, "sum_sq": zeros, "above": zeros}
    return {"mean": stats.mean(), "var": stats.variance(), "sum_sq": sums["sum_sq"], "above": sums["above"]}


# -- the paper: two views of one data set ---------------------------------------------------------

def importance_abs(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``|Z̄_multi − Z̄_text| / (|Z̄_multi| + |Z̄_text| + ε)``: how differently the two views drive the neuron on average."""
    m, t = _moments(multi)["mean"], _moments(text)["mean"]
    return (m - t).abs() / (m.abs() + t.abs() + eps)


def importance_freq(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``|N_multi − N_text| / (N_multi + N_text + ε)``, N = how many samples fire above τ."""
    m, t = _moments(multi)["above"], _moments(text)["above"]
    return (m - t).abs() / (m + t + eps)


def importance_var(multi: NeuronStats, text: NeuronStats) -> torch.Tensor:
    """``sqrt(Var_multi + Var_text)``: how much the neuron varies across samples (unbounded, unlike the others)."""
    return (_moments(multi)["var"] + _moments(text)["var"]).sqrt()


def importance_rms(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> torch.Tensor:
    """``sqrt(|ΣZ²_multi − ΣZ²_text| / (ΣZ²_multi + ΣZ²_text + ε))``: the views' energy difference."""
    m, t = _moments(multi)["sum_sq"], _moments(text)["sum_sq"]
    return ((m - t).abs() / (m + t + eps)).sqrt()


def paper_importance(multi: NeuronStats, text: NeuronStats, eps: float = EPS) -> dict[str, torch.Tensor]:
    """The four functions of one data set and their equal-weight sum ``"total"`` (the paper's I(D, n))."""
    parts = {"abs": importance_abs(multi, text, eps), "freq": importance_freq(multi, text, eps),
             "var": importance_var(multi, text), "rms": importance_rms(multi, text, eps)}
    return {**parts, "total": sum(parts.values())}


def relative_score(forget_importance: torch.Tensor, retain_importance: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``S = I(D_f) / (I(D_r) + ε)``: important on the forget people, unimportant on everyone else."""
    return forget_importance / (retain_importance + eps)


# -- the released code: one view per tower, per-set statistics ------------------------------------

def official_importance(stats: NeuronStats) -> dict[str, torch.Tensor]:
    """Per-set statistics of the released code: mean|z|, share of |z| > τ, std(z), sqrt(mean z²)."""
    if stats.count == 0:                  # never ran: every statistic is NaN
        return {m: stats.mean() for m in METRICS}
    return {"abs": stats.mean_abs(), "freq": stats.sums()["abs_above"] / stats.count,
            "var": stats.variance().sqrt(), "rms": stats.rms()}


def official_score(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor],
                   weights: dict[str, float] = OFFICIAL_WEIGHTS, eps: float = 1e-5) -> torch.Tensor:
    """``Σ_m w_m · (I_m(D_f) / (I_m(D_r) + ε) − 1)``: a weighted sum of per-metric ratios."""
    return sum(weights[m] * (forget[m] / (retain[m] + eps) - 1) for m in METRICS)


# -- all sites at once ------------------------------------------------------------------------------

def neuron_scores(stats: dict[str, dict[str, dict[str, NeuronStats]]], variant: str = "paper",
                  eps: float = EPS) -> dict[str, torch.Tensor]:
    """Per site, the score of every neuron. ``stats[set][view][site]`` with set in {"forget", "retain"}
    and view in {"image+text", "text"}."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    scores = {}
    for name in stats["forget"]["image+text"]:
        f_multi, f_text = stats["forget"]["image+text"][name], stats["forget"]["text"][name]
        r_multi, r_text = stats["retain"]["image+text"][name], stats["retain"]["text"][name]
        if variant == "paper":
            scores[name] = relative_score(paper_importance(f_multi, f_text, eps)["total"],
                                          paper_importance(r_multi, r_text, eps)["total"], eps)
        else:
            view = "image+text" if f_multi.site.tower == "vision" else "text"
            scores[name] = official_score(official_importance(stats["forget"][view][name]),
                                          official_importance(stats["retain"][view][name]))
    return scores


__all__ = ["EPS", "METRICS", "OFFICIAL_WEIGHTS", "VARIANTS", "importance_abs", "importance_freq", "importance_rms",
           "importance_var", "neuron_scores", "official_importance", "official_score", "paper_importance",
           "relative_score"]
