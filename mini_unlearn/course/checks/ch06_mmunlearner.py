"""Chapter 06 · MMUnlearner: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, compare, slips
from .plug import plugs_into

__all__ = ["check_interleaved_step", "check_masked_step", "check_saliency_mask", "check_squared_gradients"]


# ---------------------------------------------------------------------------------------------------
# Exercise 6.1 · the mask rule

def _saliency_cases() -> list[Case]:
    """Squared-gradient dictionaries of two weight tensors: random, exact ties, exact zeros, several thresholds."""
    import torch
    generator = torch.Generator().manual_seed(17)

    def saliency(scale):
        return {"fc1.weight": torch.rand(4, 3, generator=generator) * scale, "fc1.bias": torch.rand(4, generator=generator) * scale}
    cases = []
    for threshold in (1.0, 2.0, 0.5):
        cases.append((f"random saliencies, threshold={threshold}, eps=1e-15", (saliency(1.0), saliency(1.0), threshold, 1e-15)))
    same = saliency(1.0)
    cases.append(("equal saliencies (every ratio exactly 1: a tie), threshold=1.0, eps=1e-15",
                  (same, {name: value.clone() for name, value in same.items()}, 1.0, 1e-15)))
    forget, preserve = saliency(1.0), saliency(1.0)
    forget["fc1.bias"][:2] = 0.0
    preserve["fc1.bias"][1:3] = 0.0
    cases.append(("zeros in both (0/0 is decided by eps), threshold=1.0, eps=1e-15", (forget, preserve, 1.0, 1e-15)))
    cases.append(("tiny saliencies against a large eps, threshold=1.0, eps=0.1", (saliency(1e-3), saliency(1e-2), 1.0, 0.1)))
    return cases


def _mask_reversed(forget, preserve, threshold=1.0, eps=1e-15):
    return {name: (preserve[name] + eps) / (f + eps) >= threshold for name, f in forget.items()}


def _mask_without_eps(forget, preserve, threshold=1.0, eps=1e-15):
    return {name: f / preserve[name] >= threshold for name, f in forget.items()}


def _mask_strict(forget, preserve, threshold=1.0, eps=1e-15):
    return {name: (f + eps) / (preserve[name] + eps) > threshold for name, f in forget.items()}


@slips(Slip(_mask_reversed, "the ratio is upside down: a weight is salient when the FORGET saliency is the larger, "
                            "(F_f + ε) / (F_p + ε) ≥ threshold, with F_f on top"),
       Slip(_mask_without_eps, "ε is missing: where both saliencies are 0, 0/0 is NaN and the weight drops out; "
                               "(0 + ε)/(0 + ε) = 1 keeps it"),
       Slip(_mask_strict, "> where ≥ belongs: at threshold 1 a tie (both data sets pull equally hard) is salient"))
def check_saliency_mask(fn: Callable) -> None:
    """Chapter 06: ``fn(forget, preserve, threshold, eps)`` → ``{name: bool mask}``, salient where
    ``(F_f + eps) / (F_p + eps) >= threshold``."""
    import torch

    from ...neurons.saliency import saliency_mask

    def flat(f):
        def run(forget, preserve, threshold, eps):
            masks = f(forget, preserve, threshold, eps)
            if not isinstance(masks, dict) or set(masks) != set(forget):
                raise AssertionError(f"saliency_mask must return a dict with one mask per weight {sorted(forget)}; "
                                     f"got {type(masks).__name__} {sorted(masks) if isinstance(masks, dict) else ''}")
            if any(torch.as_tensor(m).dtype != torch.bool for m in masks.values()):
                raise AssertionError("each mask must be a boolean tensor (True = salient)")
            return torch.cat([torch.as_tensor(masks[name]).flatten().float() for name in sorted(masks)])
        return run

    compare("saliency_mask", fn, saliency_mask, _saliency_cases(), atol=0, slips=check_saliency_mask.slips, adapt=flat)


# ---------------------------------------------------------------------------------------------------
# Exercise 6.2 · squared gradients

def _toy(kind: str, seed: int):
    """A small seeded model, its batches and its loss: what the squared-gradient cases run on."""
    import torch
    from torch import nn
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):        # the learner's random state is left alone
        torch.manual_seed(seed)
        model = nn.Linear(3, 1) if kind == "linear" else nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    if kind == "linear":
        loss = lambda model_, batch: model_(batch["x"]).mean()
        sizes = (2, 1, 3)
        batches = [{"x": torch.randn(n, 3, generator=generator)} for n in sizes]
    else:
        def loss(model_, batch):
            return nn.functional.cross_entropy(model_(batch["x"]), batch["y"])
        sizes = (4, 2, 3, 1) if kind == "mlp" else (3,)
        batches = [{"x": torch.randn(n, 4, generator=generator), "y": torch.randint(0, 3, (n,), generator=generator)}
                   for n in sizes]
    return model, batches, loss


def _squared_cases() -> list[Case]:
    return [("a linear model, loss = mean output, 3 batches, every parameter", ("linear", 3, None)),
            ("a tanh MLP, cross-entropy, 4 batches of 4, 2, 3 and 1 examples, every parameter", ("mlp", 5, None)),
            ("the same MLP, only the first layer's weight and the last layer's bias", ("mlp", 6, ("0.weight", "2.bias"))),
            ("a tanh MLP, cross-entropy, a single batch", ("one", 7, None))]


def _batch_gradients(model, batches, parameters, loss_fn):
    """Each batch's gradients of ``loss_fn`` with respect to ``parameters``, as ``{name: grad}`` dicts."""
    import torch
    return [dict(zip(parameters, torch.autograd.grad(loss_fn(model, batch), list(parameters.values()))))
            for batch in batches]


def _squared_of_mean(model, batches, parameters, loss_fn):
    grads = _batch_gradients(model, batches, parameters, loss_fn)
    return {name: (sum(g[name] for g in grads) / len(grads)).square() for name in parameters}


def _squared_summed(model, batches, parameters, loss_fn):
    grads = _batch_gradients(model, batches, parameters, loss_fn)
    return {name: sum(g[name].square() for g in grads) for name in parameters}


@slips(Slip(_squared_of_mean, "this squares the batches' mean gradient: square each batch's gradient first, then "
                              "average the squares (gradients of opposite sign must not cancel)"),
       Slip(_squared_summed, "a sum where the mean belongs: divide the summed squared gradients by the number of batches"))
def check_squared_gradients(fn: Callable) -> None:
    """Chapter 06: ``fn(model, batches, parameters, loss_fn)`` → ``{name: F}``, for every name of ``parameters``
    the mean over ``batches`` of the squared gradient of ``loss_fn(model, batch)``; no weight changes."""
    import torch

    from ...neurons.saliency import squared_gradients

    def on_toy(f):
        def run(kind, seed, names):
            model, batches, loss = _toy(kind, seed)
            parameters = dict(model.named_parameters())
            if names is not None:
                parameters = {name: parameters[name] for name in names}
            before = [p.detach().clone() for p in model.parameters()]
            scores = f(model, batches, parameters, loss)
            if not isinstance(scores, dict) or set(scores) != set(parameters):
                raise AssertionError(f"squared_gradients must return a dict with one tensor per parameter "
                                     f"{sorted(parameters)}; got {type(scores).__name__} "
                                     f"{sorted(scores) if isinstance(scores, dict) else ''}")
            if not all(torch.equal(p, b) for p, b in zip(model.parameters(), before)):
                raise AssertionError("squared_gradients changed the model's weights: it must only read gradients")
            return torch.cat([torch.as_tensor(scores[name]).detach().double().flatten() for name in sorted(scores)])
        return run

    compare("squared_gradients", fn, squared_gradients, _squared_cases(), atol=1e-6,
            slips=check_squared_gradients.slips, adapt=on_toy)


# ---------------------------------------------------------------------------------------------------
# Exercise 6.3 · the masked update

def _step_cases() -> list[Case]:
    """(seed, optimizer, grad_clip, which parameters carry a mask): the gradient's norm is above the clip
    in the first cases, so clipping matters; old gradients are left on every parameter."""
    return [("SGD, masks on both layers, clip 0.5 (the gradient is clipped)", (11, "sgd", 0.5, ("0.weight", "0.bias", "2.weight"))),
            ("SGD, a mask on the first layer only, clip 0.1", (12, "sgd", 0.1, ("0.weight",))),
            ("Adam, masks on every parameter, clip 1.0", (13, "adam", 1.0, ("0.weight", "0.bias", "2.weight", "2.bias"))),
            ("SGD, masks on both layers, clip 100 (no clipping)", (14, "sgd", 100.0, ("0.weight", "2.weight"))),
            ("SGD, no masks (masks=None): a plain clipped step", (15, "sgd", 0.5, None))]


def _step_setup(seed, optimizer, names):
    """A seeded MLP with stale gradients, its optimizer, masks and a gradient-ascent loss."""
    import torch
    from torch import nn
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):        # the learner's random state is left alone
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    parameters = dict(model.named_parameters())
    for p in parameters.values():
        p.grad = torch.randn(p.shape, generator=generator)         # left over from an earlier step
    masks = None if names is None else {name: torch.rand(parameters[name].shape, generator=generator) < 0.4
                                        for name in names}
    x, y = torch.randn(8, 4, generator=generator), torch.randint(0, 3, (8,), generator=generator)
    loss = -nn.functional.cross_entropy(model(x), y) * 5.0          # ascent, large enough to be clipped
    chosen = (torch.optim.SGD(model.parameters(), lr=0.5) if optimizer == "sgd"
              else torch.optim.Adam(model.parameters(), lr=0.05))
    return model, parameters, loss, chosen, masks


def _step_masks_weights(loss, parameters, optimizer, grad_clip, masks=None):
    import torch
    for p in parameters.values():
        p.grad = None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(parameters.values()), grad_clip)
    optimizer.step()
    with torch.no_grad():
        for name, mask in (masks or {}).items():
            parameters[name].mul_(mask)


def _step_inverted(loss, parameters, optimizer, grad_clip, masks=None):
    import torch
    for p in parameters.values():
        p.grad = None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(parameters.values()), grad_clip)
    for name, mask in (masks or {}).items():
        parameters[name].grad.mul_(~mask)
    optimizer.step()


def _step_mask_then_clip(loss, parameters, optimizer, grad_clip, masks=None):
    import torch
    for p in parameters.values():
        p.grad = None
    loss.backward()
    for name, mask in (masks or {}).items():
        parameters[name].grad.mul_(mask)
    torch.nn.utils.clip_grad_norm_(list(parameters.values()), grad_clip)
    optimizer.step()


def _step_stale(loss, parameters, optimizer, grad_clip, masks=None):
    import torch
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(parameters.values()), grad_clip)
    for name, mask in (masks or {}).items():
        parameters[name].grad.mul_(mask)
    optimizer.step()


@slips(Slip(_step_masks_weights, "the mask multiplies the weights instead of their gradients: that sets every "
                                 "protected weight to 0 instead of leaving it unchanged; mask p.grad before the step"),
       Slip(_step_inverted, "the mask is inverted: True marks a salient weight, the one ascent MAY change; multiply "
                            "the gradient by the mask itself, not by ~mask"),
       Slip(_step_mask_then_clip, "the mask is applied before clipping: clip the whole gradient's norm first, then "
                                  "mask it (as the released code does), so the norm counts the protected weights too"),
       Slip(_step_stale, "the old gradients are not cleared: backward() adds to .grad, so set every p.grad = None "
                         "(or zero it) before loss.backward()"))
def check_masked_step(fn: Callable) -> None:
    """Chapter 06: ``fn(loss, parameters, optimizer, grad_clip, masks)`` — clear the gradients, backpropagate
    ``loss``, clip the gradient norm of all ``parameters`` to ``grad_clip``, multiply each masked
    parameter's gradient by its mask, step ``optimizer``; compared by the weights after the step."""
    import torch

    from ...methods.mmunlearner import masked_step

    def on_toy(f):
        def run(seed, optimizer, grad_clip, names):
            model, parameters, loss, chosen, masks = _step_setup(seed, optimizer, names)
            f(loss, parameters, chosen, grad_clip, masks)
            return torch.cat([p.detach().double().flatten() for p in model.parameters()])
        return run

    compare("masked_step", fn, masked_step, _step_cases(), atol=1e-6, slips=check_masked_step.slips, adapt=on_toy)


# ---------------------------------------------------------------------------------------------------
# Exercise 6.4 · one step of the interleaved loop

def _round_cases() -> list[Case]:
    """(seed, optimizer, masked, mask_retain, retain batches, forget_weight, grad_clip): the optimizers are
    built as the package builds them (the forget one over the masked weights; the retain one over the
    same, or over every weight when the retain steps are unmasked)."""
    return [("Adam, masks on both layers' weights, 2 retain batches, masked retain steps (the paper)",
             (31, "adam", True, True, 2, 1.0, 1.0)),
            ("Adam, the same masks, 2 retain batches, unmasked retain steps (mask_retain=False, the released code)",
             (32, "adam", True, False, 2, 1.0, 1.0)),
            ("SGD, forget_weight=2, clip 0.5, 3 retain batches, masked retain steps", (33, "sgd", True, True, 3, 2.0, 0.5)),
            ("Adam, no retain batches (masked gradient ascent alone)", (34, "adam", True, True, 0, 1.0, 1.0)),
            ("Adam, no masks (masks=None): plain ascent and descent, interleaved", (35, "adam", False, True, 1, 1.0, 1.0))]


def _round_setup(seed, optimizer, masked, mask_retain, n_retain):
    """A seeded MLP, its loss, a forget batch, ``n_retain`` retain batches, masks and the two optimizers."""
    import torch
    from torch import nn
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):        # the learner's random state is left alone
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    parameters = dict(model.named_parameters())

    def batch(n):
        return {"x": torch.randn(n, 4, generator=generator), "y": torch.randint(0, 3, (n,), generator=generator)}
    forget_batch, retain_batches = batch(4), [batch(3) for _ in range(n_retain)]
    masks = ({name: torch.rand(parameters[name].shape, generator=generator) < 0.4 for name in ("0.weight", "2.weight")}
             if masked else None)
    masked_params = [parameters[name] for name in masks] if masks else list(parameters.values())
    retain_params = masked_params if mask_retain else list(parameters.values())

    def make(params):
        return torch.optim.SGD(params, lr=0.5) if optimizer == "sgd" else torch.optim.Adam(params, lr=0.05)
    return model, parameters, forget_batch, retain_batches, masks, make(masked_params), make(retain_params)


def _round_loss(model, batch):
    from torch import nn
    return nn.functional.cross_entropy(model(batch["x"]), batch["y"])


def _round_slip(*, sign=-1.0, shared_optimizer=False, retain_masked=True, retain_first=False):
    """One step of the loop with one usual mistake: the forget loss's ``sign`` (+1: descent), the forget
    optimizer for the retain steps too, retain steps never masked, or the retain steps first."""
    def step(model, forget_batch, retain_batches, parameters, forget_optimizer, retain_optimizer, masks=None, *,
             forget_weight=1.0, grad_clip=1.0, mask_retain=True, loss_fn=_round_loss):
        from ...methods.mmunlearner import masked_step

        def forget():
            forget_ce = loss_fn(model, forget_batch)
            masked_step(sign * forget_weight * forget_ce, parameters, forget_optimizer, grad_clip, masks)
            return forget_ce.detach()

        def retain():
            retain_ces = []
            for batch in retain_batches:
                retain_ce = loss_fn(model, batch)
                masked_step(retain_ce, parameters, forget_optimizer if shared_optimizer else retain_optimizer,
                            grad_clip, masks if mask_retain and retain_masked else None)
                retain_ces.append(retain_ce.detach())
            return retain_ces
        if retain_first:
            retain_ces = retain()
            return forget(), retain_ces
        forget_ce = forget()
        return forget_ce, retain()
    return step


_round_descends = _round_slip(sign=1.0)
_round_one_optimizer = _round_slip(shared_optimizer=True)
_round_retain_unmasked = _round_slip(retain_masked=False)
_round_retain_first = _round_slip(retain_first=True)


@plugs_into("mini_unlearn.methods.mmunlearner:interleaved_step")
@slips(Slip(_round_descends, "the forget step descends: MMUnlearner ASCENDS on the forget batch, so the loss it "
                             "minimises is -forget_weight * CE"),
       Slip(_round_one_optimizer, "the retain steps use the forget optimizer: forget and retain steps keep separate "
                                  "optimizer states, so step the retain batches with retain_optimizer"),
       Slip(_round_retain_unmasked, "the retain steps are always unmasked: the paper masks the whole update, so pass "
                                    "masks to the retain steps when mask_retain is True (None only when it is False)"),
       Slip(_round_retain_first, "the retain steps come first: each step of the loop is ONE forget step, then the "
                                 "retain steps"))
def check_interleaved_step(fn: Callable) -> None:
    """Chapter 06: ``fn(model, forget_batch, retain_batches, parameters, forget_optimizer, retain_optimizer,
    masks, *, forget_weight, grad_clip, mask_retain, loss_fn)`` — a masked ascent step on the forget batch,
    then a descent step on each retain batch, each through ``masked_step``; returns the forget cross-entropy
    and the list of retain ones. Compared by the weights after the step and the returned losses."""
    import torch

    from ...methods.mmunlearner import interleaved_step

    def on_toy(f):
        def run(seed, optimizer, masked, mask_retain, n_retain, forget_weight, grad_clip):
            model, parameters, forget_batch, retain_batches, masks, forget_opt, retain_opt = _round_setup(
                seed, optimizer, masked, mask_retain, n_retain)
            out = f(model, forget_batch, iter(retain_batches), parameters, forget_opt, retain_opt, masks,
                    forget_weight=forget_weight, grad_clip=grad_clip, mask_retain=mask_retain, loss_fn=_round_loss)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], list)):
                raise AssertionError("interleaved_step must return (forget_ce, [retain_ce, ...]): the forget "
                                     f"loss and a list of the retain losses; got {type(out).__name__}")
            forget_ce, retain_ces = out
            if len(retain_ces) != n_retain:
                raise AssertionError(f"{n_retain} retain batches, so {n_retain} retain losses; got {len(retain_ces)}")
            losses = [torch.as_tensor(ce).detach().double().reshape(1) for ce in (forget_ce, *retain_ces)]
            return torch.cat([p.detach().double().flatten() for p in model.parameters()] + losses)
        return run

    compare("interleaved_step", fn, interleaved_step, _round_cases(), atol=1e-6, slips=check_interleaved_step.slips,
            adapt=on_toy)
