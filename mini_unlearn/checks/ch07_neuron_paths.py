"""Chapter 07 · neuron paths: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_integrated_gradients"]


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


def check_integrated_gradients(fn: Callable) -> None:
    """Chapter 07: ``fn(f, a, m)`` → per-coordinate integrated gradients of ``f`` at ``a`` from 0, with the right
    Riemann sum ``a · (1/m) Σ_{k=1..m} ∇f(k/m · a)``."""
    from ..neurons.paths import integrated_gradients
    compare("integrated_gradients", fn, lambda f, a, m: integrated_gradients(f, a, m), _ig_cases(), atol=1e-8)
