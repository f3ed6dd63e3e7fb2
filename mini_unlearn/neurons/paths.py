"""Neuron paths through the layers: MIP-Editor's IGI and IFI attribution (Li et al., AAAI 2026; chapter 07).

MANU (chapter 05) scores each neuron on its own. MIP-Editor follows the knowledge **across layers**:
a path picks the top-k neurons of layer 0, then the top-k of layer 1 *given* the path so far, and so on.

**Integrated gradients.** Interpolate a neuron's activation ``w`` linearly from 0 to its value in m
steps (``w̃ = w/m`` is the step size, ``α_k = k/m``); integrated gradients split an objective's change
``F(w) − F(0)`` among the interpolated neurons::

    IG(i) = w̃_i · Σ_{k=1..m} ∂F/∂w_i |_{α_k · w}          (right Riemann sum, m steps)

**The paper's path scores** (``variant="paper"``, the default). For layer n the candidate neuron i and
the path neurons already chosen in layers < n form a path ``P``; all of them are interpolated together
(all of layer n's neurons and the earlier path; every other neuron keeps its value) and::

    IGI(i) = (Σ_{j∈P} w̃_j) · (Σ_k Σ_{l∈P} ∂F/∂w_l)          the path's summed step sizes × its summed gradients
    IFI(i) = (Σ_{j∈P} z̃_j) · (Σ_k Σ_{l∈P} (∂G/∂z_l)²)      the same with squared gradients (a diagonal Fisher)

So a candidate's score is its own integrated gradient **plus cross terms**: its step size times the
earlier path's gradients, and the earlier path's step sizes times its gradient. A neuron whose
activation is large where the path's gradient is large moves up — the path shapes the ranking.
The formulas are per token; with several attributed positions (every answer position, every image
token) they are applied at each position and summed. ``F`` is the answer's log-likelihood of the
text-only question (IGI, language-model MLP neurons, at the positions that predict the answer);
``G`` the answer's log-likelihood of the image+text question (IFI, vision-tower MLP neurons, at every
image token). The m interpolation steps run as **one batch** of m copies: one forward and one backward
pass per layer.

**``variant="neuron_ig"``**: each neuron's own integrated gradient, with a gate ``g`` on the
activation (``a → g·a``) that scales the layer and the earlier path jointly — no cross terms. The path
then acts only through the joint scaling (its share is reported as ``path_term``) and, on the course
model, ranks almost as the point-wise attribution does; chapter 07 compares the two.

**``variant="released"``** reproduces the released code (``ig.py``, ``fisher.py``; book/appendix/mip_editor.md,
'Localisation: IGI and IFI' and 'Position 0, the objective, and the borrowed CLS gradient'):
the same product formula, at **sequence position 0** only (the attention-sink ``<s>`` token; for the
vision tower the CLS token), the left Riemann sum (``k = 0..m−1``), the objective is the loss over the
**whole sequence** (every non-pad token), only the **last** path neuron of each earlier layer enters
the sums (a loop overwrites instead of accumulating), IFI squares the gradient **z-scored per neuron
across the m steps** — so ``Σ_k z_k² = m − 1`` for every neuron and the released IFI ranks by the
activation alone (:func:`zscore_fisher` shows it) — and the last vision layer, whose CLS token LLaVA
drops, borrows the previous layer's gradients as the released code does for LLaVA. Two more details
of the released code, kept here:

* **Earlier path layers are written whole.** At position 0 the released code overwrites *every*
  neuron of each earlier path layer: its path neurons with ``α_k ×`` their clean value, all the others
  with their clean value. Those others are then constants — they do not follow the interpolated
  layers below, and no gradient passes through them. (The paper variant leaves them live: every other
  neuron "keeps its value" as the model computes it. With two language layers the two agree, since
  nothing below layer 0 is interpolated; from the third layer on they differ.)
* **One mean over the m copies.** The released code differentiates ``output.loss`` of the m-copy
  batch, the mean over the copies, so its gradients — and the IGI scores — are ``1/m`` of those of
  the summed objective the other variants use. The released variant differentiates the same mean.
  (IFI's z-score does not depend on the scale.)

**Point-wise** (``cascade=False``): each layer interpolated alone, no earlier path — MANU-like, for the
chapter's "path vs point" comparison. Per layer the path is the top-k by score (k = 5); paths of
several samples are united per layer. A layer whose scores are all zero has no ranking: it gets an
empty path and a warning, never neurons 0..k−1 by tie-breaking.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import distributed, validate
from ..models import sharding
from ..models.anatomy import NeuronSite, find_mlp_neurons
from ..models.families import packed_pixels
from ..models.train import answer_logits, sequence_log_probs, token_cross_entropy
from ..models.train_data import IGNORE_INDEX, one_pass_batches, sequence_labels
from ..text import fit

BRANCHES: dict[str, str] = {"igi": "language", "ifi": "vision"}     # branch → the tower it attributes
VARIANTS: tuple[str, ...] = ("paper", "neuron_ig", "released")
K, M = 5, 8


def require_k_m(k, m) -> None:
    validate.positive_int(k, "k", hint="neurons per layer")
    validate.positive_int(m, "m", hint="interpolation steps")


def require_variant(variant: str) -> str:
    return validate.one_of(variant, "variant", VARIANTS)


def tower_sites(model, tower: str) -> list[NeuronSite]:
    """The MLP neuron sites of one tower, in layer order."""
    if tower not in ("vision", "language"):
        raise ValueError(f"tower must be 'vision' or 'language'; got {tower!r}")
    return sorted((s for s in find_mlp_neurons(model) if s.tower == tower), key=lambda s: s.layer)


def alphas(m: int, variant: str = "paper") -> torch.Tensor:
    """The m interpolation points: ``k/m`` for k = 1..m (paper), or k = 0..m−1 (released, left sum)."""
    require_k_m(1, m)
    start = 0 if require_variant(variant) == "released" else 1
    return torch.arange(start, start + m, dtype=torch.float32) / m


def zscore_fisher(gradients: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
    """The released IFI's per-neuron statistic: ``Σ_k z_k²`` with ``z`` the gradients z-scored across the
    m steps (dim 0, unbiased std). It equals m − 1 for every neuron whose gradients vary, and 0 for the rest.

    "Vary" means a spread above ``rtol`` × the gradients' mean magnitude: m copies that differ only by
    rounding (batched kernels need not treat identical rows identically) count as constant, so the
    result does not depend on the processor's thread count."""
    centred = gradients - gradients.mean(dim=0, keepdim=True)
    std = gradients.std(dim=0, keepdim=True)
    varies = std > rtol * gradients.abs().mean(dim=0, keepdim=True)
    z = torch.where(varies, centred / std.clamp(min=torch.finfo(gradients.dtype).tiny), torch.zeros_like(centred))
    return (z ** 2).sum(dim=0)   # a neuron whose gradient never varies (e.g. always 0) gets 0


def integrated_gradients(f, a: torch.Tensor, m: int = M, variant: str = "paper") -> torch.Tensor:
    """Integrated gradients of ``f`` at ``a`` from the zero baseline, every coordinate scaled together::

        IG_i = a_i · (1/m) Σ_k ∂f/∂x_i |_{x = α_k · a}        (α_k from :func:`alphas`)

    ``f`` maps a batch of points ``[m, n]`` to ``[m]`` values; the m points go through it in one call.
    As m grows, ``IG.sum()`` tends to ``f(a) − f(0)`` (completeness).
    """
    require_k_m(1, m)
    a = torch.as_tensor(a, dtype=torch.float64)
    points = (alphas(m, variant).to(a.dtype)[:, None] * a[None, :]).requires_grad_(True)
    grads, = torch.autograd.grad(f(points).sum(), points)
    return a * grads.mean(dim=0)


# ---------------------------------------------------------------------------------------------------
# Gates on the neuron activations

@contextmanager
def pre_hooks(model, hooks: dict):
    """Within the block, ``hooks[name]`` is a forward pre-hook on the submodule ``name``."""
    handles = [model.get_submodule(name).register_forward_pre_hook(hook) for name, hook in hooks.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def gated(model, gates: dict[str, torch.Tensor], positions: dict[str, torch.Tensor]):
    """Within the block, the input of each site's consumer is ``a · g`` at ``positions``.

    ``gates[name]``: ``[batch, width]``; ``positions[name]``: a bool ``[batch, tokens]`` (or
    ``[tokens]``) mask of the token positions the gate applies to. Other positions pass unchanged.
    """
    def hook(_module, args, gate, where):
        a = as_rows(args[0], gate.shape[0])
        mask = where if where.dim() == 2 else where.expand(a.shape[0], -1)
        factor = torch.where(mask[..., None], gate[:, None, :].to(a.dtype), torch.ones((), dtype=a.dtype))
        return ((a * factor).view_as(args[0]),) + tuple(args[1:])
    with pre_hooks(model, {name: partial(hook, gate=gate, where=positions[name]) for name, gate in gates.items()}):
        yield


def answer_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[batch, tokens]``: True at the positions whose output predicts an answer token."""
    scored = batch["labels"] != IGNORE_INDEX
    predicting = torch.zeros_like(scored)
    predicting[:, :-1] = scored[:, 1:]
    return predicting


def first_real_position(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[batch, tokens]``: True at each row's first real token (the released code's position 0)."""
    mask = batch["attention_mask"].bool()
    first = mask.long().argmax(dim=1)
    out = torch.zeros_like(mask)
    out[torch.arange(mask.shape[0]), first] = True
    return out


def vision_positions(n_tokens: int, variant: str) -> torch.Tensor:
    """Vision-tower token positions: every token (paper), or the CLS token only (released)."""
    where = torch.ones(n_tokens, dtype=torch.bool)
    if variant == "released":
        where[1:] = False
    return where


def repeat_batch(batch: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """m copies of a one-sample batch (pixel rows repeated as whole images, or as whole patch sets when the
    family packs them: :func:`~mini_unlearn.models.families.packed_pixels`)."""
    sizes = {value.shape[0] for name, value in batch.items() if not (name == "pixel_values" and packed_pixels(batch))}
    if sizes != {1}:
        raise ValueError(f"path attribution takes one sample at a time; got batch sizes {sorted(sizes)}")
    return {name: value.repeat(m, *([1] * (value.dim() - 1))) for name, value in batch.items()}


def first_copy(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The first of the identical copies :func:`repeat_batch` made."""
    if not packed_pixels(batch):
        return {name: value[:1] for name, value in batch.items()}
    rows = batch["input_ids"].shape[0]
    return {name: value[:len(value) // rows] if name == "pixel_values" else value[:1] for name, value in batch.items()}


def as_rows(a: torch.Tensor, rows: int) -> torch.Tensor:
    """Neuron activations as ``[rows, tokens, width]``. Qwen-VL's vision tower runs every image's patches
    as one ``[patches, width]`` sequence; for ``rows`` copies of one image it splits evenly."""
    return a if a.dim() == 3 else a.view(rows, -1, a.shape[-1])


def objective(model, batch: dict[str, torch.Tensor], variant: str) -> torch.Tensor:
    """Per copy: the answer's log-likelihood (paper, neuron_ig), or the released code's ``output.loss``:
    the mean cross-entropy over every non-pad token of the sequence (prompt, image tokens and answer)."""
    if require_variant(variant) == "released":
        labels = sequence_labels(batch)["labels"]
        inputs = {name: value for name, value in batch.items() if name != "labels"}
        logits = model(**inputs).logits[:, :-1]
        return torch.stack([token_cross_entropy(logits[i:i + 1], labels[i:i + 1, 1:]) for i in range(len(labels))])
    return sequence_log_probs(*answer_logits(model, batch))


# ---------------------------------------------------------------------------------------------------
# One sample

@dataclass
class SamplePath:
    """One sample's attribution: per site the neuron scores and the path's top-k, plus the path term."""

    scores: dict[str, torch.Tensor]          # site name → [width] score of each neuron of that layer
    path: dict[str, torch.Tensor]            # site name → the k chosen neuron indices, best first
    path_term: dict[str, float]              # site name → the earlier path's share under this layer's scaling


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The indices of the k highest scores, best first (ties to the lower index)."""
    return torch.sort(scores, descending=True, stable=True).indices[:k]


def greedy_path(sites, score_layer, k: int = K) -> SamplePath:
    """The greedy layer-wise search: for each site in order, ``score_layer(site, path_so_far)`` returns
    ``(scores, path_term)``; the path takes that layer's top-k and moves on."""
    require_k_m(k, 1)
    scores, path, terms = {}, {}, {}
    for site in sites:
        score, term = score_layer(site, dict(path))
        scores[site.name], terms[site.name] = score, term
        if bool((score == 0).all()):
            warnings.warn(f"{site.name}: every neuron scores exactly 0, so the scores rank nothing (the objective does "
                          f"not depend on this layer at the attributed positions); its path is left empty rather "
                          f"than filled with neurons 0..{k - 1} by tie-breaking", stacklevel=2)
            path[site.name] = torch.empty(0, dtype=torch.long)
        else:
            path[site.name] = top_k(score, k)
    return SamplePath(scores, path, terms)


def attribute_sample(model, batch: dict[str, torch.Tensor], sites: list[NeuronSite], *, k: int = K, m: int = M,
                     fisher: bool = False, cascade: bool = True, variant: str = "paper", objective_fn=None,
                     positions: dict[str, torch.Tensor] | None = None) -> SamplePath:
    """Greedy layer-wise path attribution of one sample (see the module docstring).

    ``fisher=False``: IGI (gradients); ``True``: IFI (squared gradients). ``cascade=False``:
    point-wise — each layer interpolated alone. ``objective_fn(model, batch)`` → one value per copy
    and ``positions`` (site name → bool token mask) default to the VLM's (:func:`objective`; answer
    or image positions, position 0 for the released variant).
    """
    require_k_m(k, m)
    require_variant(variant)
    if not sites:
        raise ValueError("sites is empty: nothing to attribute")
    device = next(model.parameters()).device
    batch = repeat_batch({name: value.to(device) for name, value in batch.items()}, m)
    if objective_fn is None:
        if sites[0].tower == "vision" and "pixel_values" not in batch:
            raise ValueError("IFI attributes vision neurons: the sample needs an image (pixel_values)")
        objective_fn = lambda model_, batch_: objective(model_, batch_, variant)
    where = positions if positions is not None else _positions(model, batch, sites, variant)
    options = dict(m=m, fisher=fisher, cascade=cascade, variant=variant)
    was_training = model.training
    model.eval()
    try:
        if variant == "neuron_ig":
            score_layer = _gate_scorer(model, batch, sites, objective_fn, where, **options)
        elif variant == "paper" and cascade:        # the paper's search: chapter 07's exercise plugs in here
            return cascade_path(sites, _path_measure(model, batch, sites, objective_fn, where, m=m, fisher=fisher,
                                                     variant=variant), k)
        else:
            score_layer = _path_scorer(model, batch, sites, objective_fn, where, **options)
        return greedy_path(sites, score_layer, k)
    finally:
        model.train(was_training)


def _gate_scorer(model, batch, sites, objective_fn, where, *, m, fisher, cascade, variant):
    """``variant="neuron_ig"``: each neuron's own integrated (squared) gradient under the joint gate."""
    device = next(model.parameters()).device
    steps = alphas(m, variant).to(device)

    def score_layer(site, path):
        gates = {}
        for previous in (s for s in sites if s.name in path) if cascade else ():
            gate = torch.ones(m, previous.width, device=device)
            gate[:, path[previous.name]] = steps[:, None]
            gates[previous.name] = gate.requires_grad_(True)
        gates[site.name] = steps[:, None].expand(m, site.width).clone().requires_grad_(True)
        with gated(model, gates, where):
            value = objective_fn(model, batch)
        grads = torch.autograd.grad(value.sum(), list(gates.values()), allow_unused=True)
        grads = {name: (g if g is not None else torch.zeros_like(gates[name])) for name, g in zip(gates, grads)}
        own = grads.pop(site.name)
        score = (own ** 2).mean(dim=0) if fisher else own.mean(dim=0)
        term = sum(float((g[:, path[name]] ** 2).mean(dim=0).sum() if fisher else g[:, path[name]].mean(dim=0).sum())
                   for name, g in grads.items())
        return score.detach().cpu(), term
    return score_layer


def path_score(steps: torch.Tensor, grads: torch.Tensor, path_steps: torch.Tensor, path_grads: torch.Tensor
               ) -> torch.Tensor:
    """The paper's IGI / IFI of every neuron of a layer, per attributed position and summed over them::

        score_i = Σ_pos (w̃_i + Σ_{j∈P} w̃_j) · (g_i + Σ_{l∈P} g_l)

    ``steps``, ``grads``: ``[positions, width]`` — each neuron's step size ``w̃ = w/m`` and its gradient
    summed over the m steps (for IFI, the squared gradient); ``path_steps``, ``path_grads``:
    ``[positions]`` — the same, summed over the path's neurons in the earlier layers (zeros without one)."""
    return ((steps + path_steps[:, None]) * (grads + path_grads[:, None])).sum(dim=0)


def cascade_path(sites, measure, k: int = K) -> SamplePath:
    """The paper's greedy path search of one sample: for each site in order, ``measure(site, path)``
    interpolates the site's neurons and the path chosen so far and returns ``(steps, grads)``, two dicts
    (site name → ``[positions, width]``: each neuron's step size ``w/m`` and its gradient summed over the
    m steps, squared for IFI) for the site and each earlier path layer; the site's neurons are scored with
    :func:`path_score`, the path sums running over the path neurons of the earlier layers, and the path
    takes the site's top k (:func:`greedy_path`)."""
    return greedy_path(sites, lambda site, path: layer_score(site, *measure(site, path), path), k)


def layer_score(site, steps: dict, grads: dict, path: dict) -> tuple[torch.Tensor, float]:
    """One layer's paper score given the path: ``(scores, path_term)`` from :func:`cascade_path`'s
    measurements; ``path_term`` is Σ over the positions of the path's summed steps × summed gradients."""
    path_steps = torch.zeros(steps[site.name].shape[0], dtype=steps[site.name].dtype)
    path_grads = torch.zeros_like(path_steps)
    for name, chosen in path.items():
        path_steps += steps[name][:, chosen].sum(dim=-1)          # a tower's sites share their positions
        path_grads += grads[name][:, chosen].sum(dim=-1)
    score = path_score(steps[site.name], grads[site.name], path_steps, path_grads)
    return score, float((path_steps * path_grads).sum())


def _path_scorer(model, batch, sites, objective_fn, where, *, m, fisher, cascade, variant):
    """``variant="paper"`` / ``"released"``: the path's summed step sizes × its summed (squared) gradients,
    per attributed position, summed over the positions (the module docstring), as ``score_layer`` for
    :func:`greedy_path`. Point-wise (``cascade=False``) measures each layer without a path; the released
    variant sums over the last path neuron of each earlier layer only (the released code's overwrite)."""
    measure = _path_measure(model, batch, sites, objective_fn, where, m=m, fisher=fisher, variant=variant)
    released = variant == "released"

    def score_layer(site, path):
        path = path if cascade else {}
        steps, grads = measure(site, path)
        summed = {name: chosen[-1:] for name, chosen in path.items()} if released else path
        return layer_score(site, steps, grads, summed)
    return score_layer


def _path_measure(model, batch, sites, objective_fn, where, *, m, fisher, variant):
    """``measure(site, path)`` for :func:`cascade_path`: interpolate the site's neurons and the path's (from 0
    to their clean values, copy k at ``α_k``), take the gradients of the objective, and return
    ``(steps, grads)``: per site name (the path's layers, then the site) ``[positions, width]`` on the CPU at
    the site's attributed positions: the step sizes ``clean/m`` and the gradients summed over the m steps
    (squared for IFI). The released variant also holds each earlier path layer's other neurons at their
    clean values and differentiates the mean of the objective over the m copies (the released code's
    ``output.loss``), not its sum."""
    device = next(model.parameters()).device
    steps = alphas(m, variant).to(device)
    # the sums run in fp32 whatever the model's dtype (a bf16 model: bf16 activations and gradients)
    clean = {n: a.float() for n, a in clean_activations(model, batch, sites, objective_fn).items()}  # [tokens, width]
    at = {site.name: _row(where[site.name]) for site in sites}           # name → [tokens] bool
    released = variant == "released"
    borrow = _borrowing(sites) if released else {}                       # last vision layer → the one below

    def collapse(g):                    # [m, tokens, width] → [tokens, width]: Σ_k of the gradient (or its square)
        if not fisher:
            return g.sum(dim=0)
        if released:                    # z-scored across the m steps, then squared
            return zscore_fisher(g.flatten(1)).view(g.shape[1:])
        return (g ** 2).sum(dim=0)

    def measure(site, path):
        chosen = {s.name: path[s.name] for s in sites if s.name in path}
        chosen[site.name] = None                                         # the whole layer
        watched = dict.fromkeys([*chosen, *([borrow[site.name]] if site.name in borrow else [])])
        # released: each earlier path layer is written whole, its other neurons held at their clean values
        pinned = [name for name, indices in chosen.items() if indices is not None] if released else []
        seen = {}
        with interpolated(model, clean, {name: chosen.get(name, _NOTHING) for name in watched}, at, steps, seen,
                          pinned=pinned):
            value = objective_fn(model, batch)
        total = value.mean() if released else value.sum()                # released: output.loss, a mean over copies
        names = list(seen)
        grads = dict(zip(names, torch.autograd.grad(total, [seen[n] for n in names], allow_unused=True)))
        grads = {n: (g if g is not None else torch.zeros_like(seen[n])).detach().float() for n, g in grads.items()}
        if site.name in borrow and not bool(grads[site.name][:, at[site.name]].any()):
            grads[site.name] = grads[borrow[site.name]]                 # the released code's LLaVA fix-up
        here = at[site.name]                                             # a tower's sites share their positions
        return ({name: (clean[name][here] / m).cpu() for name in chosen},
                {name: collapse(grads[name])[here].cpu() for name in chosen})
    return measure


_NOTHING = torch.empty(0, dtype=torch.long)      # watched for its gradient, nothing interpolated


def _row(where: torch.Tensor) -> torch.Tensor:
    """A site's position mask as one row ``[tokens]`` (the m copies share it)."""
    return where[0] if where.dim() == 2 else where


def _borrowing(sites) -> dict[str, str]:
    """Released IFI: the last vision site borrows the gradients of the site below it."""
    vision = [s for s in sites if s.tower == "vision"]
    return {vision[-1].name: vision[-2].name} if len(vision) >= 2 else {}


def clean_activations(model, batch, sites, objective_fn) -> dict[str, torch.Tensor]:
    """Each site's activations ``[tokens, width]`` in a clean pass of the batch's first row."""
    seen = {}
    hooks = {site.name: lambda _module, args, name=site.name: seen.__setitem__(name, as_rows(args[0], 1)[0].detach())
             for site in sites}
    with pre_hooks(model, hooks), torch.no_grad():
        objective_fn(model, first_copy(batch))
    return seen


@contextmanager
def interpolated(model, clean: dict[str, torch.Tensor], chosen: dict[str, torch.Tensor | None],
                 at: dict[str, torch.Tensor], steps: torch.Tensor, seen: dict, pinned=()):
    """Within the block, copy k of the batch sees each chosen neuron's activation replaced by
    ``steps[k] × its clean value`` at the positions ``at`` (``chosen[name]``: neuron indices, None for all).
    At the sites named in ``pinned`` every other neuron is replaced too, by its clean value (a constant:
    it no longer follows the layers below, and no gradient passes through it); elsewhere the other
    neurons keep the value the model computes. ``seen[name]`` receives each site's (interpolated)
    activation tensor, to take gradients against."""
    def hook(_module, args, name, mask, values):
        x = torch.where(mask, values.to(args[0].dtype), as_rows(args[0], values.shape[0]))
        seen[name] = x
        return (x.view_as(args[0]),) + tuple(args[1:])

    hooks = {}
    for name, indices in chosen.items():
        neurons = torch.ones(clean[name].shape[-1], dtype=torch.bool, device=steps.device)
        if indices is not None:
            neurons = torch.zeros_like(neurons)
            neurons[indices.to(steps.device)] = True
        scale = torch.where(neurons[None, :], steps[:, None], 1.0)        # [m, width]: α_k if chosen, else 1
        written = torch.ones_like(neurons) if name in pinned else neurons  # the neurons the hook replaces
        mask = at[name].to(steps.device)[:, None] & written[None, :]        # [tokens, width]
        values = scale[:, None, :] * clean[name][None]                     # [m, tokens, width]
        hooks[name] = partial(hook, name=name, mask=mask, values=values)
    with pre_hooks(model, hooks):
        yield


def _positions(model, batch, sites, variant: str) -> dict[str, torch.Tensor]:
    if sites[0].tower == "vision":      # as many positions as the tower has tokens per image (CLIP: CLS + patches)
        forward = lambda model_, batch_: model_(**{n: v for n, v in batch_.items() if n != "labels"})
        n_tokens = clean_activations(model, batch, sites[:1], forward)[sites[0].name].shape[0]
        where = vision_positions(n_tokens, variant).to(batch["input_ids"].device)
    else:
        where = first_real_position(batch) if variant == "released" else answer_positions(batch)
    return {site.name: where for site in sites}


def activation_at(model, batch, site: NeuronSite, where: torch.Tensor) -> torch.Tensor:
    """The neurons' activation summed over the gated positions, in a clean pass of the batch's first row."""
    forward = lambda model_, batch_: model_(**{n: v for n, v in batch_.items() if n != "labels"})
    return clean_activations(model, batch, [site], forward)[site.name][_row(where)].sum(dim=0)


# ---------------------------------------------------------------------------------------------------
# A set of samples

@dataclass
class NeuronPaths:
    """Paths of one branch over a set of samples: per layer the union of the samples' top-k."""

    branch: str                                   # "igi" or "ifi"
    sites: list[NeuronSite]
    union: dict[str, torch.Tensor]                # site name → sorted neuron indices (a selection for prune_neurons)
    scores: dict[str, torch.Tensor]               # site name → [width] scores summed over samples
    samples: list[SamplePath] = field(default_factory=list)
    k: int = K
    m: int = M
    variant: str = "paper"
    cascade: bool = True

    def counts(self) -> pd.DataFrame:
        """Per layer: how many neurons the union holds, of how many."""
        return pd.DataFrame([{"tower": s.tower, "layer": s.layer, "site": s.name, "path neurons": len(self.union[s.name]),
                              "width": s.width} for s in self.sites])

    def overlap(self, other: NeuronPaths) -> pd.DataFrame:
        """Per layer: the neurons two path sets share (e.g. forget people vs retain people)."""
        rows = []
        for s in self.sites:
            mine, theirs = set(self.union[s.name].tolist()), set(other.union.get(s.name, torch.empty(0)).tolist())
            rows.append({"layer": s.layer, "here": len(mine), "there": len(theirs), "shared": len(mine & theirs),
                         "jaccard": round(len(mine & theirs) / max(len(mine | theirs), 1), 3)})
        return pd.DataFrame(rows)

    def __len__(self) -> int:
        return sum(len(v) for v in self.union.values())

    def __repr__(self) -> str:
        per_layer = ", ".join(f"{s.tower}[{s.layer}] {len(self.union[s.name])}" for s in self.sites)
        kind = "path" if self.cascade else "point-wise"
        return fit(f"NeuronPaths({self.branch}, {kind}, variant={self.variant!r}, k={self.k}, m={self.m}: "
                   f"{len(self.samples)} samples, {len(self)} neurons; {per_layer})")


def find_paths(vlm, examples, branch: str = "igi", *, k: int = K, m: int = M, cascade: bool = True,
               variant: str = "paper", progress: bool = False) -> NeuronPaths:
    """IGI (``branch="igi"``: language neurons, text-only ``examples``) or IFI (``"ifi"``: vision neurons,
    image+text ``examples``) paths for every example, united per layer."""
    validate.one_of(branch, "branch", BRANCHES, hint="igi: language neurons, ifi: vision neurons")
    require_k_m(k, m)
    require_variant(variant)
    examples = list(examples)
    if not examples:
        raise ValueError("examples is empty: paths need at least one sample")
    wanted = "text" if branch == "igi" else "image+text"
    wrong = [e for e in examples if e.modality != wanted]
    if wrong:
        raise ValueError(f"{branch} attributes {wanted} samples; {len(wrong)} of the examples are {wrong[0].modality}")
    sites = tower_sites(vlm.model, BRANCHES[branch])
    samples = []
    with sharding.for_pass(vlm) as read:        # under an FSDP2 launcher: a sharded copy, every sample on every process
        for batch in tqdm(one_pass_batches(read.processor, examples, 1), total=len(examples),
                          desc=branch, disable=not progress or not distributed.is_main()):
            samples.append(attribute_sample(read.model, batch, sites, k=k, m=m, fisher=branch == "ifi",
                                            cascade=cascade, variant=variant))
    union = {s.name: torch.unique(torch.cat([p.path[s.name] for p in samples])) for s in sites}
    scores = {s.name: torch.stack([p.scores[s.name] for p in samples]).sum(dim=0) for s in sites}
    return NeuronPaths(branch, sites, union, scores, samples, k, m, variant, cascade)


__all__ = ["BRANCHES", "K", "M", "NeuronPaths", "SamplePath", "VARIANTS", "alphas", "answer_positions",
           "activation_at", "attribute_sample", "cascade_path", "layer_score", "require_k_m", "integrated_gradients", "require_variant", "find_paths", "first_real_position", "gated", "greedy_path",
           "interpolated", "as_rows", "path_score", "clean_activations", "first_copy", "objective", "pre_hooks", "repeat_batch", "top_k", "tower_sites", "vision_positions", "zscore_fisher"]
