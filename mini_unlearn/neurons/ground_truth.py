"""Scoring a localiser against a known answer (the planted model, :mod:`mini_unlearn.models.planting`).

A localiser answers "where does the model keep the forget people?" with a set of neurons (MANU's top
α, MIP-Editor's paths) or a set of weights (MMUnlearner's saliency mask). On the planted model the
answer is known — the planted neurons — so each answer gets a precision (the share of what it found
that is planted) and a recall (the share of the planted it found), per tower. A random choice of the
same size has an expected precision equal to the planted share of the tower: the bar to beat.

The concentration measures ask the same question without a ground truth, of any score: how much of a
tower's total score sits in its top α of neurons (:func:`top_share`), or on given neurons
(:func:`share_on`).
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from ..models.anatomy import find_mlp_neurons
from ..models.planting import planted_entries
from ..models.vlm import VLM


def _sites(model):
    model = model.model if isinstance(model, VLM) else model
    return {site.name: site for site in find_mlp_neurons(model)}


def _as_sets(selection: dict[str, torch.Tensor]) -> dict[str, set[int]]:
    return {name: set(torch.as_tensor(index).tolist()) for name, index in selection.items()}


def neuron_precision_recall(model, selection: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]
                            ) -> pd.DataFrame:
    """Per tower: neurons found, planted, found ∩ planted, precision, recall, and the precision a
    random choice would expect (planted / all neurons of the tower).

    ``selection`` and ``truth``: site name → neuron indices (a site may be missing: nothing there)."""
    sites = _sites(model)
    unknown = sorted(set(selection) - set(sites)) + sorted(set(truth) - set(sites))
    if unknown:
        raise ValueError(f"selection / truth name sites the model does not have: {unknown[:3]}")
    found, planted = _as_sets(selection), _as_sets(truth)
    rows = []
    for tower in dict.fromkeys(site.tower for site in sites.values()):
        names = [name for name, site in sites.items() if site.tower == tower]
        n_found = sum(len(found.get(name, ())) for name in names)
        n_planted = sum(len(planted.get(name, ())) for name in names)
        hits = sum(len(found.get(name, set()) & planted.get(name, set())) for name in names)
        width = sum(sites[name].width for name in names)
        rows.append({"tower": tower, "found": n_found, "planted": n_planted, "hits": hits,
                     "precision": hits / n_found if n_found else math.nan,
                     "recall": hits / n_planted if n_planted else math.nan,
                     "random precision": n_planted / width})
    return pd.DataFrame(rows)


def planted_weights(model, truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter name → boolean mask of the entries that belong to planted neurons: the producers'
    rows (and bias entries) and the consumer's columns (:func:`~mini_unlearn.models.planting.planted_entries`)."""
    return planted_entries(model, truth)


def _has(model, name: str) -> bool:
    try:
        return model.get_parameter(name) is not None
    except AttributeError:
        return False


def weight_precision_recall(model, masks: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                            towers: dict[str, str]) -> pd.DataFrame:
    """Per tower, for a weight mask (MMUnlearner's saliency): masked MLP weights, planted weights,
    masked ∩ planted, precision, recall, and the random precision (planted / all MLP weights).

    ``masks``: parameter name → boolean mask (weights outside the MLPs are ignored); ``towers``:
    parameter name → tower for the MLP parameters (see :func:`mlp_parameter_towers`)."""
    planted = planted_weights(model, truth)
    rows = []
    for tower in dict.fromkeys(towers.values()):
        names = [name for name, t in towers.items() if t == tower]
        found = sum(int(masks[name].sum()) for name in names if name in masks)
        total = sum(int(planted[name].sum()) for name in names if name in planted)
        hits = sum(int((masks[name].cpu() & planted[name]).sum()) for name in names if name in masks and name in planted)
        size = sum(_size(model, name) for name in names)
        rows.append({"tower": tower, "found": found, "planted": total, "hits": hits,
                     "precision": hits / found if found else math.nan,
                     "recall": hits / total if total else math.nan, "random precision": total / size})
    return pd.DataFrame(rows)


def _size(model, name: str) -> int:
    model = model.model if isinstance(model, VLM) else model
    return model.get_parameter(name).numel()


def mlp_parameter_towers(model) -> dict[str, str]:
    """Every MLP parameter (producers' weights and biases, the consumer's weight) → its tower."""
    model = model.model if isinstance(model, VLM) else model
    out = {}
    for site in _sites(model).values():
        for producer in site.producers:
            for suffix in ("weight", "bias"):
                if _has(model, f"{producer}.{suffix}"):
                    out[f"{producer}.{suffix}"] = site.tower
        out[f"{site.name}.weight"] = site.tower
    return out


def top_share(scores: dict[str, torch.Tensor], alpha: float, towers: dict[str, str]) -> dict[str, float]:
    """Per tower: the share of the tower's total score held by its top ``alpha`` of neurons.

    Scores are clipped at 0 and NaN counts as 0. A score spread evenly gives ``alpha``; one that
    sits on a few neurons gives close to 1."""
    out = {}
    for tower in dict.fromkeys(towers[name] for name in scores):
        flat = torch.cat([torch.nan_to_num(scores[name].double(), nan=0.0).clamp(min=0)
                          for name in scores if towers[name] == tower])
        k = max(1, round(alpha * flat.numel()))
        total = float(flat.sum())
        out[tower] = float(flat.topk(k).values.sum()) / total if total > 0 else math.nan
    return out


def share_on(scores: dict[str, torch.Tensor], chosen: dict[str, torch.Tensor], towers: dict[str, str]
             ) -> dict[str, float]:
    """Per tower: the share of the tower's total (clipped, NaN → 0) score held by the ``chosen`` neurons."""
    out = {}
    for tower in dict.fromkeys(towers[name] for name in scores):
        names = [name for name in scores if towers[name] == tower]
        clean = {name: torch.nan_to_num(scores[name].double(), nan=0.0).clamp(min=0) for name in names}
        total = sum(float(s.sum()) for s in clean.values())
        on = sum(float(clean[name][torch.as_tensor(chosen[name], dtype=torch.long)].sum())
                 for name in names if name in chosen)
        out[tower] = on / total if total > 0 else math.nan
    return out


def random_selection(model, counts: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """``counts[site]`` neurons drawn uniformly at random per site (seeded): the control localiser."""
    sites = _sites(model)
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randperm(sites[name].width, generator=generator)[:n].sort().values
            for name, n in counts.items()}


__all__ = ["mlp_parameter_towers", "neuron_precision_recall", "planted_weights", "random_selection", "share_on",
           "top_share", "weight_precision_recall"]
