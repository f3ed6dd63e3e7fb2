"""Chapter 07 · neuron paths: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, compare, slips

__all__ = ["check_greedy_path", "check_integrated_gradients", "check_path_score"]


# ---------------------------------------------------------------------------------------------------
# Exercise 7.1 · integrated gradients

def _ig_cases() -> list[Case]:
    """Functions of an activation vector with known shapes: linear, quadratic, a small tanh MLP; several m."""
    import torch
    generator = torch.Generator().manual_seed(19)
    w = torch.randn(5, generator=generator, dtype=torch.float64)
    w1 = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    w2 = torch.randn(7, generator=generator, dtype=torch.float64)
    a = torch.randn(5, generator=generator, dtype=torch.float64)
    linear = lambda x: x @ w
    quadratic = lambda x: (x @ w) ** 2
    mlp = lambda x: torch.tanh(x @ w1) @ w2
    return [("f(x) = w·x, m=4", (linear, a, 4)), ("f(x) = (w·x)², m=4", (quadratic, a, 4)),
            ("f(x) = (w·x)², m=50", (quadratic, a, 50)), ("a tanh MLP, m=1", (mlp, a, 1)),
            ("a tanh MLP, m=16", (mlp, a, 16))]


def _mean_gradient(f, a, m, start):
    import torch
    steps = torch.arange(start, start + m, dtype=a.dtype) / m
    points = (steps[:, None] * a[None, :]).requires_grad_(True)
    grads, = torch.autograd.grad(f(points).sum(), points)
    return grads.mean(dim=0)


def _ig_left(f, a, m):
    return a * _mean_gradient(f, a, m, start=0)


def _ig_without_a(f, a, m):
    return _mean_gradient(f, a, m, start=1)


def _ig_summed(f, a, m):
    return a * _mean_gradient(f, a, m, start=1) * m


@slips(Slip(_ig_left, "this is the left Riemann sum, α = 0, 1/m, …, (m−1)/m: the course's sum is the right one, "
                      "α = 1/m, 2/m, …, 1 (k = 1..m), which ends at the activation itself"),
       Slip(_ig_without_a, "the mean gradient is not multiplied by a: IG_i = a_i · (1/m) Σ_k ∂f/∂x_i, the step from "
                           "the zero baseline times the average slope along it"),
       Slip(_ig_summed, "the m gradients are summed, not averaged: the 1/m (the step size a/m) is missing"))
def check_integrated_gradients(fn: Callable) -> None:
    """Chapter 07: ``fn(f, a, m)`` → per-coordinate integrated gradients of ``f`` at ``a`` from 0, with the right
    Riemann sum ``a · (1/m) Σ_{k=1..m} ∇f(k/m · a)``."""
    from ...neurons.paths import integrated_gradients
    compare("integrated_gradients", fn, lambda f, a, m: integrated_gradients(f, a, m), _ig_cases(), atol=1e-8,
            slips=check_integrated_gradients.slips)


# ---------------------------------------------------------------------------------------------------
# Exercise 7.2 · the paper's path score

def _path_score_cases() -> list[Case]:
    """Step sizes and summed gradients of a layer at a few positions, with and without an earlier path."""
    import torch
    generator = torch.Generator().manual_seed(23)

    def layer(positions, width, with_path=True):
        steps = torch.rand(positions, width, generator=generator) / 8
        grads = torch.randn(positions, width, generator=generator)
        path_steps = torch.rand(positions, generator=generator) if with_path else torch.zeros(positions)
        path_grads = torch.randn(positions, generator=generator) if with_path else torch.zeros(positions)
        return steps, grads, path_steps, path_grads
    squared = layer(4, 5)
    squared = (squared[0], squared[1] ** 2, squared[2], squared[3] ** 2)
    return [("3 positions, 6 neurons, a path below", layer(3, 6)),
            ("1 position, 4 neurons, a path below", layer(1, 4)),
            ("IFI-like: 4 positions, squared gradients, a path below", squared),
            ("layer 0: 5 positions, no path yet (path sums are 0)", layer(5, 6, with_path=False))]


def _score_no_cross(steps, grads, path_steps, path_grads):
    return (steps * grads).sum(dim=0) + (path_steps * path_grads).sum()


def _score_sums_first(steps, grads, path_steps, path_grads):
    return (steps.sum(dim=0) + path_steps.sum()) * (grads.sum(dim=0) + path_grads.sum())


def _score_mean(steps, grads, path_steps, path_grads):
    return ((steps + path_steps[:, None]) * (grads + path_grads[:, None])).mean(dim=0)


@slips(Slip(_score_no_cross, "the cross terms are missing: (w̃_i + Σ_P w̃)(g_i + Σ_P g) multiplied out has the neuron's "
                             "step times the path's gradients and the path's steps times the neuron's gradient too"),
       Slip(_score_sums_first, "the positions are summed before multiplying: the formula holds per position, so "
                               "multiply at each position and sum the products"),
       Slip(_score_mean, "a mean over the positions where the sum belongs"))
def check_path_score(fn: Callable) -> None:
    """Chapter 07: ``fn(steps, grads, path_steps, path_grads)`` → ``[width]``, the paper's score
    ``Σ_pos (steps + path_steps) · (grads + path_grads)`` (path sums broadcast over the neurons)."""
    from ...neurons.paths import path_score
    compare("path_score", fn, path_score, _path_score_cases(), atol=1e-5, slips=check_path_score.slips)


# ---------------------------------------------------------------------------------------------------
# Exercise 7.3 · the greedy path

class _Site:
    """A stand-in for a NeuronSite: a layer's name and width."""

    def __init__(self, name: str, width: int):
        self.name, self.width = name, width

    def __repr__(self) -> str:
        return f"site {self.name} ({self.width} neurons)"


def _greedy_cases() -> list[Case]:
    """Three or four toy layers whose scores depend on the path chosen below (a coupling matrix per pair of
    layers), k = 2 or 3; one case with tied scores, one with a layer whose scores are all zero."""
    import torch
    generator = torch.Generator().manual_seed(29)

    def toy(widths, zero_layer=None, ties=False):
        sites = [_Site(f"layer{i}", w) for i, w in enumerate(widths)]
        base = {s.name: torch.randn(s.width, generator=generator) for s in sites}
        if ties:
            base = {name: score.round() for name, score in base.items()}
        coupling = {(a.name, b.name): torch.randn(a.width, b.width, generator=generator) * 3
                    for i, b in enumerate(sites) for a in sites[:i]}
        if ties:
            coupling = {key: value.round() for key, value in coupling.items()}

        def score_layer(site, path):
            if site.name == zero_layer:
                return torch.zeros(site.width), 0.0
            score = base[site.name].clone()
            for earlier, chosen in path.items():
                score += coupling[(earlier, site.name)][chosen].sum(dim=0)
            return score, float(sum(base[earlier][chosen].sum() for earlier, chosen in path.items()))
        return sites, score_layer
    return [("3 layers of 8 neurons, k=2", (*toy((8, 8, 8)), 2)),
            ("4 layers of 6, 9, 7, 5 neurons, k=3", (*toy((6, 9, 7, 5)), 3)),
            ("3 layers with tied integer scores (ties go to the lower index), k=3", (*toy((6, 6, 6), ties=True), 3)),
            ("3 layers, the middle one scores exactly 0 everywhere, k=2", (*toy((7, 7, 7), zero_layer="layer1"), 2))]


def _greedy_variant(sites, score_layer, k, *, cascade=True, best_first=True, empty_on_zero=True):
    """The greedy path with one of its rules switched off: each usual wrong answer below is one of these."""
    import torch

    from ...neurons.paths import SamplePath
    scores, path, terms = {}, {}, {}
    for site in sites:
        score, term = score_layer(site, dict(path) if cascade else {})
        scores[site.name], terms[site.name] = score, term
        path[site.name] = torch.empty(0, dtype=torch.long) if empty_on_zero and bool((score == 0).all()) else \
            torch.sort(score, descending=best_first, stable=True).indices[:k]
    return SamplePath(scores, path, terms)


def _greedy_point_wise(sites, score_layer, k=5):
    return _greedy_variant(sites, score_layer, k, cascade=False)


def _greedy_lowest(sites, score_layer, k=5):
    return _greedy_variant(sites, score_layer, k, best_first=False)


def _greedy_fills_zero(sites, score_layer, k=5):
    return _greedy_variant(sites, score_layer, k, empty_on_zero=False)


@slips(Slip(_greedy_point_wise, "every layer is scored with an empty path: that is the point-wise search; the cascade "
                                "passes score_layer the path chosen so far, in the layers below"),
       Slip(_greedy_lowest, "these are the k LOWEST scores: the path takes each layer's top k, best first "
                            "(sort descending)"),
       Slip(_greedy_fills_zero, "a layer whose scores are all exactly 0 ranks nothing: leave its path empty "
                                "(torch.empty(0, dtype=torch.long)) instead of taking neurons 0..k−1 by tie-breaking"))
def check_greedy_path(fn: Callable) -> None:
    """Chapter 07: ``fn(sites, score_layer, k)`` → a ``SamplePath`` (or anything with ``.scores``, ``.path`` and
    ``.path_term``, dicts by site name): for each site in order, ``score_layer(site, path_so_far)`` gives
    ``(scores, path_term)`` and the path takes the top k, best first; an all-zero layer gets an empty path."""
    import warnings

    from ...neurons.paths import greedy_path

    def read(f):
        def run(sites, score_layer, k):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # the package warns about an all-zero layer
                result = f(sites, score_layer, k)
            try:
                # the scores and terms are score_layer's own: right when the path it was given is right
                return ({name: [int(i) for i in chosen] for name, chosen in result.path.items()},
                        {name: round(float(term), 4) for name, term in result.path_term.items()})
            except AttributeError:
                raise AssertionError(f"greedy_path must return a SamplePath(scores, path, path_term); got "
                                     f"{type(result).__name__}") from None
        return run

    compare("greedy_path", fn, greedy_path, _greedy_cases(), slips=check_greedy_path.slips, adapt=read)
