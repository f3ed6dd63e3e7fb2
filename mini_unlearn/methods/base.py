"""The method registry and ``unlearn()``: one call for every unlearning method (chapter 04).

    result = mu.unlearn(vlm, bench, method="ga", ratio=0.05, lr=3e-5, steps=80)
    result.vlm          # a NEW model; the input is never modified
    result              # prints what changed: steps, losses, parameters touched
    result.to_frame()   # the loss log as a DataFrame

A method is registered with its hyperparameters as a frozen dataclass (the papers' defaults where
they apply to a model this size) and a function that edits a *copy* of the model. ``unlearn``
validates everything before any weight changes: the method name, each hyperparameter name and
value, the forget ratio and the forget/retain sets.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping

import pandas as pd
import torch

from ..bench.splits import require_ratio
from ..models import sharding
from ..models.anatomy import find_towers, part_of
from ..models.vlm import VLM
from ..text import fit
from .. import validate


@dataclass(frozen=True)
class MethodSpec:
    """Everything the package knows about a registered method, in one place (:func:`register`).

    Who reads what: :func:`unlearn` the config, ``prepare``, ``run`` and ``shards``; :mod:`.memory` (``footprint``)
    ``trains``, ``reads_input``, ``holds_reference``, ``statistics_per_weight`` and ``lora_on_head``;
    :mod:`mini_unlearn.results.tuning` ``grid`` and ``while_tuning``; :mod:`mini_unlearn.results` (what
    "forgotten" means) ``goal``; the tests ``quick``. Listings follow the order of registration."""

    name: str
    config: type
    run: Callable
    summary: str
    goal: str = "forget_both"     # a key of mu.evaluation.GOALS: what "forgotten" means for this method
    prepare: Callable | None = None   # (vlm, bench, ratio, config, progress) -> extra arguments of run,
    #                                   validated and built before the model is copied
    reads_input: bool = False         # reads the (frozen) input model at every step: KL, hidden-state targets
    holds_reference: bool = False     # holds another frozen model at every step (NPO's reference)
    trains: Callable | None = None    # (model, config) -> the tensors it updates: gradients and AdamW state
    statistics_per_weight: int = 0    # fp32 numbers kept per trained weight besides (MMUnlearner's saliencies)
    lora_on_head: bool = False        # with lora_rank, its adapters include the LM head (MMUnlearner's mask)
    shards: bool = False              # its training has a sharded form (FSDP2, ..models.sharding)
    grid: dict = field(default_factory=dict)           # the tuning grid: hyperparameter -> values to try
    while_tuning: dict = field(default_factory=dict)   # hyperparameters fixed while tuning only
    quick: dict = field(default_factory=dict)          # a run of seconds on a tiny model (the tests')


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, config: type, summary: str, goal: str = "forget_both", prepare: Callable | None = None,
             reads_input: bool = False, **about):
    """Decorator: ``@register("ga", GAConfig, "gradient ascent", trains=..., grid=..., quick=...)`` over
    ``run(vlm, bench, ratio, config, **context)``: the one place a method says everything about itself.

    ``prepare(vlm, bench, ratio, config, progress=...)`` returns the data and references ``run`` receives
    as keyword arguments; it runs before any weight changes, so its errors leave the model untouched.
    ``about``: the other fields of :class:`MethodSpec` (``trains``, ``holds_reference``,
    ``statistics_per_weight``, ``lora_on_head``, ``shards``, ``grid``, ``while_tuning``, ``quick``). Every setting of
    ``grid`` (with ``while_tuning``) and ``quick`` must be a valid config, checked here."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"the config of method {name!r} must be a dataclass; got {config!r}")
    fields = {f.name for f in dataclasses.fields(MethodSpec)} - {"name", "config", "run", "summary", "goal",
                                                                 "prepare", "reads_input"}
    unknown = sorted(set(about) - fields)
    if unknown:
        raise TypeError(f"register: no field {', '.join(map(repr, unknown))}; the fields are {sorted(fields)}")
    grid = about.get("grid") or {}
    if any(not isinstance(values, (list, tuple)) or not values for values in grid.values()):
        raise ValueError(f"grid of method {name!r}: each hyperparameter needs a non-empty list of values; got {grid!r}")
    for setting in grid_settings(grid):
        config(**{**setting, **(about.get("while_tuning") or {})})
    config(**(about.get("quick") or {}))

    def decorate(run: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"a method named {name!r} is already registered")
        _REGISTRY[name] = MethodSpec(name, config, run, summary, goal, prepare, reads_input, **about)
        return run
    return decorate


def grid_settings(grid: dict) -> list[dict]:
    """Every setting of a grid (every key × every value), in order."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def available() -> list[str]:
    """The names ``unlearn`` accepts, in the order they were registered."""
    return list(_REGISTRY)


class RegistryField(Mapping):
    """One field of every registered method, by name, read live from the registry: e.g.
    ``RegistryField("grid")["manu"]`` is MANU's tuning grid. Methods whose value is empty are left out,
    the order is the registration order, and a method registered later (in a test, a notebook) shows up."""

    def __init__(self, field_name: str):
        if field_name not in {f.name for f in dataclasses.fields(MethodSpec)}:
            raise ValueError(f"MethodSpec has no field {field_name!r}")
        self.field_name = field_name

    def __getitem__(self, method: str):
        value = getattr(_REGISTRY[method], self.field_name) if method in _REGISTRY else None
        if not value:
            raise KeyError(method)
        return value

    def __iter__(self):
        return (name for name, spec in _REGISTRY.items() if getattr(spec, self.field_name))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"RegistryField({self.field_name!r}: {dict(self)!r})"


def get(method: str) -> MethodSpec:
    if not isinstance(method, str) or method not in _REGISTRY:
        raise ValueError(f"unknown method {method!r}; available: {available()}")
    return _REGISTRY[method]


def make_config(method: str, **hyperparameters):
    """The method's hyperparameter dataclass, with a clear error for a name it does not have."""
    spec = get(method)
    names = [f.name for f in dataclasses.fields(spec.config)]
    old_spellings = set(inspect.signature(spec.config).parameters) - set(names)   # InitVars: they still work
    unknown = [key for key in hyperparameters if key not in names and key not in old_spellings]
    if unknown:
        raise TypeError(f"method {method!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                        f"its hyperparameters are {names}")
    return spec.config(**hyperparameters)


def describe() -> pd.DataFrame:
    """One row per registered method: what it does, its goal and its default hyperparameters."""
    rows = []
    for spec in _REGISTRY.values():
        defaults = {f.name: f.default for f in dataclasses.fields(spec.config)}
        rows.append({"method": spec.name, "summary": spec.summary, "goal": spec.goal,
                     "defaults": ", ".join(f"{k}={v}" for k, v in defaults.items())})
    return pd.DataFrame(rows).set_index("method")


# ---------------------------------------------------------------------------------------------------
# What a run records

def share_text(part: int, whole: int) -> str:
    """``part / whole`` as a percentage for printing: ``0`` only when nothing changed, ``<0.1%`` for a few.

    Rounded to 0.1% so that a handful of entries more or less (one CPU's kernels against another's)
    prints the same; a near-total share therefore prints as 100.0%."""
    if part == 0:
        return "0"
    share = part / whole
    return "<0.1%" if share < 0.001 else f"{share:.1%}"


def changed_parameters(before: torch.nn.Module, after: torch.nn.Module) -> pd.DataFrame:
    """Per parameter tensor: its part, size, and how many of its entries differ between two models.

    A tensor shared under two names (an LM head tied to the input embeddings) is listed under both,
    each naming the other in ``tied_to``: an edit to one is an edit to the other."""
    towers = {tower: name for tower, (name, _) in find_towers(after).items()}
    old = dict(before.named_parameters(remove_duplicate=False))
    named = list(after.named_parameters(remove_duplicate=False))
    names_of: dict[int, list[str]] = {}
    for name, value in named:
        names_of.setdefault(id(value), []).append(name)
    rows = []
    for name, value in named:
        changed = int((value.detach().cpu() != old[name].detach().cpu()).sum())
        rows.append({"parameter": name, "part": part_of(name, towers), "numel": value.numel(), "changed": changed,
                     "tied_to": ", ".join(n for n in names_of[id(value)] if n != name)})
    return pd.DataFrame(rows)


@dataclass
class UnlearnLog:
    """Per-step losses, the monitor's probes, and the wall time of the updates."""

    losses: list[dict[str, float]] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)       # {"step": s, name: value, ...}
    seconds: float = 0.0
    details: dict = field(default_factory=dict)            # method-specific: e.g. MANU's scores and selection

    def probe_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.probes).set_index("step") if self.probes else pd.DataFrame()


@dataclass
class UnlearnResult:
    """A new VLM and what it took: the method, its hyperparameters, the log, and the parameters touched."""

    vlm: VLM
    method: str
    ratio: float
    config: object
    log: UnlearnLog
    touched: pd.DataFrame            # changed_parameters(input model, result model)

    def to_frame(self) -> pd.DataFrame:
        """The loss log: one row per step, one column per loss term."""
        frame = pd.DataFrame(self.log.losses)
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="step")
        return frame

    def touched_by_part(self) -> pd.DataFrame:
        """Per part of the model: tensors and entries changed, out of how many."""
        grouped = self.touched.assign(tensor_changed=self.touched["changed"] > 0).groupby("part", sort=False)
        return grouped.agg(tensors=("parameter", "size"), tensors_changed=("tensor_changed", "sum"),
                           entries=("numel", "sum"), entries_changed=("changed", "sum"))

    def __repr__(self) -> str:
        settings = ", ".join(f"{f.name}={getattr(self.config, f.name)}" for f in dataclasses.fields(self.config)
                             if not isinstance(getattr(self.config, f.name), VLM))
        last = self.log.losses[-1] if self.log.losses else {}
        losses = ", ".join(f"{k} {v:.3f}" for k, v in last.items())
        head = (f"UnlearnResult({self.method!r}, ratio={self.ratio}: {len(self.log.losses)} steps"
                f"{'; final ' + losses if losses else ''})\n  {settings}")
        head = fit(head) + "\n"
        # the share of entries changed, not the count: whether an entry with a near-zero gradient moves
        # at all depends on the CPU's kernels (touched_by_part() has the exact counts)
        table = self.touched_by_part()
        table["share_changed"] = [share_text(changed, total)
                                  for changed, total in zip(table.pop("entries_changed"), table["entries"])]
        tied = self.touched[(self.touched["tied_to"] != "") & (self.touched["changed"] > 0)] \
            if "tied_to" in self.touched else self.touched.iloc[:0]
        notes = "".join(f"\n  {row.parameter} is tied to {row.tied_to}: an edit to one is an edit to the other"
                        for row in tied.itertuples() if row.part == "lm_head")
        return head + table.to_string() + notes


# ---------------------------------------------------------------------------------------------------
# The one entry point

def same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are the same device (when 0 is the current one)."""
    index = lambda d: d.index if d.index is not None else (torch.cuda.current_device() if d.type == "cuda" else 0)
    return a.type == b.type and index(a) == index(b)


def require_shardable(spec: MethodSpec, config, device) -> None:
    """Raise :class:`~mini_unlearn.models.sharding.ShardingError`, before anything is copied, for what a
    sharded run cannot do, naming what to do instead."""
    if not spec.shards:
        shardable = [name for name, other in _REGISTRY.items() if other.shards]
        raise sharding.ShardingError(
            f"method {spec.name!r} has no sharded form yet (those that have one: {shardable}); launch it without "
            "FSDP (data parallelism: every process holds the whole model)")
    if getattr(config, "lora_rank", 0):
        raise sharding.ShardingError(
            f"lora_rank={config.lora_rank}: LoRA adapters are not sharded; LoRA fits a 7 B model on one GPU "
            "(chapter 11): launch without FSDP, or set lora_rank=0 to shard the full model")
    if device is not None:
        raise sharding.ShardingError(f"device={device!r}: in a sharded run each process edits its shard on its own "
                                     "device (the launcher's); leave device unset")


def trains_nothing(spec: MethodSpec, model: torch.nn.Module, config) -> bool:
    """Whether ``spec`` at ``config`` trains no weight of ``model`` (MANU, MIP-Editor's ``edit="prune"``: they
    zero weights chosen by a statistics pass)."""
    return spec.trains is not None and not list(spec.trains(model, config))


def sharded_copies(vlm: VLM, spec: MethodSpec, context: dict) -> tuple[VLM, VLM, dict]:
    """The copy to edit, the input as the method reads it, and the context, each model sharded
    (:func:`~mini_unlearn.models.sharding.shard`): a frozen reference is split like the model it guides.
    The input itself is never sharded: what reads it gets a sharded copy."""
    new = sharding.sharded_copy(vlm)
    original = sharding.sharded_copy(vlm) if spec.reads_input else vlm
    context = {name: sharding.sharded_copy(value) if isinstance(value, VLM) else value
               for name, value in context.items()}
    return new, original, context


def gathered(vlm: VLM, sharded_vlm: VLM) -> VLM:
    """A plain copy of ``vlm`` holding the sharded model's weights, whole (the result of a sharded run)."""
    result = vlm.copy()
    result.model.load_state_dict(sharding.full_state(sharded_vlm.model))
    result.card = sharded_vlm.card
    return result


def unlearn(vlm: VLM, bench, method: str, ratio: float = 0.05, *, progress: bool = True, monitor=None,
            probe_every: int = 0, device: str | torch.device | None = None, **hyperparameters) -> UnlearnResult:
    """Run ``method`` on a copy of ``vlm`` to forget the ``ratio`` forget split of ``bench``.

    ``hyperparameters`` are the method's (``mu.methods.describe()`` lists them). ``monitor``, a
    callable ``model -> {name: value}`` (e.g. :func:`mini_unlearn.methods.split_monitor`), is called
    before the first step and every ``probe_every`` steps. The input model is never modified.

    ``device``: where the copy is edited (default: the input's device). A model loaded on the CPU and
    unlearned with ``device="cuda"`` stays on the CPU: only its copy (and, for the methods that read
    the input at every step, a frozen copy of it) goes to the GPU (:mod:`.memory`).

    Under ``accelerate launch`` with the package's FSDP2 config (:mod:`..models.sharding`) the copy,
    and every frozen model the method reads, is sharded across the processes; the result is one
    ordinary model again, on the input's device, on every process. A method that trains nothing
    (MANU, MIP-Editor's pruning) edits an ordinary copy, and its statistics pass reads a sharded one.
    """
    if not isinstance(vlm, VLM):
        raise TypeError(f"vlm must be a mini_unlearn VLM (model + processor); got {type(vlm).__name__}")
    spec = get(method)
    config = make_config(method, **hyperparameters)
    ratio = require_ratio(ratio)
    validate.positive_int(probe_every, "probe_every", allow_zero=True, hint="0 = only before and after")
    # Under an FSDP2 launcher a method that trains has its copy sharded. One that trains nothing edits an
    # ordinary copy (zeroing weights needs no gradient or optimizer state); its statistics pass reads a
    # sharded copy all the same (sharding.for_pass).
    sharded = sharding.requested() and not trains_nothing(spec, vlm.model, config)
    if sharded:
        require_shardable(spec, config, device)
    target = torch.device(device) if device is not None else vlm.device
    context = spec.prepare(vlm, bench, ratio, config, progress=progress) if spec.prepare else {}   # validated up front

    if sharded:
        new, original, context = sharded_copies(vlm, spec, context)
    else:
        moved = not same_device(target, vlm.device)
        new = vlm.copy(device=target if moved else None)
        original = vlm
        if moved:                           # the methods read their references on the copy's device
            original = vlm.copy(device=target) if spec.reads_input else vlm
            context = {name: value.copy(device=target) if isinstance(value, VLM)
                       and not same_device(value.device, target) else value for name, value in context.items()}
    started = time.perf_counter()
    log = spec.run(new, bench, ratio, config, original=original, progress=progress, monitor=monitor,
                   probe_every=probe_every, **context)
    if sharded:                          # one ordinary model again, on the input's device, on every process
        new = gathered(vlm, new)
    new.model.eval()
    new.card = {**new.card, "unlearned": {"method": method, "ratio": ratio, "steps": len(log.losses),
                                          "config": {f.name: repr(getattr(config, f.name))
                                                     for f in dataclasses.fields(config)},
                                          "wall_seconds": round(time.perf_counter() - started, 2)}}
    return UnlearnResult(new, method, ratio, config, log, changed_parameters(vlm.model, new.model))


__all__ = ["MethodSpec", "RegistryField", "UnlearnLog", "UnlearnResult", "available", "changed_parameters",
           "describe", "gathered", "get", "grid_settings", "make_config", "part_of", "register", "require_shardable",
           "sharded_copies", "trains_nothing", "unlearn"]
