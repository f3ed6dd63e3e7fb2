"""Chapter 07 · neuron paths: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, compare, slips
from .plug import plugs_into

__all__ = ["check_cascade_path", "check_integrated_gradients", "check_path_score"]


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
# Exercise 7.3 · the greedy path search with the paper's score

class _Site:
    """A stand-in for a NeuronSite: a layer's name and width."""

    def __init__(self, name: str, width: int):
        self.name, self.width = name, width

    def __repr__(self) -> str:
        return f"site {self.name} ({self.width} neurons)"


def _cascade_cases() -> list[Case]:
    """Three or four toy layers whose measured gradients depend on the path chosen below (a coupling
    matrix per pair of layers), a few positions, k = 2 or 3; one case with a layer that has no attributed
    position (its scores are all exactly 0)."""
    import torch
    generator = torch.Generator().manual_seed(31)

    def toy(widths, positions=3, empty_layer=None):
        sites = [_Site(f"layer{i}", w) for i, w in enumerate(widths)]
        steps = {s.name: torch.rand(positions, s.width, generator=generator) / 8 for s in sites}
        base = {s.name: torch.randn(positions, s.width, generator=generator) for s in sites}
        coupling = {(a.name, b.name): torch.randn(a.width, b.width, generator=generator)
                    for i, b in enumerate(sites) for a in sites[:i]}

        def measure(site, path):
            # interpolating the path below shifts the gradients of every layer above it
            names = [*path, site.name]
            grads = {}
            for name in names:
                grads[name] = base[name].clone()
                for earlier, chosen in path.items():
                    if (earlier, name) in coupling:
                        grads[name] += coupling[(earlier, name)][chosen].sum(dim=0)
            rows = slice(0, 0) if site.name == empty_layer else slice(None)   # no attributed position
            return {n: steps[n][rows] for n in names}, {n: grads[n][rows] for n in names}
        return sites, measure
    return [("3 layers of 8 neurons, 3 positions, k=2", (*toy((8, 8, 8)), 2)),
            ("4 layers of 6, 9, 7, 5 neurons, 2 positions, k=3", (*toy((6, 9, 7, 5), positions=2), 3)),
            ("3 layers, 1 position, k=3", (*toy((7, 6, 8), positions=1), 3)),
            ("3 layers, the middle one has no attributed position (every score 0), k=2",
             (*toy((7, 7, 7), empty_layer="layer1"), 2))]


def _cascade_variant(sites, measure, k, *, sums="path", empty_on_zero=True):
    """The paper's search with one of its rules changed: each usual wrong answer below is one of these."""
    import torch

    from ...neurons.paths import SamplePath, path_score, top_k
    scores, path, terms = {}, {}, {}
    for site in sites:
        steps, grads = measure(site, dict(path))
        path_steps = torch.zeros(steps[site.name].shape[0])
        path_grads = torch.zeros_like(path_steps)
        for name, chosen in path.items():
            if sums == "none":
                break
            picked = {"path": chosen, "last": chosen[-1:], "layer": slice(None)}[sums]
            path_steps += steps[name][:, picked].sum(dim=-1)
            path_grads += grads[name][:, picked].sum(dim=-1)
        score = path_score(steps[site.name], grads[site.name], path_steps, path_grads)
        scores[site.name], terms[site.name] = score, float((path_steps * path_grads).sum())
        path[site.name] = torch.empty(0, dtype=torch.long) if empty_on_zero and bool((score == 0).all()) \
            else top_k(score, k)
    return SamplePath(scores, path, terms)


def _cascade_own_only(sites, measure, k=5):
    return _cascade_variant(sites, measure, k, sums="none")


def _cascade_whole_layer(sites, measure, k=5):
    return _cascade_variant(sites, measure, k, sums="layer")


def _cascade_last_only(sites, measure, k=5):
    return _cascade_variant(sites, measure, k, sums="last")


def _cascade_fills_zero(sites, measure, k=5):
    return _cascade_variant(sites, measure, k, empty_on_zero=False)


@slips(Slip(_cascade_own_only, "the path sums are left at zero: each neuron is scored by its own step times its own "
                               "gradient; the paper adds the earlier path's summed steps and gradients (the cross "
                               "terms), summed over the path neurons of every earlier layer"),
       Slip(_cascade_whole_layer, "the path sums run over every neuron of the earlier layers: only the path's "
                                  "neurons enter them (index the columns with path[name])"),
       Slip(_cascade_last_only, "only the last path neuron of each earlier layer enters the sums: that is the "
                                "released code's overwrite; the paper sums over all k of them"),
       Slip(_cascade_fills_zero, "a layer whose scores are all exactly 0 ranks nothing: leave its path empty "
                                 "(torch.empty(0, dtype=torch.long)) instead of taking neurons 0..k−1 by "
                                 "tie-breaking"))
@plugs_into("mini_unlearn.neurons.paths:cascade_path")
def check_cascade_path(fn: Callable) -> None:
    """Chapter 07: ``fn(sites, measure, k)`` → a ``SamplePath`` (or anything with ``.scores``, ``.path`` and
    ``.path_term``, dicts by site name): for each site in order, ``measure(site, path_so_far)`` gives
    ``(steps, grads)``, dicts of ``[positions, width]`` for the site and the earlier path layers; the site is
    scored with the paper's path score (path sums over the path neurons), its path term is Σ path steps ×
    path gradients, and the path takes the top k, best first; an all-zero layer gets an empty path."""
    import warnings

    from ...neurons.paths import cascade_path

    def read(f):
        def run(sites, measure, k):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # the package warns about an all-zero layer
                result = f(sites, measure, k)
            try:
                return {name: ([int(i) for i in result.path[name]], round(float(result.path_term[name]), 4),
                               [round(float(v), 4) for v in result.scores[name]]) for name in result.path}
            except (AttributeError, KeyError, TypeError):
                raise AssertionError(f"cascade_path must return a SamplePath(scores, path, path_term) with an "
                                     f"entry per site; got {type(result).__name__}") from None
        return run

    compare("cascade_path", fn, cascade_path, _cascade_cases(), slips=check_cascade_path.slips, adapt=read)
