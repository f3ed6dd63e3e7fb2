"""A live control over MANU's pruning: move α, pick the scores, prune, measure, undo (chapter 05).

:func:`pruning_control` returns a :class:`~.live.LiveControl`. Each press of its button selects the top α
of each tower by the chosen scores (:func:`mini_unlearn.neurons.select_top`; MANU's released scores, named
``"released"``, as the released code selects: :data:`mini_unlearn.neurons.importance.SELECTIONS`), prunes
them in place (:func:`mini_unlearn.neurons.prune_neurons`), runs ``measure`` on the pruned model, and undoes
the pruning, so the model is bit for bit what it was before the press. Chapter 05 draws the same
measurement over a few α as a static figure for the book.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ...neurons.edit import require_alpha, prune_neurons, select_top
from ...neurons.importance import SELECTIONS
from .live import LiveControl

NOTE = ("A live control (it runs in Jupyter with a kernel): prune the top α of each tower by the chosen "
        "scores, measure, undo. The book shows the same sweep as a static figure.")


def pruning_control(vlm, scores: dict[str, dict[str, torch.Tensor]], measure: Callable[[torch.nn.Module], dict],
                    towers: dict[str, str], *, scope: str = "per_tower", alpha: float = 0.05,
                    rules: dict[str, Callable] | None = None) -> LiveControl:
    """A slider over α (0.3 % to 30 %, log scale) and a menu over ``scores`` (name → per-site scores,
    e.g. ``{"released": …, "paper": …}``).

    ``rules`` (name → a selection function like :func:`mini_unlearn.neurons.select_top`) says how each set of scores
    picks its top α; by default a MANU variant's name uses that variant's rule
    (:data:`mini_unlearn.neurons.importance.SELECTIONS`: ``"released"`` the released code's ``int(α·N)`` and
    ties) and every other name :func:`mini_unlearn.neurons.select_top`.

    A press returns ``{"neurons pruned": n, **measure(model)}`` — ``measure`` maps the pruned model to
    named numbers (e.g. :func:`mini_unlearn.methods.split_monitor`) — and draws them as bars.
    """
    import ipywidgets as widgets

    if not scores:
        raise ValueError("pruning_control needs at least one set of scores, e.g. {'released': scores}")
    model = getattr(vlm, "model", vlm)
    rules = {**SELECTIONS, **(rules or {})}

    def readings(alpha: float, variant: str) -> dict[str, float]:
        select = rules.get(variant, select_top)
        pruning = prune_neurons(model, select(scores[variant], require_alpha(alpha), scope, towers))
        try:
            measured = measure(model)
        finally:
            pruning.undo()
        return {"neurons pruned": len(pruning), **measured}

    def draw(result: dict[str, float], values: dict) -> None:
        import matplotlib.pyplot as plt

        shown = {name: value for name, value in result.items() if name != "neurons pruned"}
        colours = ["tab:red" if name.startswith("forget") else "tab:blue" for name in shown]
        plt.figure(figsize=(6, 0.4 * len(shown) + 1.2))
        plt.barh(list(shown), list(shown.values()), color=colours)
        plt.xlabel("measurement with the neurons pruned")
        plt.title(f"top {values['alpha']:.1%} per tower by {values['variant']!r}: "
                  f"{result['neurons pruned']} neurons pruned")
        plt.show()

    slider = widgets.FloatLogSlider(value=alpha, base=10, min=-2.5, max=-0.5, step=0.25, description="α")
    return LiveControl(readings, note=NOTE, draw=draw, button="prune and measure", alpha=slider,
                       variant=list(scores))


__all__ = ["pruning_control"]
