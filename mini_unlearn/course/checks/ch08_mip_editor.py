"""Chapter 08 · MIP-Editor: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, as_list, compare, slips
from .plug import plugs_into

__all__ = ["check_control_vector", "check_rmisu_loss", "check_rmisu_step", "check_row_mask"]


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


# -- one RMisU edit step along the path rows -----------------------------------------------------------

_STEP_BENCH: dict = {}


def _step_world():
    """An untrained tiny LLaVA for a four-person benchmark, a forget batch (image+text and text-only
    pairs) and a retain batch; built once, then copied per run."""
    if not _STEP_BENCH:
        import random

        import torch

        from ...bench import make_benchmark
        from ...models import VLM, build_model, build_processor, build_tokenizer, get_preset
        from ...models.train_data import one_pass_batches
        from ...methods.data import unlearning_sets

        bench = make_benchmark(n_profiles=4, seed=0, n_utility=1)
        preset = get_preset("tiny")
        tokenizer = build_tokenizer(bench, preset.vocab_size)
        with torch.random.fork_rng(devices=[]):        # the learner's random state is left alone
            vlm = VLM(build_model(preset, tokenizer, seed=0), build_processor(tokenizer, preset), {})
        forget, retain = unlearning_sets(bench, 0.25, "both")
        rng = random.Random(0)
        forget_batch = next(iter(one_pass_batches(vlm.processor, rng.sample(forget, 4), 4)))
        retain_batch = next(iter(one_pass_batches(vlm.processor, rng.sample(retain, 4), 4)))
        _STEP_BENCH.update(vlm=vlm, forget=forget_batch, retain=retain_batch)
    return _STEP_BENCH


def _step_cases() -> list[Case]:
    """(seed, optimizer, config fields, fixed target norm, path rows or None): a model already moved away
    from the frozen one, stale gradients on every parameter."""
    return [("λ=5, γ=1, CE weight 1 (the defaults), path rows in both towers, SGD, clip 1.0",
             (31, "sgd", {}, None, True)),
            ("λ=2, γ=3, CE weight 0.5, mse_positions='all', Adam, clip 0.05 (the gradient is clipped)",
             (32, "adam", {"lam": 2.0, "gamma": 3.0, "retain_ce_weight": 0.5, "mse_positions": "all",
                           "grad_clip": 0.05}, None, True)),
            ("a fixed target norm (target_norm='first_batch': norm=0.8), SGD, clip 100 (no clipping)",
             (33, "sgd", {"grad_clip": 100.0}, 0.8, True)),
            ("masks=None (localise='none'): every producer entry trains, SGD, clip 1.0",
             (34, "sgd", {}, None, False))]


def _run_step(fn, seed, optimizer, fields, norm, rows):
    """Run ``fn`` once on a fresh copy of the world; the returned loss terms, then how far the path rows
    and the other rows moved, then a seeded checksum of the producers' weights after the step."""
    import torch

    from ...methods.mip_editor import MIPEditorConfig, path_rows
    from ...methods.rmisu import control_vector, resolve_layer
    from ...models.anatomy import find_mlp_neurons

    world = _step_world()
    frozen = world["vlm"].model
    model = world["vlm"].copy().model
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():                          # the edited model has already moved from the frozen one
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    sites = find_mlp_neurons(model)
    chosen = {site.name: torch.randperm(site.width, generator=generator)[:2 + i % 2] for i, site in enumerate(sites)}
    parameters, masks = path_rows(model, chosen)
    if not rows:
        masks = None
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)         # left over from an earlier step
    before = [p.detach().clone() for p in parameters]
    config = MIPEditorConfig(**fields)
    chosen_optimizer = (torch.optim.SGD(parameters, lr=0.5) if optimizer == "sgd"
                        else torch.optim.Adam(parameters, lr=1e-3))
    layer = resolve_layer(model, None)
    u = control_vector(model.config.text_config.hidden_size, seed)
    losses = fn(model, frozen, world["forget"], world["retain"], chosen_optimizer, parameters, masks, config,
                layer, u, None if norm is None else torch.tensor(norm))
    if not isinstance(losses, dict) or set(losses) != {"loss", "forget_mse", "retain_mse", "retain_ce"}:
        raise AssertionError("rmisu_step must return a dict with 'loss', 'forget_mse', 'retain_mse' and "
                             f"'retain_ce'; got {type(losses).__name__} {sorted(losses) if isinstance(losses, dict) else ''}")
    on_path = off_path = checksum = 0.0
    for p, b in zip(parameters, before):
        moved = (p.detach() - b).abs().double()
        mask = masks[id(p)] if masks is not None else torch.ones(p.shape[0], *([1] * (p.dim() - 1)), dtype=torch.bool)
        on_path += float((moved * mask).sum())
        off_path += float((moved * ~mask).sum())
        checksum += float((p.detach().double() * torch.rand(p.shape, generator=generator, dtype=torch.float64)).sum())
    terms = [float(torch.as_tensor(losses[name]).detach()) for name in ("loss", "forget_mse", "retain_mse", "retain_ce")]
    return torch.tensor([*terms, on_path, off_path, checksum], dtype=torch.float64)


def _step_hidden(model, frozen, forget_batch, retain_batch, layer):
    from ...methods.rmisu import capture_hidden, hidden_states
    from ...models.train import answer_loss
    with capture_hidden(model, layer) as store:
        model(**{k: v for k, v in forget_batch.items() if k != "labels"})
        h_forget = store["h"]
        retain_ce = answer_loss(model, retain_batch)
        h_retain = store["h"]
    import torch
    with torch.no_grad():
        h_retain_frozen = hidden_states(frozen, retain_batch, layer)
        h_forget_frozen = hidden_states(frozen, forget_batch, layer)
    return h_forget, h_retain, retain_ce, h_forget_frozen, h_retain_frozen


def _step_variant(model, frozen, forget_batch, retain_batch, optimizer, parameters, masks, config, layer, u,
                  norm=None, *, mask_rows=True, frozen_states=True, with_ce=True, clear=True):
    import torch

    from ...methods.rmisu import mse_mask, retain_representation_loss, rmisu_forget_loss
    h_f, h_r, retain_ce, h_f0, h_r0 = _step_hidden(model, frozen, forget_batch, retain_batch, layer)
    if not frozen_states:
        h_f0, h_r0 = h_f.detach(), h_r.detach()
    forget_term = rmisu_forget_loss(h_f, h_f0, u, config.lam, mse_mask(forget_batch["attention_mask"],
                                                                      config.mse_positions), norm=norm)
    retain_term = retain_representation_loss(h_r, h_r0, mse_mask(retain_batch["attention_mask"], config.mse_positions))
    loss = forget_term + config.gamma * retain_term + (config.retain_ce_weight * retain_ce if with_ce else 0.0)
    if clear:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for p in parameters:
        if mask_rows and masks is not None and id(p) in masks and p.grad is not None:
            p.grad.mul_(masks[id(p)])
    torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    optimizer.step()
    return {"loss": loss, "forget_mse": forget_term, "retain_mse": retain_term, "retain_ce": retain_ce}


def _step_unmasked(*args, **kwargs):
    return _step_variant(*args, **kwargs, mask_rows=False)


def _step_edited_states(*args, **kwargs):
    return _step_variant(*args, **kwargs, frozen_states=False)


def _step_without_ce(*args, **kwargs):
    return _step_variant(*args, **kwargs, with_ce=False)


def _step_stale(*args, **kwargs):
    return _step_variant(*args, **kwargs, clear=False)


@plugs_into("mini_unlearn.methods.mip_editor:rmisu_step")
@slips(Slip(_step_unmasked, "the gradients are not masked: multiply each producer's gradient by its row mask "
                            "(masks[id(p)]) before the step, or every row of gate_proj/up_proj/fc1 moves, not only "
                            "the path neurons'"),
       Slip(_step_edited_states, "the reference hidden states come from the model being edited: read h_f^frozen "
                                 "and h_r^frozen from `frozen` (the input model), under torch.no_grad()"),
       Slip(_step_without_ce, "the retain cross-entropy is missing: RMisU's loss adds "
                              "config.retain_ce_weight × the retain batch's answer loss"),
       Slip(_step_stale, "the old gradients are not cleared: backward() adds to .grad, so call "
                         "optimizer.zero_grad(set_to_none=True) before loss.backward()"))
def check_rmisu_step(fn: Callable) -> None:
    """Chapter 08: ``fn(model, frozen, forget_batch, retain_batch, optimizer, parameters, masks, config,
    layer, u, norm)`` — one RMisU edit step along the path rows: ``h`` after ``layer`` from the edited
    and the frozen model, the RMisU loss with the retain CE, backward, each masked gradient multiplied
    by its row mask, the norm clipped to ``config.grad_clip``, one optimizer step; returns the loss
    terms. Compared by the terms and the weights after the step, on a tiny untrained LLaVA."""
    from ...methods.mip_editor import rmisu_step

    def on_tiny(f):
        return lambda *case: _run_step(f, *case)

    compare("rmisu_step", fn, rmisu_step, _step_cases(), atol=1e-5, slips=check_rmisu_step.slips, adapt=on_tiny)
