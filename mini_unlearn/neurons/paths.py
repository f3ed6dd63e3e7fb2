"""Neuron paths through the layers: MIP-Editor's IGI and IFI attribution (Li et al., AAAI 2026; chapter 07).

MANU (chapter 05) scores each neuron on its own. MIP-Editor follows the knowledge **across layers**:
a path picks the top-k neurons of layer 0, then the top-k of layer 1 *given* the path so far, and so on.

**The attribution.** Put a gate ``g`` on every neuron's activation (``a → g·a`` at the attributed
token positions; ``g = 1`` is the model as it is). Integrated gradients of an objective ``F`` along
the straight line from ``g = 0`` to ``g = 1`` split ``F(1) − F(0)`` among the gated neurons::

    IG(i) = ∫₀¹ ∂F/∂g_i dα  ≈  (1/m) Σ_{k=1..m} ∂F/∂g_i |_{g = k/m}      (right Riemann sum, m steps)

(``∂F/∂g_i = Σ_positions a_i · ∂F/∂a_i``: the gradient at the scaled point times the activation.)

**The cascade.** For layer ℓ, the gates of *all* of layer ℓ's neurons and of the path neurons already
chosen in layers < ℓ move together from 0 to 1; every other neuron keeps its own value. So a neuron
of layer ℓ is scored in the context of the path that leads to it, and the path's own share is the
``path`` term. The m interpolation steps run as **one batch** of m copies: one forward and one
backward pass per layer.

* **IGI** (text branch): language-model MLP neurons, ``F`` = the answer's log-likelihood of the
  text-only question, gates on the positions that predict the answer tokens;
* **IFI** (visual branch): vision-tower MLP neurons, ``G`` = the answer's log-likelihood of the
  image+text question, gates on every image token; the score is the integrated **squared** gradient
  ``(1/m) Σ_k (∂G/∂g_i)²`` — a diagonal-Fisher proxy;
* **point-wise** (``cascade=False``): each layer gated alone, no earlier path — MANU-like, for the
  chapter's "path vs point" comparison.

Per layer the path is the top-k by score (k = 5); paths of several samples are united per layer.

**``variant="released"``** reproduces the released code's choices where they are cheap
(reference/implementation-notes.md §6.2–6.3): the gates sit at **sequence position 0** only (the
attention-sink ``<s>`` token; for the vision tower, the CLS token), the Riemann sum is the left one
(``k = 0..m−1``: it includes ``g = 0`` and never the model itself), the objective is the loss
(the top-k raise the cross-entropy), and IFI squares the gradient **z-scored per neuron across the m
steps** — which makes ``Σ_k z_k² = m − 1`` for every neuron, so the released IFI ranks by the
activation alone (:func:`zscore_fisher` shows it).

Not reproduced: the released score multiplies the *summed* gradients of the neuron and the earlier
path by their *summed* step sizes (and, through an overwrite, keeps only the last path neuron of each
earlier layer). Its cross terms — a neuron's gradient times the earlier path's step sizes, and its
step size times the path's gradients — let a neuron's rank depend on the path in a way integrated
gradients do not; here the score is the neuron's integrated gradient along the joint scaling, and
the earlier path's share is reported separately (``path_term``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..models.anatomy import NeuronSite, find_mlp_neurons
from ..models.train import answer_logits, sequence_log_probs, token_cross_entropy
from ..models.train_data import IGNORE_INDEX, one_pass_batches

BRANCHES: dict[str, str] = {"igi": "language", "ifi": "vision"}     # branch → the tower it attributes
VARIANTS: tuple[str, ...] = ("paper", "released")
K, M = 5, 8


def check_k_m(k, m) -> None:
    for name, value in (("k", k), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer ({'neurons per layer' if name == 'k' else 'interpolation steps'}); "
                             f"got {value!r}")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    return variant


def tower_sites(model, tower: str) -> list[NeuronSite]:
    """The MLP neuron sites of one tower, in layer order."""
    if tower not in ("vision", "language"):
        raise ValueError(f"tower must be 'vision' or 'language'; got {tower!r}")
    return sorted((s for s in find_mlp_neurons(model) if s.tower == tower), key=lambda s: s.layer)


def alphas(m: int, variant: str = "paper") -> torch.Tensor:
    """The m interpolation points: ``k/m`` for k = 1..m (paper), or k = 0..m−1 (released, left sum)."""
    check_k_m(1, m)
    start = 0 if check_variant(variant) == "released" else 1
    return torch.arange(start, start + m, dtype=torch.float32) / m


def zscore_fisher(gradients: torch.Tensor) -> torch.Tensor:
    """The released IFI's per-neuron statistic: ``Σ_k z_k²`` with ``z`` the gradients z-scored across the
    m steps (dim 0, unbiased std). It equals m − 1 for every neuron whose gradients vary, and 0 for the rest."""
    centred = gradients - gradients.mean(dim=0, keepdim=True)
    std = gradients.std(dim=0, keepdim=True)
    z = torch.where(std > 0, centred / std.clamp(min=torch.finfo(gradients.dtype).tiny), torch.zeros_like(centred))
    return (z ** 2).sum(dim=0)   # a neuron whose gradient never varies (e.g. always 0) gets 0


def integrated_gradients(f, a: torch.Tensor, m: int = M, variant: str = "paper") -> torch.Tensor:
    """Integrated gradients of ``f`` at ``a`` from the zero baseline, every coordinate scaled together::

        IG_i = a_i · (1/m) Σ_k ∂f/∂x_i |_{x = α_k · a}        (α_k from :func:`alphas`)

    ``f`` maps a batch of points ``[m, n]`` to ``[m]`` values; the m points go through it in one call.
    As m grows, ``IG.sum()`` tends to ``f(a) − f(0)`` (completeness).
    """
    check_k_m(1, m)
    a = torch.as_tensor(a, dtype=torch.float64)
    points = (alphas(m, variant).to(a.dtype)[:, None] * a[None, :]).requires_grad_(True)
    grads, = torch.autograd.grad(f(points).sum(), points)
    return a * grads.mean(dim=0)


# ---------------------------------------------------------------------------------------------------
# Gates on the neuron activations

@contextmanager
def gated(model, gates: dict[str, torch.Tensor], positions: dict[str, torch.Tensor]):
    """Within the block, the input of each site's consumer is ``a · g`` at ``positions``.

    ``gates[name]``: ``[batch, width]``; ``positions[name]``: a bool ``[batch, tokens]`` (or
    ``[tokens]``) mask of the token positions the gate applies to. Other positions pass unchanged.
    """
    handles = []
    for name, gate in gates.items():
        where = positions[name]

        def hook(_module, args, gate=gate, where=where):
            a = args[0]
            mask = where if where.dim() == 2 else where.expand(a.shape[0], -1)
            factor = torch.where(mask[..., None], gate[:, None, :].to(a.dtype), torch.ones((), dtype=a.dtype))
            return (a * factor,) + tuple(args[1:])
        handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


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
    """m copies of a one-sample batch (pixel rows repeated as whole images)."""
    sizes = {value.shape[0] for value in batch.values()}
    if sizes != {1}:
        raise ValueError(f"path attribution takes one sample at a time; got batch sizes {sorted(sizes)}")
    return {name: value.repeat(m, *([1] * (value.dim() - 1))) for name, value in batch.items()}


def objective(model, batch: dict[str, torch.Tensor], variant: str) -> torch.Tensor:
    """Per copy: the answer's log-likelihood (paper), or its cross-entropy — the loss (released)."""
    logits, labels = answer_logits(model, batch)
    if variant == "released":
        return torch.stack([token_cross_entropy(logits[i:i + 1], labels[i:i + 1]) for i in range(len(labels))])
    return sequence_log_probs(logits, labels)


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
    check_k_m(k, 1)
    scores, path, terms = {}, {}, {}
    for site in sites:
        score, term = score_layer(site, dict(path))
        scores[site.name], terms[site.name] = score, term
        path[site.name] = top_k(score, k)
    return SamplePath(scores, path, terms)


def attribute_sample(model, batch: dict[str, torch.Tensor], sites: list[NeuronSite], *, k: int = K, m: int = M,
                     fisher: bool = False, cascade: bool = True, variant: str = "paper", objective_fn=None,
                     positions: dict[str, torch.Tensor] | None = None) -> SamplePath:
    """Greedy layer-wise path attribution of one sample (see the module docstring).

    ``fisher=False``: IGI (integrated gradients); ``True``: IFI (integrated squared gradients).
    ``cascade=False``: point-wise — each layer gated alone. ``objective_fn(model, batch)`` → one value
    per copy and ``positions`` (site name → bool token mask) default to the VLM's (answer
    log-likelihood and answer / image positions; :func:`objective`).
    """
    check_k_m(k, m)
    check_variant(variant)
    if not sites:
        raise ValueError("sites is empty: nothing to attribute")
    device = next(model.parameters()).device
    batch = repeat_batch({name: value.to(device) for name, value in batch.items()}, m)
    steps = alphas(m, variant).to(device)
    if objective_fn is None:
        if sites[0].tower == "vision" and "pixel_values" not in batch:
            raise ValueError("IFI attributes vision neurons: the sample needs an image (pixel_values)")
        objective_fn = lambda model_, batch_: objective(model_, batch_, variant)
    where = positions if positions is not None else _positions(model, batch, sites, variant)

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
        if not fisher:
            score = own.mean(dim=0)
        elif variant == "released":     # Σ_k z_k² × (activation / m): ranks by the activation alone
            score = zscore_fisher(own) * activation_at(model, batch, site, where[site.name]) / m
        else:
            score = (own ** 2).mean(dim=0)
        term = sum(float((g[:, path[name]] ** 2).mean(dim=0).sum() if fisher else g[:, path[name]].mean(dim=0).sum())
                   for name, g in grads.items())
        return score.detach().cpu(), term

    was_training = model.training
    model.eval()
    try:
        return greedy_path(sites, score_layer, k)
    finally:
        model.train(was_training)


def _positions(model, batch, sites, variant: str) -> dict[str, torch.Tensor]:
    if sites[0].tower == "vision":
        config = model.config.vision_config
        n_tokens = (config.image_size // config.patch_size) ** 2 + 1
        where = vision_positions(n_tokens, variant).to(batch["input_ids"].device)
    else:
        where = first_real_position(batch) if variant == "released" else answer_positions(batch)
    return {site.name: where for site in sites}


def activation_at(model, batch, site: NeuronSite, where: torch.Tensor) -> torch.Tensor:
    """The neurons' activation summed over the gated positions, in a clean pass of the batch's first row."""
    seen = {}

    def hook(_module, args):
        a = args[0][:1]
        mask = where[:1] if where.dim() == 2 else where.expand(1, -1)
        seen["a"] = (a * mask[..., None]).sum(dim=(0, 1)).detach()
    handle = model.get_submodule(site.name).register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(**{n: v[:1] for n, v in batch.items() if n != "labels"})
    finally:
        handle.remove()
    return seen["a"]


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
        return (f"NeuronPaths({self.branch}, {kind}, variant={self.variant!r}, k={self.k}, m={self.m}: "
                f"{len(self.samples)} samples, {len(self)} neurons; {per_layer})")


def find_paths(vlm, examples, branch: str = "igi", *, k: int = K, m: int = M, cascade: bool = True,
               variant: str = "paper", progress: bool = False) -> NeuronPaths:
    """IGI (``branch="igi"``: language neurons, text-only ``examples``) or IFI (``"ifi"``: vision neurons,
    image+text ``examples``) paths for every example, united per layer."""
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {tuple(BRANCHES)} (igi: language neurons, ifi: vision neurons); "
                         f"got {branch!r}")
    check_k_m(k, m)
    check_variant(variant)
    examples = list(examples)
    if not examples:
        raise ValueError("examples is empty: paths need at least one sample")
    wanted = "text" if branch == "igi" else "image+text"
    wrong = [e for e in examples if e.modality != wanted]
    if wrong:
        raise ValueError(f"{branch} attributes {wanted} samples; {len(wrong)} of the examples are {wrong[0].modality}")
    sites = tower_sites(vlm.model, BRANCHES[branch])
    samples = []
    for batch in tqdm(one_pass_batches(vlm.processor, examples, 1), total=len(examples),
                      desc=branch, disable=not progress):
        samples.append(attribute_sample(vlm.model, batch, sites, k=k, m=m, fisher=branch == "ifi", cascade=cascade,
                                        variant=variant))
    union = {s.name: torch.unique(torch.cat([p.path[s.name] for p in samples])) for s in sites}
    scores = {s.name: torch.stack([p.scores[s.name] for p in samples]).sum(dim=0) for s in sites}
    return NeuronPaths(branch, sites, union, scores, samples, k, m, variant, cascade)


__all__ = ["BRANCHES", "K", "M", "NeuronPaths", "SamplePath", "VARIANTS", "alphas", "answer_positions",
           "activation_at", "attribute_sample", "check_k_m", "integrated_gradients", "check_variant", "find_paths", "first_real_position", "gated", "greedy_path",
           "objective", "repeat_batch", "top_k", "tower_sites", "vision_positions", "zscore_fisher"]
