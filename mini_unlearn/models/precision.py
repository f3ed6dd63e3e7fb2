"""bf16 models, fp32 optimisation: AdamW on fp32 master copies of low-precision weights (chapter 11).

Real checkpoints load in bf16. A bf16 weight keeps 8 bits of mantissa, so an update smaller than
about 1/256 of the weight rounds away to nothing: at the learning rates unlearning uses (1e-5 to
1e-4) most of AdamW's steps would be lost, and its moment estimates would be rounded too. The usual
cure is mixed precision: the model computes in bf16, the optimizer keeps an fp32 *master* copy of
every trainable bf16 weight and its moments in fp32, and after each step the master is rounded back
into the model. :class:`MasterAdamW` does exactly that, and for an fp32 model it is plain AdamW on
the parameters themselves (no copy, the same numbers as before).

Callers clip the model's gradients before :meth:`MasterAdamW.step` as usual (PyTorch accumulates
a bf16 norm in fp32). A weight whose gradient is always 0 (a mask-0
entry of MMUnlearner, a row outside MIP-Editor's paths) never moves: its master keeps the exact
value the bf16 weight had, and rounding it back gives the same bf16 number.

Memory: an fp32 master costs 4 bytes per trainable parameter on top of the bf16 weight (2 bytes),
and AdamW's two fp32 moments 8 more. For a 7 B model trained in full that is 7e9 × 14 B ≈ 98 GB, more
than one 80 GB GPU holds, which is why chapter 11 trains only the masked, path or LoRA parameters of
a large model.
"""
from __future__ import annotations

import torch

LOW_PRECISION = (torch.bfloat16, torch.float16)


class MasterAdamW:
    """AdamW over fp32 masters of ``parameters`` (each low-precision one copied, fp32 ones used as they are)."""

    def __init__(self, parameters, lr: float, weight_decay: float = 0.0, fused: bool = False):
        self.parameters = list(parameters)
        self.masters = [p.detach().float().clone() if p.dtype in LOW_PRECISION else p for p in self.parameters]
        # fused=True: one kernel for every parameter's update (what a large model on a GPU wants)
        self.optimizer = torch.optim.AdamW(self.masters, lr=lr, weight_decay=weight_decay, fused=fused or None)

    @property
    def copies(self) -> int:
        """How many parameters have an fp32 master copy (0 for an fp32 model)."""
        return sum(m is not p for p, m in zip(self.parameters, self.masters))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p, m in zip(self.parameters, self.masters):
            p.grad = None
            m.grad = None

    def step(self) -> None:
        """One AdamW step on the masters with the model's gradients (as fp32), rounded back into the model."""
        for p, m in zip(self.parameters, self.masters):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()
        self.optimizer.step()
        with torch.no_grad():
            for p, m in zip(self.parameters, self.masters):
                if m is not p:
                    p.copy_(m)


__all__ = ["LOW_PRECISION", "MasterAdamW"]
