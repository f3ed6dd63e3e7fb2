"""Switching neurons off, reversibly (chapters 05 and 08).

To prune neuron ``j`` of an MLP is to make it contribute nothing: zero row ``j`` of the Linear(s)
that produce it (``fc1``, or ``gate_proj`` and ``up_proj``, with their bias entries) *and* column
``j`` of the Linear that consumes it (``fc2`` / ``down_proj``). Either alone would do for the
output; both together make the activation itself 0, so hooks and later scores see a dead neuron.

:func:`prune_neurons` edits the weights in place and returns a :class:`Pruning` that remembers
exactly what it overwrote: ``.undo()`` writes it back, bit for bit. :func:`select_top` picks the
neurons to prune from per-site scores: the top α of each tower, of all neurons, or of each layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import torch

from .. import validate
from ..models.anatomy import NeuronSite, find_mlp_neurons
from ..models.vlm import VLM

SCOPES: tuple[str, ...] = ("per_tower", "global", "per_layer")


def require_alpha(alpha) -> float:
    """``alpha`` as a float in (0, 1): the fraction of neurons to prune."""
    if not validate.is_number(alpha) or math.isnan(alpha) or not 0 < alpha < 1:
        raise ValueError(f"alpha (the fraction of neurons to prune) must lie strictly between 0 and 1, "
                         f"e.g. 0.02 for 2%; got {alpha!r}")
    return float(alpha)


def selection_groups(scores: dict[str, torch.Tensor], scope: str,
                     towers: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The groups of sites a top-α selection ranks within, group → site names: all of them together
    (``"global"``), each tower (``"per_tower"``: ``towers`` maps each site to its tower, e.g.
    :func:`site_towers`) or each site (``"per_layer"``). Clear errors for a bad ``scope``, no scores, or a
    site with no tower."""
    validate.one_of(scope, "scope", SCOPES)
    if not scores:
        raise ValueError("no neuron scores to select from")
    if scope == "per_tower":
        missing = [name for name in scores if towers is None or name not in towers]
        if missing:
            raise ValueError(f"scope='per_tower' needs towers={{site: tower}} for every site "
                             f"(mu.neurons.site_towers(model)); missing {missing[:3]}")
    groups: dict[str, list[str]] = {}
    for name in scores:
        group = "all" if scope == "global" else towers[name] if scope == "per_tower" else name
        groups.setdefault(group, []).append(name)
    return groups


def select_top(scores: dict[str, torch.Tensor], alpha: float, scope: str = "global",
               towers: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """The indices of the highest-scoring neurons per site: ``round(α·N)`` of all N neurons (at least 1)
    across every site (``"global"``), the same within each tower (``"per_tower"``: ``towers`` maps each
    site to its tower, e.g. :func:`site_towers`), or ``round(α·width)`` within each site
    (``"per_layer"``). NaN scores are never picked; ties go to the lower index."""
    alpha = require_alpha(alpha)
    groups = selection_groups(scores, scope, towers)
    clean = {name: torch.nan_to_num(s.double(), nan=-math.inf) for name, s in scores.items()}
    selection = {}
    for names in groups.values():
        flat = torch.cat([clean[n] for n in names])
        chosen = _top(flat, max(1, round(alpha * flat.numel())))
        start = 0
        for name in names:
            width = clean[name].numel()
            selection[name] = (chosen[(chosen >= start) & (chosen < start + width)] - start).sort().values
            start += width
    return {name: selection[name] for name in scores}


def _top(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest finite values, ties to the lower index (a stable sort)."""
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    return order[torch.isfinite(values[order])].sort().values


def site_towers(model) -> dict[str, str]:
    """Each MLP neuron site's tower, by module name: what ``select_top(..., scope="per_tower")`` needs."""
    model = model.model if isinstance(model, VLM) else model
    return {site.name: site.tower for site in find_mlp_neurons(model)}


@dataclass
class Pruning:
    """Neurons switched off in a model, and what they held, so that ``undo()`` restores them exactly."""

    model: torch.nn.Module
    selection: dict[str, torch.Tensor]
    sites: dict[str, NeuronSite]
    saved: list[tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)
    undone: bool = False

    def undo(self) -> None:
        """Write every overwritten row and column back."""
        if self.undone:
            raise RuntimeError("this pruning was already undone")
        with torch.no_grad():
            for tensor, dim, index, original in reversed(self.saved):
                tensor.index_copy_(dim, index, original)
        self.undone = True

    def counts(self) -> pd.DataFrame:
        """Pruned neurons per tower and layer, out of how many."""
        rows = [{"tower": site.tower, "layer": site.layer, "pruned": int(self.selection.get(name, torch.empty(0)).numel()),
                 "neurons": site.width} for name, site in self.sites.items()]
        frame = pd.DataFrame(rows)
        frame["share"] = frame["pruned"] / frame["neurons"]
        return frame

    def __len__(self) -> int:
        return sum(int(v.numel()) for v in self.selection.values())


def prune_neurons(model, selection: dict[str, torch.Tensor]) -> Pruning:
    """Zero the selected neurons (producer rows and biases, consumer columns) in place; returns the undo record."""
    model = model.model if isinstance(model, VLM) else model      # a VLM or the bare model
    sites = {site.name: site for site in find_mlp_neurons(model)}
    unknown = [name for name in selection if name not in sites]
    if unknown:
        raise ValueError(f"no MLP neuron site named {unknown}; the sites are {list(sites)}")
    pruning = Pruning(model, {n: torch.as_tensor(i, dtype=torch.long) for n, i in selection.items()}, sites)
    with torch.no_grad():
        for name, index in pruning.selection.items():
            site = sites[name]
            if index.numel() and (index.min() < 0 or index.max() >= site.width):
                raise ValueError(f"neuron indices of {name} must lie in [0, {site.width}); got {index.tolist()}")
            if not index.numel():
                continue
            targets = [(site.module(model).weight, 1)]
            for producer in site.producer_modules(model):
                targets.append((producer.weight, 0))
                if producer.bias is not None:
                    targets.append((producer.bias, 0))
            for tensor, dim in targets:
                where = index.to(tensor.device)
                pruning.saved.append((tensor, dim, where, tensor.index_select(dim, where).clone()))
                tensor.index_fill_(dim, where, 0.0)
    return pruning


__all__ = ["SCOPES", "Pruning", "require_alpha", "prune_neurons", "select_top", "selection_groups", "site_towers"]
