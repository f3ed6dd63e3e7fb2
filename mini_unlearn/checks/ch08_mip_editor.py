"""Chapter 08 · MIP-Editor: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_rmisu_loss"]


def _rmisu_cases() -> list[Case]:
    """Hidden states of forget and retain batches (and the input model's), several λ and γ."""
    import torch
    generator = torch.Generator().manual_seed(23)
    cases = []
    for batch, tokens, hidden, lam, gamma in ((2, 3, 4, 5.0, 1.0), (1, 5, 8, 1.0, 0.0), (3, 2, 6, 2.5, 10.0)):
        h_f = torch.randn(batch, tokens, hidden, generator=generator)
        h_f0 = h_f + 0.1 * torch.randn(batch, tokens, hidden, generator=generator)
        h_r = torch.randn(batch, tokens, hidden, generator=generator)
        h_r0 = h_r + 0.3 * torch.randn(batch, tokens, hidden, generator=generator)
        u = torch.rand(hidden, generator=generator)
        u = u / u.norm()
        cases.append((f"{batch}x{tokens}x{hidden} hidden states, lam={lam}, gamma={gamma}",
                       (h_f, h_f0, h_r, h_r0, u, lam, gamma)))
    return cases


def check_rmisu_loss(fn: Callable) -> None:
    """Chapter 08: ``fn(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam, gamma)`` → RMisU's
    representation loss ``mean‖h_f − λ‖h_f^frozen‖u‖² + γ·mean‖h_r − h_r^frozen‖²`` (means over every entry)."""
    from ..methods.rmisu import rmisu_loss

    def as_float(f):
        return lambda *args: float(f(*args))

    compare("rmisu_loss", as_float(fn), as_float(rmisu_loss), _rmisu_cases(), atol=1e-5)
