"""Chapter 08 · MIP-Editor: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, as_list, compare, slips

__all__ = ["check_control_vector", "check_rmisu_loss", "check_row_mask"]


# -- the control vector u ------------------------------------------------------------------------------

def _control_vector_cases() -> list[Case]:
    """Hidden sizes from 1 to 64 and several seeds."""
    return [(f"hidden_size={n}, seed={seed}", (n, seed)) for n, seed in ((8, 0), (16, 3), (64, 0), (1, 5), (32, 11))]


def _control_vector_unnormalised(hidden_size, seed=0):
    import torch
    return torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))


def _control_vector_l1(hidden_size, seed=0):
    u = _control_vector_unnormalised(hidden_size, seed)
    return u / u.sum()


def _control_vector_gaussian(hidden_size, seed=0):
    import torch
    u = torch.randn(hidden_size, generator=torch.Generator().manual_seed(seed))
    return u / u.norm()


@slips(Slip(_control_vector_unnormalised, "u is not normalised: divide the uniform draw by its Euclidean norm "
                                          "(u / u.norm()), so that the target λ‖h‖u has norm λ‖h‖"),
       Slip(_control_vector_l1, "u is divided by its sum (the L1 norm): a unit vector has Euclidean norm 1, "
                                "so divide by u.norm()"),
       Slip(_control_vector_gaussian, "u is drawn from a Gaussian (torch.randn); RMU and RMisU draw it uniform in "
                                      "[0, 1) (torch.rand), so every entry is non-negative"))
def check_control_vector(fn: Callable) -> None:
    """Chapter 08: ``fn(hidden_size, seed)`` → the fixed random direction ``u``: ``torch.rand(hidden_size)`` from a
    generator seeded with ``seed``, divided by its Euclidean norm."""
    from ...methods.rmisu import control_vector

    compare("control_vector", fn, control_vector, _control_vector_cases(), atol=1e-6,
            slips=check_control_vector.slips)


# -- the RMisU loss ------------------------------------------------------------------------------------

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


def _rmisu_summed(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam=5.0, gamma=1.0):
    target = lam * h_forget_frozen.norm(dim=-1, keepdim=True) * u
    return ((h_forget - target) ** 2).sum() + gamma * ((h_retain - h_retain_frozen) ** 2).sum()


def _rmisu_without_norm(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam=5.0, gamma=1.0):
    return ((h_forget - lam * u) ** 2).mean() + gamma * ((h_retain - h_retain_frozen) ** 2).mean()


def _rmisu_trained_norm(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam=5.0, gamma=1.0):
    target = lam * h_forget.norm(dim=-1, keepdim=True) * u
    return ((h_forget - target) ** 2).mean() + gamma * ((h_retain - h_retain_frozen) ** 2).mean()


@slips(Slip(_rmisu_summed, "the squared errors are summed; RMisU takes their mean over every entry (tokens and "
                           "hidden units), as F.mse_loss does"),
       Slip(_rmisu_without_norm, "the target is λ·u without the norm: RMisU's target is λ‖h_f^0‖u, each token's "
                                 "input-model norm times λ times u"),
       Slip(_rmisu_trained_norm, "the target's norm is read from h_forget, the model being trained: take it from "
                                 "h_forget_frozen, or the target chases its own norm and grows without bound"))
def check_rmisu_loss(fn: Callable) -> None:
    """Chapter 08: ``fn(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam, gamma)`` → RMisU's
    representation loss ``mean‖h_f − λ‖h_f^frozen‖u‖² + γ·mean‖h_r − h_r^frozen‖²`` (means over every entry)."""
    from ...methods.rmisu import rmisu_loss

    compare("rmisu_loss", fn, rmisu_loss, _rmisu_cases(), atol=1e-5, slips=check_rmisu_loss.slips, adapt=as_float)


# -- the row mask --------------------------------------------------------------------------------------

def _row_mask_cases() -> list[Case]:
    """Weights [neurons, in] (wide, tall, square) and a bias [neurons], with a few chosen neurons each."""
    import torch
    return [("a 6x4 weight, neurons [0, 3]", (torch.zeros(6, 4), torch.tensor([0, 3]))),
            ("a 3x8 weight, neuron [2]", (torch.zeros(3, 8), torch.tensor([2]))),
            ("a 5x5 weight, neurons [4, 1]", (torch.zeros(5, 5), torch.tensor([4, 1]))),
            ("a bias of 6, neurons [1, 2, 5]", (torch.zeros(6), torch.tensor([1, 2, 5])))]


def _row_mask_columns(parameter, neurons):
    import torch
    columns = torch.zeros(parameter.shape[-1], dtype=torch.bool)
    columns[neurons] = True
    return columns.view(*([1] * (parameter.dim() - 1)), -1)


def _row_mask_inverted(parameter, neurons):
    from ...methods.mip_editor import row_mask
    return ~row_mask(parameter, neurons)


def _row_mask_full(parameter, neurons):
    import torch
    mask = torch.zeros(parameter.shape, dtype=torch.bool)
    mask[neurons] = True
    return mask


@slips(Slip(_row_mask_columns, "the mask marks columns: neuron i is computed by ROW i of the producing weight "
                               "[neurons, in], so mark dimension 0 (shape [rows, 1])"),
       Slip(_row_mask_inverted, "the mask is inverted: True must mark the path neurons' rows (the only ones that "
                                "may change), False every other row"),
       Slip(_row_mask_full, "the mask has the weight's full shape; return one entry per row, shape [rows, 1] "
                            "([rows] for a bias), which broadcasts over the row"))
def check_row_mask(fn: Callable) -> None:
    """Chapter 08: ``fn(parameter, neurons)`` → a boolean mask of shape ``[rows, 1, …]`` (``[rows]`` for a bias),
    True on the rows of ``parameter`` that the ``neurons`` own."""
    from ...methods.mip_editor import row_mask

    compare("row_mask", fn, row_mask, _row_mask_cases(), slips=check_row_mask.slips, adapt=as_list)
