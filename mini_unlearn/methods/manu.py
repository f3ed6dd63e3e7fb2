"""MANU — modality-aware neuron unlearning by pruning (Liu et al., ACL 2025; chapter 05).

Training-free, in two stages:

1. **importance** — run the forget and the retain people's training pairs through the model in
   both views, multimodal (portrait + question + answer) and text-only (the person named), and
   collect per-neuron statistics in both towers (:func:`mini_unlearn.neurons.collect_stats`; in
   the language model over the text tokens, not the image placeholders: ``language_tokens``);
   score each neuron with :func:`mini_unlearn.neurons.neuron_scores` (``variant="paper"`` or
   ``"released"``; chapter 05 shows both);
2. **pruning** — switch off the top α of each chosen tower's neurons (``scope="per_tower"``, as the
   paper and the released code prune both towers; or the top α of all of them, or of each layer)
   (:func:`mini_unlearn.neurons.prune_neurons`).

The paper's defaults: α from 1% to 5% (the released code: 2%), τ = 0.1. ``variant="released"`` also
selects as the released code does — ``int(α·N)`` neurons and every tie at the threshold
(:func:`mini_unlearn.neurons.importance.select_released`) — and its statistics are per batch, by default
of the released scripts' 4 samples; ``"paper"`` takes exactly ``round(α·N)`` and reads 32 samples a
batch, which only sets the speed there. With the defaults (``variant="paper"``, ``scope="per_tower"``) the
scoring and the selection are one call, :func:`paper_selection` (chapter 05's exercise 5.4 rebuilds it).
The selected neurons, their scores and the counts per layer are kept in ``result.log.details``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bench.questions import MODALITIES
from ..models import sharding
from ..models.train_data import make_batch
from ..neurons.activations import AGGREGATIONS, LANGUAGE_TOKENS, TAU, collect_stats
from ..neurons.edit import SCOPES, require_alpha, prune_neurons, select_top, site_towers
from ..neurons.importance import EPS, RENAMED_VARIANTS, SELECTIONS, VARIANTS, neuron_scores
from .. import validate
from .base import UnlearnLog, register
from .data import unlearning_sets

TOWERS: tuple[str, ...] = ("vision", "language")
BATCH_SIZES: dict[str, int] = {"paper": 32, "released": 4}   # released: the released scripts' --batch_size


@dataclass(frozen=True)
class MANUConfig:
    """``alpha``: fraction of the chosen towers' neurons to prune, in (0, 1). ``scope``: the top α
    ``"per_tower"`` (default), over all chosen neurons (``"global"``), or ``"per_layer"``. ``variant``:
    ``"paper"`` or ``"released"`` importance (:mod:`mini_unlearn.neurons.importance`; ``"official"``, the old
    spelling of ``"released"``, still works with a ``FutureWarning``).
    ``aggregation``: per sample, ``"mean"`` over real tokens or the ``"last"`` token (MIP-Editor's
    re-implementation). ``language_tokens``: the language model's token mean over the ``"text"``
    tokens (default; a view with the portrait and one without then compare the same kind of tokens)
    or ``"all"`` (image placeholders included). ``batch_size``: samples per batch of the statistics
    passes; ``None`` (default) takes :data:`BATCH_SIZES` of the variant: 32 for ``"paper"``, whose
    statistics are sums over samples (the batch size sets the speed only), and 4 for ``"released"``,
    the released scripts' ``--batch_size``, whose per-batch statistics depend on it. A batch size that
    leaves one sample alone in a batch is refused by ``"released"`` (no n − 1 standard deviation)."""

    alpha: float = 0.02
    variant: str = "paper"
    scope: str = "per_tower"
    towers: tuple[str, ...] = TOWERS
    tau: float = TAU
    eps: float = EPS
    aggregation: str = "mean"
    batch_size: int | None = None
    language_tokens: str = "text"

    def __post_init__(self):
        require_alpha(self.alpha)
        object.__setattr__(self, "variant", validate.renamed(self.variant, "variant", RENAMED_VARIANTS))
        validate.one_of(self.variant, "variant", VARIANTS)
        validate.one_of(self.scope, "scope", SCOPES)
        towers = (self.towers,) if isinstance(self.towers, str) else tuple(self.towers)
        unknown = [t for t in towers if t not in TOWERS]
        if unknown or not towers:
            raise ValueError(f"towers must be a non-empty selection of {TOWERS}; got {self.towers!r}")
        object.__setattr__(self, "towers", towers)
        validate.one_of(self.aggregation, "aggregation", AGGREGATIONS)
        validate.one_of(self.language_tokens, "language_tokens", LANGUAGE_TOKENS)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", BATCH_SIZES[self.variant])
        validate.positive_int(self.batch_size, "batch_size", hint=f"or None: {BATCH_SIZES} by variant")
        validate.positive(self.eps, "eps")


def pair_batches(processor, examples, batch_size: int):
    """The pairs as the model reads them in training — prompt + answer — with their canonical portraits."""
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        yield make_batch(processor, [(*e.draw(None), e.image(None)) for e in chunk])


def manu_statistics(vlm, bench, ratio: float = 0.05, *, tau: float = TAU, aggregation: str = "mean",
                    batch_size: int = 32, language_tokens: str = "text", towers: tuple[str, ...] = TOWERS):
    """``stats[set][view][site]``: per-neuron statistics of the forget and retain pairs in both views, for
    the sites of ``towers``. ``batch_size`` matters to the released code's per-batch statistics only
    (``variant="released"``: :class:`MANUConfig` takes 4 for it)."""
    forget, retain = unlearning_sets(bench, ratio, "both")
    stats = {}
    with sharding.for_pass(vlm) as read:       # under an FSDP2 launcher: a sharded copy, every batch on every process
        for name, examples in (("forget", forget), ("retain", retain)):
            stats[name] = {}
            for view in MODALITIES:
                chosen = [e for e in examples if e.modality == view]
                stats[name][view] = collect_stats(read, pair_batches(read.processor, chosen, batch_size),
                                                  towers=towers, aggregation=aggregation, tau=tau,
                                                  language_tokens=language_tokens)
    return stats


def _statistics(vlm, bench, ratio, config: MANUConfig):
    return manu_statistics(vlm, bench, ratio, tau=config.tau, aggregation=config.aggregation,
                           batch_size=config.batch_size, language_tokens=config.language_tokens,
                           towers=config.towers)


def manu_scores(vlm, bench, ratio: float = 0.05, config: MANUConfig | None = None):
    """Per site (module name) of ``config.towers``, every neuron's MANU score."""
    config = config or MANUConfig()
    return neuron_scores(_statistics(vlm, bench, ratio, config), config.variant, config.eps)


def paper_selection(stats, alpha: float, towers: dict[str, str], eps: float = EPS):
    """The paper's MANU from the statistics to the neurons to prune (``variant="paper"``,
    ``scope="per_tower"``, the method's default): ``(scores, selection)``, per site the score of every
    neuron and the indices of the chosen ones. ``stats[set][view][site]`` (:func:`manu_statistics`);
    ``towers`` maps each site to its tower (:func:`mini_unlearn.neurons.site_towers`). A language
    neuron's score is the ratio of the sums of the four importance functions,
    ``I(D_f) / (I(D_r) + ε)``; a vision neuron's the spread ratio ``σ(D_f) / (σ(D_r) + ε)``
    (:func:`mini_unlearn.neurons.neuron_scores`); then the top ``round(α·N)`` of each tower
    (:func:`mini_unlearn.neurons.select_top`). Chapter 05's exercise 5.4 rebuilds it."""
    scores = neuron_scores(stats, "paper", eps)
    return scores, select_top(scores, alpha, "per_tower", towers)


def _prepare(vlm, bench, ratio, config, progress=True):
    unlearning_sets(bench, ratio, "both")       # validates the forget/retain sets before anything runs
    return {}


@register("manu", MANUConfig, "prune the neurons most specific to the forget people, in both towers (training-free)",
          prepare=_prepare, trains=lambda model, config: [],          # it trains nothing: it zeroes weights
          grid={"alpha": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]}, quick={"alpha": 0.05})
def manu(vlm, bench, ratio, config, *, original, progress, monitor, probe_every):
    log = UnlearnLog()
    if monitor is not None:
        log.probes.append({"step": 0, **monitor(vlm.model)})
    stats = _statistics(vlm, bench, ratio, config)
    towers = site_towers(vlm.model)
    if config.variant == "paper" and config.scope == "per_tower":     # the paper's MANU
        scores, selection = paper_selection(stats, config.alpha, towers, config.eps)
    else:
        scores = neuron_scores(stats, config.variant, config.eps)
        select = SELECTIONS[config.variant]        # round(α·N), or the released code's int(α·N) and ties
        selection = select(scores, config.alpha, config.scope, towers=towers)
    pruning = prune_neurons(vlm.model, selection)
    counts = pruning.counts()
    counts = counts[counts["tower"].isin(config.towers)].reset_index(drop=True)
    log.details = {"scores": scores, "selection": selection, "counts": counts}
    if monitor is not None:
        log.probes.append({"step": 1, **monitor(vlm.model)})
    return log


__all__ = ["BATCH_SIZES", "MANUConfig", "manu_scores", "manu_statistics", "pair_batches", "paper_selection"]
