"""The quantization attack: store the unlearned model's weights in 8 or 4 bits, and ask again (chapter 12).

Why it can work. A 4-bit format stores each weight as one of 16 values (NF4: 16 levels spread like a normal
distribution, scaled by the largest weight of each block of 64); two neighbouring levels lie 8 % (near zero) to
30 % (at the ends) of that largest weight apart. Unlearning with a small learning rate moves most weights by far
less than that gap, so rounding the unlearned weights to the nearest level puts them back on the **same** level
as the original model's: the quantized unlearned model is, weight for weight, close to the quantized original,
and what was forgotten comes back. 8 bits (LLM.int8(): 255 levels per row) round much more finely and undo far
less.

The attack (Zhang et al., ICLR 2025, "Catastrophic failure of LLM unlearning via quantization") is only that:
no gradient, no data; the attacker downloads the unlearned model and runs it the way it is deployed, quantized.
Here the weights are quantized by ``bitsandbytes``, the library the paper used (:func:`quantize`: the model is
saved with safetensors to a temporary folder and loaded back through ``BitsAndBytesConfig``; every
``nn.Linear`` but the output head becomes a ``Linear4bit`` or ``Linear8bitLt``, the rest stays as it was).

What is measured. :func:`quantization_attack` reads the forget and retain people's facts — teacher-forced
exact match of their cloze answers on the canonical portraits and by name, chapter 09's surface metric
(``recall_probes``' "as trained: cloze", :func:`readings`) — at full precision and at each bit width, for the
audited model **and** for the vanilla and retain-only models quantized the same way. Per precision and
modality,

    retained = (unlearned − retain-only) / (vanilla − retain-only)

is the share of the vanilla → retain-only gap on the forget people that the model still holds
(:func:`retained_share`): 0 = it recalls them like a model that never saw them, 1 = like the vanilla model.
The anchors are read **at the same precision** as the model (quantization costs the vanilla model some recall
too, which is not the attack's doing); it is NaN where the two anchors differ by less than 0.05 (the reading
does not separate them, as in :func:`~.auditing.gap_closed`, of which it is the complement). ``recovered``
is retained at b bits − retained at full precision: how much of the forgotten gap came back.

The paper's figures, and what ours is and is not comparable to. Zhang et al. report that unlearning methods with
a utility constraint (GA and NPO with a retain loss, on MUSE's NEWS and BOOKS, text LLMs) keep 21 % of the
forgotten knowledge at full precision and 83 % after 4-bit quantization, measured with MUSE's memorisation
metrics (VerbMem, KnowMem) on the forget set. Ours is a share of the gap between the vanilla model and the
retain-only model, which our benchmark can train (its people never existed), so what a model that never saw
the people recalls anyway counts as forgotten; it reads exact-match recall of short cloze answers, per
modality, of a small VLM. The same library and the same question (does rounding undo the unlearning?), so the
*direction* compares (their released code loads ``load_in_4bit=True`` with bitsandbytes' default 4-bit type,
FP4; ours stores NF4, the type QLoRA introduced): a method whose figure rises with fewer bits only hid the people.
The *sizes* do not: how much comes back depends on how many of a method's changes cross a level, and which
(:func:`same_levels` counts the changed weights that stay at the original's level); a small model trained hard
and a 7B model unlearned gently need not agree, so chapter 12 measures it on the course model.

Bad bit widths (anything but 8 and 4: 3, 16, ``"4"``) are refused before anything is saved or loaded; without
``bitsandbytes`` installed the attack raises an ImportError that names ``pip install "mini_unlearn[quantization]"``.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import logging
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import validate
from ..bench.questions import MODALITIES
from ..bench.splits import require_ratio
from ..models.families import family_of
from ..models.load import quiet_transformers, require_loading_info
from ..models.train import Monitor
from ..models.vlm import VLM, progress_bars

SUPPORTED_BITS: tuple[int, ...] = (8, 4)
DEFAULT_BITS: tuple[int, ...] = (8, 4)
FULL = "full"                 # the precision label of the model as it was given
FLOOR = 0.05                  # anchors closer than this: the reading does not separate them (retained is NaN)
SPLITS: tuple[str, ...] = ("forget", "retain")
INSTALL = 'pip install "mini_unlearn[quantization]"'
FORMATS = {4: "NF4 (4-bit NormalFloat, blocks of 64)", 8: "LLM.int8() (8-bit, per row)"}


# ---- the arguments -------------------------------------------------------------------------------------------
def require_bits(bits, name: str = "bits") -> int:
    """``bits`` if it is a bit width the attack supports (8 or 4, an integer); else a clear error naming ``name``."""
    if not validate.is_integer(bits):
        raise validate.WrongTypeError(f"{name} must be an integer bit width, one of {SUPPORTED_BITS}; "
                                      f"got {bits!r} ({type(bits).__name__})")
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"{name} must be one of {SUPPORTED_BITS} (bitsandbytes stores weights in 8-bit "
                         f"LLM.int8() or 4-bit NF4); got {bits!r}")
    return bits


def require_bit_widths(bits, name: str = "bits") -> tuple[int, ...]:
    """A tuple of supported bit widths from one width or several, each checked, none twice, at least one."""
    widths = (bits,) if validate.is_integer(bits) or isinstance(bits, (str, bytes)) or not isinstance(bits, Iterable) \
        else tuple(bits)
    if not widths:
        raise ValueError(f"{name} is empty: name at least one bit width of {SUPPORTED_BITS}")
    widths = tuple(require_bits(b, f"each of {name}" if len(widths) > 1 else name) for b in widths)
    if len(set(widths)) != len(widths):
        raise ValueError(f"{name} names a bit width twice: {widths!r}")
    return widths


def require_bitsandbytes() -> None:
    """An ImportError naming the extra to install when ``bitsandbytes`` is missing."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(f"the quantization attack needs bitsandbytes, which is not installed: {INSTALL} "
                          f"(or pip install bitsandbytes)")


def require_vlm(vlm, name: str = "vlm") -> VLM:
    """``vlm`` if it is a mini_unlearn VLM whose weights are not quantized already."""
    if not isinstance(vlm, VLM):
        raise validate.WrongTypeError(f"{name} must be a mini_unlearn VLM (a model and its processor); "
                                      f"got {type(vlm).__name__}")
    if is_quantized(vlm):
        raise ValueError(f"{name} is quantized already ({vlm.card.get('quantized', 'bitsandbytes layers')}); "
                         f"pass the model at full precision: the attack quantizes it itself")
    return vlm


def is_quantized(vlm) -> bool:
    """Whether ``vlm``'s weights were quantized (by :func:`quantize`, or loaded with a quantization config)."""
    return "quantized" in (getattr(vlm, "card", {}) or {}) or \
        getattr(getattr(vlm, "model", None), "hf_quantizer", None) is not None


# ---- quantizing a model --------------------------------------------------------------------------------------
@contextmanager
def quiet_bitsandbytes():
    """bitsandbytes logs errors only, inside: on the CPU it warns at import when an optional kernel package is
    missing, and an 8-bit layer warns at every call that it casts its input to float16."""
    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def float_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point weights (float32 for the course's models)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def quantization_config(bits: int, dtype: torch.dtype = torch.float32):
    """The ``BitsAndBytesConfig`` of ``bits``: 4-bit NF4 computing in ``dtype``, or 8-bit LLM.int8()."""
    from transformers import BitsAndBytesConfig

    bits = require_bits(bits)
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def quantize(vlm: VLM, bits: int, *, progress: bool = False) -> VLM:
    """A new VLM whose linear layers hold ``vlm``'s weights quantized by bitsandbytes to ``bits`` (8 or 4).

    ``vlm`` is saved (safetensors) to a fresh temporary folder and loaded back with a ``BitsAndBytesConfig``
    on its own device: every ``nn.Linear`` but the output head becomes a ``bitsandbytes`` ``Linear4bit``
    (NF4, computing in the model's dtype) or ``Linear8bitLt`` (LLM.int8()); embeddings, norms and the head keep
    their dtype. ``vlm`` is never modified; the new model shares its processor, and its card is a copy with a
    ``"quantized"`` entry. The bit width and the library are checked before anything is saved.
    """
    bits = require_bits(bits)
    require_vlm(vlm)
    require_bitsandbytes()
    with quiet_bitsandbytes():
        import bitsandbytes

    dtype, device = float_dtype(vlm.model), vlm.device
    config = quantization_config(bits, dtype)
    with tempfile.TemporaryDirectory(prefix="mini_unlearn-quantize-", ignore_cleanup_errors=True) as folder:
        path = Path(folder) / "model"
        with progress_bars(False), torch.no_grad():
            vlm.model.save_pretrained(path, safe_serialization=True)
        family = family_of(json.loads((path / "config.json").read_text()))
        with progress_bars(progress), quiet_transformers(), quiet_bitsandbytes():
            model, info = family.model_class.from_pretrained(
                path, quantization_config=config, device_map={"": str(device)}, dtype=dtype,
                use_safetensors=True, output_loading_info=True)
        require_loading_info(info, path)
    card = copy.deepcopy(vlm.card)
    card["quantized"] = {"bits": bits, "format": FORMATS[bits], "library": f"bitsandbytes {bitsandbytes.__version__}"}
    return VLM(model.eval(), vlm.processor, card)


def stored_weights(quantized: VLM) -> dict[str, torch.Tensor]:
    """Every quantized layer's weight as the model computes with it (dequantized, float32), by parameter name."""
    with quiet_bitsandbytes():
        import bitsandbytes as bnb
        from bitsandbytes.functional import dequantize_4bit
    out = {}
    for name, module in quantized.model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = dequantize_4bit(module.weight.data, module.weight.quant_state)
        elif isinstance(module, bnb.nn.Linear8bitLt):
            weight = module.weight.data.float() * module.weight.SCB.float()[:, None] / 127
        else:
            continue
        out[f"{name}.weight"] = weight.float().reshape(module.out_features, module.in_features)
    return out


def stored_levels(quantized: VLM) -> dict[str, torch.Tensor]:
    """Every quantized layer's weights as the levels they are stored at, by parameter name: the 4-bit NF4 code
    (0–15; the value is the code's NF4 level times the block's scale) or the 8-bit integer (−127–127; times the
    row's scale)."""
    with quiet_bitsandbytes():
        import bitsandbytes as bnb
    out = {}
    for name, module in quantized.model.named_modules():
        shape = (module.out_features, module.in_features) if isinstance(module, torch.nn.Linear) else None
        if isinstance(module, bnb.nn.Linear4bit):
            packed = module.weight.data.view(torch.uint8).flatten()       # two codes a byte, the first one high
            codes = torch.stack([packed >> 4, packed & 15], dim=-1).flatten()[:shape[0] * shape[1]]
            out[f"{name}.weight"] = codes.reshape(shape)
        elif isinstance(module, bnb.nn.Linear8bitLt):
            out[f"{name}.weight"] = module.weight.data.reshape(shape)
    return out


def same_levels(original: VLM, unlearned: VLM, bits: int = 4) -> pd.DataFrame:
    """Why the attack works, weight by weight: of the weights the unlearning changed, how many are stored at the
    **same level** as the original model's once both are quantized to ``bits`` (the same 4-bit code or 8-bit
    integer: the change is rounded away, up to a slightly different scale of its block or row).

    One row per quantized layer: ``layer``, ``weights``, ``changed`` (weights that differ at full precision),
    ``same_level`` (how many of those are stored at the original's level). Both models are quantized on copies
    (:func:`quantize`); neither is modified."""
    bits = require_bits(bits)
    require_vlm(original, "original")
    require_vlm(unlearned, "unlearned")
    before, after = dict(original.model.named_parameters()), dict(unlearned.model.named_parameters())
    if before.keys() != after.keys() or any(before[n].shape != after[n].shape for n in before):
        raise ValueError("unlearned: expected the same architecture as original (an unlearned copy of it)")
    levels = {"original": stored_levels(quantize(original, bits)), "unlearned": stored_levels(quantize(unlearned, bits))}
    rows = []
    for name, kept in levels["original"].items():
        changed = before[name].detach().cpu() != after[name].detach().cpu()
        same = kept.cpu() == levels["unlearned"][name].cpu()
        rows.append({"layer": name.removesuffix(".weight"), "weights": changed.numel(), "changed": int(changed.sum()),
                     "same_level": int((changed & same).sum())})
    return pd.DataFrame(rows)


# ---- reading the forget and retain people ---------------------------------------------------------------------
def precision_label(bits: int | None) -> str:
    """``"full"`` for the model as given, ``"8-bit"`` / ``"4-bit"`` for a quantized one."""
    return FULL if bits is None else f"{bits}-bit"


def readings(vlm: VLM, bench, ratio: float = 0.05, bits=DEFAULT_BITS, *, splits: tuple[str, ...] = SPLITS,
             tasks: tuple[str, ...] = ("cloze",), batch_size: int = 64, progress: bool = False) -> pd.DataFrame:
    """``vlm``'s recall of the forget and retain people (``splits``) at full precision and quantized to each of
    ``bits``.

    One row per precision × split × modality × task: ``precision`` (``"full"``, ``"8-bit"``, ``"4-bit"``),
    ``bits`` (the stored width: the model's own float width at full precision), ``split``, ``modality``,
    ``task``, ``recall`` (teacher-forced exact match on the canonical portraits, as chapter 09's recall probes
    read it). ``vlm`` is never modified."""
    require_vlm(vlm)
    ratio = require_ratio(ratio)
    widths = require_bit_widths(bits)
    tasks = tuple(validate.one_of(task, "each of tasks", ("gen", "cloze")) for task in tasks) \
        if not isinstance(tasks, str) else (validate.one_of(tasks, "tasks", ("gen", "cloze")),)
    batch_size = validate.positive_int(batch_size, "batch_size")
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits:
        raise ValueError(f"splits is empty: name some of {SPLITS}")
    monitors = {}
    for split in (validate.one_of(split, "each of splits", SPLITS) for split in splits):
        questions = [q for q in bench.split(split, ratio).questions if q.task in tasks]
        if not questions:
            raise ValueError(f"the {split!r} split at ratio={ratio} has no {tasks} question to read")
        monitors[split] = Monitor(vlm, bench, questions=questions, images="canonical", batch_size=batch_size)
    require_bitsandbytes()
    rows = []
    for width in tqdm((None, *widths), desc="quantization", disable=not progress):
        model = vlm if width is None else quantize(vlm, width)
        stored = torch.finfo(float_dtype(vlm.model)).bits if width is None else width
        with quiet_bitsandbytes():
            for split, monitor in monitors.items():
                for key, value in monitor(model.model).items():
                    task, modality = key.split("/")
                    rows.append({"precision": precision_label(width), "bits": stored, "split": split,
                                 "modality": modality, "task": task, "recall": float(value)})
        del model
    return pd.DataFrame(rows)


# ---- the retained share and the recovery ----------------------------------------------------------------------
def retained_share(unlearned: float, vanilla: float, reference: float, floor: float = FLOOR) -> float:
    """The share of the vanilla → retain-only gap that ``unlearned`` still holds:
    ``(unlearned − reference) / (vanilla − reference)``; 0 = like the retain-only model, 1 = like the vanilla.

    All three read at the same precision. NaN when the two anchors differ by less than ``floor`` (the reading
    does not separate a model that knows the people from one that never saw them). It is
    ``1 − gap_closed(unlearned, vanilla, reference)``."""
    if abs(vanilla - reference) < floor:
        return float("nan")
    return float((unlearned - reference) / (vanilla - reference))


def retained_shares(scores: pd.DataFrame, floor: float = FLOOR) -> pd.Series:
    """Per precision, :func:`retained_share` of the ``"model"`` column against the ``"vanilla"`` and
    ``"reference"`` (retain-only) columns **of the same row** — each precision's own anchors (exercise 12.1).

    ``scores``: one row per precision (the index, e.g. ``"full"``, ``"8-bit"``, ``"4-bit"``), the three
    models' forget recall at that precision. Returns a Series ``retained`` on the same index."""
    return pd.Series([retained_share(row["model"], row["vanilla"], row["reference"], floor)
                      for _, row in scores.iterrows()], index=scores.index, name="retained", dtype=float)


COLUMNS = ("precision", "bits", "modality", "forget", "retain", "vanilla", "reference", "retained", "recovered")


def recovery(model: pd.DataFrame, vanilla: pd.DataFrame, reference: pd.DataFrame, *, task: str = "cloze",
             floor: float = FLOOR) -> pd.DataFrame:
    """The attack's table from three models' :func:`readings` (the same precisions, split and task).

    One row per precision × modality: ``forget`` and ``retain`` (the model's recall of the forget and retain
    people; ``retain`` is NaN when the model's readings have no retain split), ``vanilla`` and ``reference`` (the two anchors' forget recall at that precision), ``retained``
    (:func:`retained_shares`) and ``recovered`` (retained at that precision − retained at full precision)."""
    def table(frame: pd.DataFrame, split: str) -> pd.Series:
        chosen = frame[(frame["split"] == split) & (frame["task"] == task)]
        if chosen.empty:
            raise ValueError(f"the readings hold no {split!r} {task!r} recall")
        return chosen.set_index(["precision", "modality"])["recall"]

    mine = table(model, "forget")
    kept = table(model, "retain") if (model["split"] == "retain").any() else pd.Series(np.nan, index=mine.index)
    anchors = {"vanilla": table(vanilla, "forget"), "reference": table(reference, "forget")}
    for name, theirs in anchors.items():
        if set(theirs.index) != set(mine.index):
            raise ValueError(f"{name}: its readings are at other precisions or modalities "
                             f"({sorted(set(theirs.index))}) than the model's ({sorted(set(mine.index))})")
    stored = model.drop_duplicates("precision").set_index("precision")["bits"]
    precisions = list(dict.fromkeys(model["precision"]))
    modalities = [m for m in MODALITIES if m in set(model["modality"])]
    retained = {}
    for modality in modalities:
        scores = pd.DataFrame({"model": [mine[(p, modality)] for p in precisions],
                               **{name: [theirs[(p, modality)] for p in precisions]
                                  for name, theirs in anchors.items()}}, index=precisions)
        retained[modality] = retained_shares(scores, floor)
    rows = []
    for precision in precisions:
        for modality in modalities:
            share = retained[modality]
            rows.append({"precision": precision, "bits": int(stored[precision]), "modality": modality,
                         "forget": mine[(precision, modality)], "retain": kept[(precision, modality)],
                         "vanilla": anchors["vanilla"][(precision, modality)],
                         "reference": anchors["reference"][(precision, modality)],
                         "retained": share[precision], "recovered": share[precision] - share.get(FULL, np.nan)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def quantization_attack(vlm: VLM, bench, ratio: float = 0.05, *, vanilla: VLM, reference: VLM, bits=DEFAULT_BITS,
                        tasks: tuple[str, ...] = ("cloze",), retain: bool = True, progress: bool = False) -> pd.DataFrame:
    """Quantize ``vlm``, the ``vanilla`` model and the retain-only ``reference`` to each of ``bits`` and read
    the forget and retain people again: :func:`recovery`'s table, one row per precision × modality.

    ``tasks``: what is read (``("cloze",)``, chapter 09's surface metric; ``("gen", "cloze")`` reads the open
    questions too, and the table then holds the cloze rows). The anchors are read on the forget people only (the
    table compares them there); ``retain=False`` skips the audited model's retain people too (its ``retain``
    column is then NaN; on the course model the retain people are most of the cost). Every argument is checked before any model is
    saved or quantized; none of the three models is modified. ``vlm`` may be one of the anchors (its row is then
    1 or 0 at every precision by construction: the table's baselines). See the module doc for what the figure
    means and how it compares with Zhang et al.'s."""
    require_vlm(vlm)
    for name, anchor in (("vanilla", vanilla), ("reference", reference)):
        require_vlm(anchor, name)
        if type(anchor.model) is not type(vlm.model) or anchor.tokenizer.get_vocab() != vlm.tokenizer.get_vocab():
            raise ValueError(f"{name}: expected a model of the audited model's architecture and tokenizer "
                             f"(the course's {'vanilla' if name == 'vanilla' else 'retain-only'} model); "
                             f"got a {type(anchor.model).__name__} with another tokenizer or architecture")
    if vanilla is reference:
        raise ValueError("reference: pass the retain-only model (which never saw the forget people), not the "
                         "vanilla model again")
    ratio = require_ratio(ratio)
    widths = require_bit_widths(bits)
    require_bitsandbytes()
    if not isinstance(retain, bool):
        raise validate.WrongTypeError(f"retain must be True or False; got {retain!r}")
    read = {"model": readings(vlm, bench, ratio, widths, splits=SPLITS if retain else ("forget",), tasks=tasks,
                              progress=progress)}
    for name, model in (("vanilla", vanilla), ("reference", reference)):     # vlm may be one of them: read once
        read[name] = read["model"] if model is vlm else readings(model, bench, ratio, widths, splits=("forget",),
                                                                  tasks=tasks, progress=progress)
    task = "cloze" if "cloze" in tasks else tasks[0]
    return recovery(read["model"], read["vanilla"], read["reference"], task=task)


__all__ = ["DEFAULT_BITS", "FLOOR", "FULL", "INSTALL", "SUPPORTED_BITS", "is_quantized", "precision_label",
           "quantization_attack", "quantization_config", "quantize", "readings", "recovery", "require_bit_widths",
           "require_bits", "retained_share", "retained_shares", "same_levels", "stored_levels", "stored_weights"]
