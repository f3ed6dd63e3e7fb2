"""A model whose forget people live in known neurons: the ground truth for localisation.

Every localiser in this course (MANU's importance scores, MMUnlearner's saliency mask, MIP-Editor's
neuron paths) claims to find *where* a model keeps some people. On a model trained the usual way
nobody knows the answer, so a localiser that finds nothing cannot be told from knowledge that is not
localised. This module builds a model where the answer is known by construction:

1. start from the **retain-only** model (the course recipe on everyone but the forget people: it
   never met them);
2. **plant** new neurons: widen every MLP of both towers by a few neurons, placed at seeded random
   positions among the old ones, with zero output weights, so the widened model computes exactly
   what the retain-only model computed;
3. **train only the planted neurons** (their input rows and output columns; every other weight is
   frozen, weight decay off so frozen entries stay bit-identical) on everyone's examples, the
   forget people's repeated. Every retain and utility example is in the mixture, so the planted
   neurons learn to leave the other people's answers alone.

Whatever the trained model knows about the forget people that the retain-only model did not, it
knows through the planted neurons: switching them all off gives back the retain-only model exactly.
The planted positions are recorded in the card (``card["planted"]``: site name → neuron indices).
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlavaForConditionalGeneration

from .anatomy import NeuronSite, find_mlp_neurons
from .families.llava import Preset, get_preset
from .cache import (cpu_name, default_cache_dir, key_hash, load_cached, read_key, retain_only, retain_only_key,
                    store)
from .shipped import find_shipped
from . import train as training
from .train import Monitor, TrainConfig
from .train_data import training_examples
from .vlm import VLM
from .. import validate
from ..text import fit

PLANTED_VERSION = 1      # part of the cache key: bump when the construction below changes


@dataclass(frozen=True)
class PlantedConfig:
    """How the planted model is made from the retain-only model at ``ratio``.

    ``neurons``: planted neurons per MLP layer, per tower. ``forget_weight``: how many times each
    forget example appears in the training mixture (the forget people are 2 of 50 people at
    ratio 0.05; repeated, a batch holds about one forget example in three), their MCQs
    ``mcq_weight`` times more (MCQ-by-letter is the last skill to come, as in the course recipe)."""

    ratio: float = 0.05
    neurons: dict = field(default_factory=lambda: {"vision": 8, "language": 16})
    steps: int = 2500
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    forget_weight: int = 12
    mcq_weight: int = 3
    seed: int = 0

    def __post_init__(self):
        if set(self.neurons) != {"vision", "language"}:
            raise ValueError(f"neurons must give a count for 'vision' and 'language'; got {self.neurons!r}")
        for tower, n in self.neurons.items():
            validate.positive_int(n, f"neurons[{tower!r}]")
        for name in ("steps", "batch_size", "warmup", "forget_weight", "mcq_weight"):
            validate.positive_int(getattr(self, name), name)

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        return fit("PlantedConfig(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")")


def planted_positions(widths: dict[str, int], counts: dict[str, int], seed: int) -> dict[str, torch.Tensor]:
    """Per site name: the sorted indices of its planted neurons in the widened layer (seeded)."""
    rng = random.Random(f"mini_unlearn/planted/{seed}")
    return {name: torch.tensor(sorted(rng.sample(range(width + counts[name]), counts[name])))
            for name, width in widths.items()}


def _spread(old: torch.Tensor, keep: torch.Tensor, new: torch.Tensor, dim: int) -> torch.Tensor:
    """``old`` widened along ``dim``: old entries at the positions in ``keep``, ``new`` at the rest."""
    shape = list(old.shape)
    shape[dim] = len(keep) + new.shape[dim]
    out = torch.empty(shape, dtype=old.dtype)
    out.index_copy_(dim, keep, old)
    planted = torch.ones(shape[dim], dtype=torch.bool)
    planted[keep] = False
    out.index_copy_(dim, planted.nonzero().squeeze(1), new.to(old.dtype))
    return out


def plant(vlm: VLM, counts: dict[str, int], seed: int = 0) -> tuple[VLM, dict[str, torch.Tensor]]:
    """A copy of ``vlm`` with ``counts[tower]`` new neurons in every MLP layer of each tower.

    The new neurons' input weights are drawn like the old ones (same scale, seeded); their output
    weights are zero, so the copy computes exactly what ``vlm`` computes. Returns the widened VLM
    and the planted indices per site."""
    model = vlm.model
    sites = find_mlp_neurons(model)
    per_site = {site.name: counts[site.tower] for site in sites}
    where = planted_positions({site.name: site.width for site in sites}, per_site, seed)
    config = copy.deepcopy(model.config)
    config.vision_config.intermediate_size += counts["vision"]
    config.text_config.intermediate_size += counts["language"]
    widened = LlavaForConditionalGeneration(config).to(next(model.parameters()).dtype)
    widened.generation_config = copy.deepcopy(model.generation_config)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(seed)
    for site in sites:
        mask = torch.ones(site.width + per_site[site.name], dtype=torch.bool)
        mask[where[site.name]] = False
        keep, n = mask.nonzero().squeeze(1), per_site[site.name]
        for producer in site.producers:
            for suffix in ("weight", "bias"):
                key = f"{producer}.{suffix}"
                if key not in state:
                    continue
                old = state[key]
                scale = old.float().std() if suffix == "weight" else 0.0
                new = torch.randn((n, *old.shape[1:]), generator=generator) * scale
                state[key] = _spread(old, keep, new, 0)
        key = f"{site.name}.weight"
        state[key] = _spread(state[key], keep, torch.zeros(state[key].shape[0], n), 1)
    widened.load_state_dict(state, strict=True)
    return VLM(widened.eval(), vlm.processor, copy.deepcopy(vlm.card)), where


def planted_entries(model, where: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter name → the boolean mask (on the CPU) of the entries that belong to the neurons in
    ``where`` (site name → indices): the producers' rows and bias entries, the consumer's columns."""
    model = model.model if isinstance(model, VLM) else model
    sites = {site.name: site for site in find_mlp_neurons(model)}
    masks = {}
    for name, index in where.items():
        site: NeuronSite = sites[name]
        index = torch.as_tensor(index, dtype=torch.long)
        owned = [(f"{producer}.{suffix}", 0) for producer in site.producers for suffix in ("weight", "bias")]
        for key, dim in owned + [(f"{site.name}.weight", 1)]:
            try:
                parameter = model.get_parameter(key)
            except AttributeError:             # a producer without a bias
                continue
            mask = torch.zeros(parameter.shape, dtype=torch.bool)
            mask.index_fill_(dim, index, True)
            masks[key] = mask
    return masks


def planted_parameters(model, where: dict[str, torch.Tensor]) -> dict[torch.nn.Parameter, torch.Tensor]:
    """Each trainable parameter → the boolean mask of its planted entries (:func:`planted_entries`),
    on the parameter's device."""
    return {model.get_parameter(name): mask.to(model.get_parameter(name).device)
            for name, mask in planted_entries(model, where).items()}


def train_planted(vlm: VLM, where: dict[str, torch.Tensor], bench, config: PlantedConfig, *,
                  monitor: Monitor | None = None, progress: bool = True, stop_after: int | None = None):
    """Train only the planted entries of ``vlm`` (in place) on everyone, the forget people repeated.

    ``stop_after=n``: only the run's first ``n`` steps (see :func:`~.train.train`)."""
    masks = planted_parameters(vlm.model, where)
    handles = []
    for p in vlm.model.parameters():
        p.requires_grad_(p in masks)
    for p, mask in masks.items():
        handles.append(p.register_hook(lambda grad, mask=mask: grad * mask))
    forget = set(bench.forget_ids(config.ratio))
    everyone = [p.id for p in bench.profiles + bench.utility_profiles]
    examples = training_examples(bench, everyone)
    mine = [e for e in examples if e.profile_id in forget]
    examples += mine * (config.forget_weight - 1) + [e for e in mine if e.task == "mcq"] * (
        config.forget_weight * (config.mcq_weight - 1))
    try:
        log = training.train(vlm, examples, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                    warmup=config.warmup, weight_decay=0.0, seed=config.seed, monitor=monitor,
                    probe_every=max(1, config.steps // 5), progress=progress, stop_after=stop_after)
    finally:
        for handle in handles:
            handle.remove()
        for p in vlm.model.parameters():
            p.requires_grad_(True)
    return log


def planted_neurons(vlm: VLM) -> dict[str, torch.Tensor]:
    """The ground truth of a planted model: site name → indices of its planted neurons."""
    planted = vlm.card.get("planted")
    if not planted:
        raise ValueError("planted_neurons needs a model made by mini_unlearn.models.planted "
                         "(its card has no 'planted' entry)")
    return {name: torch.tensor(index) for name, index in planted["neurons"].items()}


def planted_key(bench, config: PlantedConfig = PlantedConfig(), preset: str | Preset = "tiny", seed: int = 0,
                recipe: TrainConfig | None = None) -> dict:
    """The cache key of ``planted(bench, config, preset, seed)``: the retain-only model's key it
    starts from, the planting recipe and :data:`PLANTED_VERSION`."""
    base = retain_only_key(bench, config.ratio, preset, seed, recipe)
    return {"kind": "planted", "preset": base["preset"], "seed": seed, "ratio": float(config.ratio),
            "base": base, "planted": config.to_dict(), "planted_version": PLANTED_VERSION}


def make_planted(bench, base: VLM, config: PlantedConfig = PlantedConfig(), *, progress: bool = True) -> VLM:
    """Plant, train, and record: the planted model made from the retain-only model ``base`` (not changed)."""
    started = time.perf_counter()
    vlm, where = plant(base, config.neurons, config.seed)
    log = train_planted(vlm, where, bench, config, monitor=Monitor(vlm, bench, list(bench.forget_ids(config.ratio))),
                        progress=progress)
    vlm.card = {"kind": "planted", "preset": base.card.get("preset"), "benchmark": bench.name,
                "seed": base.card.get("seed"), "ratio": float(config.ratio),
                "planted": {"config": config.to_dict(), "neurons": {k: v.tolist() for k, v in where.items()},
                            "forget": list(bench.forget_ids(config.ratio))},
                "n_parameters": vlm.n_parameters(), "training": log.to_dict(),
                "wall_seconds": round(time.perf_counter() - started, 2), "cpu": cpu_name(),
                "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    return vlm


def planted(bench, config: PlantedConfig | None = None, preset: str | Preset = "tiny", seed: int = 0, *,
            cache_dir: str | Path | None = None, retrain: bool = False, device: str | torch.device | None = None,
            recipe: TrainConfig | None = None, progress: bool = True) -> VLM:
    """The planted model (see the module docstring): shipped for the course's configuration, else
    cached, else made from :func:`~.cache.retain_only` (itself shipped, cached or trained).

    ``config`` (a :class:`PlantedConfig`) decides the forget ratio, the planted neurons per layer and
    the training; ``recipe`` is the retain-only model's (default: the preset's)."""
    config = PlantedConfig() if config is None else config
    if not isinstance(config, PlantedConfig):
        raise TypeError(f"config must be None or a PlantedConfig; got {config!r}")
    key = planted_key(bench, config, preset, seed, recipe)
    if not retrain:
        shipped = find_shipped(key)
        if shipped is not None:
            return load_cached(shipped, device)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = folder / f"planted-{get_preset(preset).name.replace('/', '_')}-seed{seed}-{key_hash(key)[:16]}"
    if not retrain and read_key(final) == key:
        return load_cached(final, device)
    base = retain_only(bench, config.ratio, preset, seed, cache_dir=cache_dir, retrain=retrain, device=device,
                       recipe=recipe, progress=progress)
    vlm = make_planted(bench, base, config, progress=progress)
    vlm.card["cache_key"] = key
    store(vlm, final)
    return vlm


__all__ = ["PLANTED_VERSION", "PlantedConfig", "make_planted", "plant", "planted", "planted_key", "planted_neurons",
           "planted_entries", "planted_parameters", "planted_positions", "train_planted"]
