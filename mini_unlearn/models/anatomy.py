"""Where the neurons are: find the MLP neurons of a VLM by walking its modules.

A *neuron* is one coordinate of an MLP's intermediate activation — the vector the MLP computes
before projecting back to the residual stream (book/appendix/manu.md, 'What a neuron is'):

* gated (SwiGLU) MLP — Llama, Qwen2/2.5 language models, Qwen2.5-VL vision blocks::

      h = act_fn(gate_proj(x)) * up_proj(x)        # neurons = h = the input of down_proj
      y = down_proj(h)

* CLIP-style MLP — CLIP, SigLIP, Idefics3 and Qwen2-VL vision blocks::

      h = act(fc1(x))                              # neurons = h = the input of fc2
      y = fc2(h)

So a neuron site is named by the module that *consumes* the activation (``down_proj`` or ``fc2``):
a forward pre-hook on it receives the activations, and its ``in_features`` is the number of neurons.
The module(s) that *produce* it (``fc1``, or ``gate_proj`` + ``up_proj``) are recorded too, for pruning.

Nothing here hard-codes a module path: those changed across transformers versions (LLaVA's language
model was ``language_model.model.layers`` before 4.52 and is ``model.language_model.layers`` now).
Instead the towers are found by what they are — the vision tower is the outermost submodule whose
``.config`` is ``model.config.vision_config``, the language model the one whose ``.config`` is
``model.config.text_config`` — and an MLP is any module owning a ``down_proj`` Linear or an
``fc1`` + ``fc2`` pair. Its layer is its position in the tower's ``ModuleList`` of blocks.

Projector / merger MLPs (LLaVA's ``multi_modal_projector``, Qwen-VL's ``visual.merger``, Idefics3's
``connector``) are not neurons of either tower: they sit outside both towers, or outside the tower's
list of blocks, and are ignored — as in MANU, MMUnlearner and MIP-Editor, which score only the
per-layer MLPs.

Tested on LLaVA (CLIP + Llama), Qwen2-VL, Qwen2.5-VL and Idefics3 built from configs.
Not supported: mixture-of-experts MLPs (several MLPs in one layer raise a ValueError).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from torch import nn

from .vlm import VLM

TOWERS = {"vision": "vision_config", "language": "text_config"}   # tower -> the sub-config that identifies it
LOOKED_FOR = ("modules owning a `down_proj` nn.Linear (gated MLP) or an `fc1` + `fc2` pair of nn.Linear "
              "(CLIP-style MLP), inside the tower's ModuleList of layers")


@dataclass(frozen=True)
class NeuronSite:
    """The neurons of one MLP layer: the input of ``name`` (``down_proj`` or ``fc2``), ``width`` wide."""

    tower: str                   # "vision" | "language"
    layer: int                   # index of the block within its tower
    name: str                    # full module name of the consumer, e.g. model.language_model.layers.1.mlp.down_proj
    width: int                   # number of neurons = the consumer's in_features
    producers: tuple[str, ...]   # full names of the Linear(s) that compute them: (fc1,) or (gate_proj, up_proj)

    @property
    def mlp(self) -> str:
        """Full name of the MLP module that owns the consumer and producers."""
        return self.name.rsplit(".", 1)[0]

    @property
    def gated(self) -> bool:
        """True for a SwiGLU MLP (neurons feed ``down_proj``), False for a CLIP-style one (``fc2``)."""
        return self.name.endswith("down_proj")

    def module(self, model: nn.Module) -> nn.Linear:
        """The consuming Linear: a forward pre-hook on it sees the neuron activations."""
        return _unwrap(model).get_submodule(self.name)

    def producer_modules(self, model: nn.Module) -> list[nn.Linear]:
        """The Linear(s) whose output rows are these neurons (zero row ``j`` of each to prune neuron ``j``)."""
        model = _unwrap(model)
        return [model.get_submodule(name) for name in self.producers]

    def __str__(self) -> str:
        return f"{self.tower}[{self.layer}] {self.name} ({self.width} neurons)"


def _unwrap(model) -> nn.Module:
    """Accept a ``VLM`` as well as the bare Hugging Face model."""
    return model.model if isinstance(model, VLM) else model


def _is_linear(module) -> bool:
    return isinstance(module, nn.Linear)


def find_towers(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """``{"vision": (name, module), "language": (name, module)}``, found by their configs, not their paths."""
    model = _unwrap(model)
    config = getattr(model, "config", None)
    towers = {}
    for tower, key in TOWERS.items():
        sub_config = getattr(config, key, None)
        if sub_config is None:
            raise ValueError(f"{type(model).__name__} is not a supported VLM: model.config has no `{key}` "
                             f"(looked for a {tower} tower as the submodule whose .config is model.config.{key})")
        # named_modules() is pre-order, so the first hit is the outermost module of the tower.
        # Identity first; equality as a fallback for wrappers that copy the config.
        candidates = list(model.named_modules())
        found = next(((n, m) for n, m in candidates if getattr(m, "config", None) is sub_config), None)
        found = found or next(((n, m) for n, m in candidates if n and getattr(m, "config", None) == sub_config), None)
        if found is None:
            raise ValueError(f"found no {tower} tower in {type(model).__name__}: looked for a submodule whose "
                             f".config is model.config.{key}")
        towers[tower] = found
    return towers


def _layer_of(tower: nn.Module, relative_name: str) -> tuple[str, int] | None:
    """(name of the enclosing ModuleList, index in it) for a module inside the tower, or None."""
    parts = relative_name.split(".")
    for i in range(len(parts) - 1, 0, -1):       # the innermost ModuleList wins
        parent = ".".join(parts[:i])
        if parts[i].isdigit() and isinstance(tower.get_submodule(parent), nn.ModuleList):
            return parent, int(parts[i])
    return None


def _mlp_in(module: nn.Module) -> tuple[str, list[str]] | None:
    """(consumer, producers) child names if ``module`` is an MLP we recognise, else None."""
    children = {name: child for name, child in module.named_children() if _is_linear(child)}
    if "down_proj" in children:
        consumer = "down_proj"
    elif "fc1" in children and "fc2" in children:
        consumer = "fc2"
    else:
        return None
    return consumer, [name for name in children if name != consumer]


def find_mlp_neurons(model: nn.Module) -> list[NeuronSite]:
    """Every MLP neuron site of both towers: vision layers first, then language, each in layer order."""
    model = _unwrap(model)
    sites = []
    for tower, (tower_name, tower_module) in find_towers(model).items():
        prefix = f"{tower_name}." if tower_name else ""
        by_list: dict[str, list[NeuronSite]] = {}
        for name, module in tower_module.named_modules():
            mlp = _mlp_in(module)
            where = _layer_of(tower_module, name) if mlp else None
            if where is None:                     # not an MLP, or one outside the list of blocks (a merger)
                continue
            consumer, producers = mlp
            blocks, layer = where
            width = module.get_submodule(consumer).in_features
            by_list.setdefault(blocks, []).append(NeuronSite(
                tower, layer, f"{prefix}{name}.{consumer}", width, tuple(f"{prefix}{name}.{p}" for p in producers)))
        if not by_list:
            raise ValueError(f"found no MLP neurons in the {tower} tower ({tower_name}, "
                             f"{type(tower_module).__name__}): looked for {LOOKED_FOR}")
        # The tower's blocks are the ModuleList holding the most MLPs (others would be e.g. deep-stack mergers).
        found = max(by_list.values(), key=len)
        layers = [site.layer for site in found]
        if len(set(layers)) != len(layers):
            raise ValueError(f"several MLPs in one layer of the {tower} tower ({[s.name for s in found]}); "
                             f"mixture-of-experts MLPs are not supported")
        sites += sorted(found, key=lambda site: site.layer)
    return sites


PROJECTOR_NAMES = ("projector", "connector", "merger")   # LLaVA, Idefics2/3, Qwen-VL (inside its vision tower)


def part_of(name: str, towers: dict[str, str]) -> str:
    """Which part of a VLM a parameter belongs to: a tower, the projector, the LM head, or other.

    ``towers``: tower → module name, as :func:`find_towers` finds them. A projector that lives inside
    the vision tower (Qwen-VL's ``visual.merger``) counts as vision."""
    for tower, prefix in towers.items():
        if name.startswith(prefix + "."):
            return tower
    if any(word in name for word in PROJECTOR_NAMES):
        return "projector"
    if "lm_head" in name:
        return "lm_head"
    return "other"


def summary(model: nn.Module) -> pd.DataFrame:
    """One row per MLP layer: tower, layer, consuming module, neurons."""
    return pd.DataFrame([{"tower": s.tower, "layer": s.layer, "module": s.name, "neurons": s.width}
                         for s in find_mlp_neurons(model)])


def count_neurons(model: nn.Module) -> dict[str, int]:
    """Total MLP neurons per tower, e.g. ``{"vision": 512, "language": 1024}``."""
    counts = {tower: 0 for tower in TOWERS}
    for site in find_mlp_neurons(model):
        counts[site.tower] += site.width
    return counts
