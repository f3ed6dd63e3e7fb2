"""``VLM``: a model and its processor, travelling together, plus a card saying where they came from.

Everything downstream (methods, evaluation, attacks) takes a ``VLM``. It wraps a stock Hugging Face
model, so ``vlm.model`` is exactly what a researcher would load from a checkpoint.
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers.utils import logging as hf_logging

from .. import validate
from ..text import fit
from .families import FAMILIES, Family
from .inputs import model_inputs
from .prompts import render

CARD_FILE = "mini_unlearn.json"


@contextmanager
def progress_bars(enabled: bool):
    """Show transformers' "Loading weights" / "Writing model shards" bars only when asked (noise in a notebook)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()


@dataclass
class VLM:
    """A vision-language model, its processor, and a card (preset, benchmark, seed, training log)."""

    model: torch.nn.Module
    processor: object
    card: dict = field(default_factory=dict)

    @classmethod
    def tiny(cls, family: str | Family, bench, seed: int = 0, vocab_size: int = 512) -> VLM:
        """A freshly initialised tiny model of ``family`` (a :class:`~.families.Family` or its name in
        :data:`~.families.FAMILIES`) and its processor, for ``bench`` (tests, chapter 11)."""
        if isinstance(family, str):
            if family not in FAMILIES:
                raise ValueError(f"family: unknown family {family!r}; expected one of {list(FAMILIES)}")
            family = FAMILIES[family]
        if not isinstance(family, Family):
            raise validate.WrongTypeError(f"family must be a Family or the name of one; got {type(family).__name__}")
        model, processor = family.tiny_model(bench, seed, vocab_size)
        return cls(model, processor, {"family": family.name, "tiny": True})

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def copy(self, device: str | torch.device | None = None) -> VLM:
        """An independent deep copy (on ``device`` if given): changing it never touches this one."""
        model = copy.deepcopy(self.model)
        return VLM(model if device is None else model.to(device), self.processor, copy.deepcopy(self.card))

    def encode(self, prompts: list[str], images: list[Image.Image] | None = None) -> dict[str, torch.Tensor]:
        """Model inputs for a batch of prompts, left-padded, on the model's device.

        Course prompts (:class:`~mini_unlearn.models.prompts.Prompt`) are rendered in the model's own
        chat template; plain strings are used as written. ``images``: one per image prompt, in order.
        """
        texts = [render(self.processor, prompt)[0] for prompt in prompts]
        batch = model_inputs(self.processor, texts, images)
        return {key: value.to(self.device) for key, value in batch.items()}

    def save_pretrained(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Save model (safetensors), processor and card to ``path``; never overwrites unless asked."""
        path = Path(path)
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True to replace it, "
                                  f"or choose another path (mini_unlearn never overwrites a checkpoint silently)")
        path.mkdir(parents=True, exist_ok=True)
        with progress_bars(False):
            self.model.save_pretrained(path, safe_serialization=True)
        self.processor.save_pretrained(path)
        (path / CARD_FILE).write_text(json.dumps(self.card, indent=1, default=str) + "\n")
        return path

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def __repr__(self) -> str:
        name = type(self.model).__name__
        about = ", ".join(f"{k}={self.card[k]}" for k in ("preset", "benchmark", "seed") if k in self.card)
        return fit(f"VLM({name}, {self.n_parameters():,} parameters{', ' + about if about else ''})")
