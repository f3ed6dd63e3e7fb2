"""The :class:`Family` record and its registry: one entry per VLM architecture (chapter 11).

A family module (:mod:`.llava`, :mod:`.qwen_vl`, :mod:`.idefics`) builds its :class:`Family` and calls
:func:`register_family`; the package reads :data:`FAMILIES` (``load_vlm`` finds a checkpoint's family
with :func:`family_of`, the batch builders a processor's with :func:`family_of_processor`). Nothing
here names a family: this module imports none of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ... import validate
from ..build import build_tokenizer

TINY_IMAGE = 64        # pixels: every tiny family reads the portraits at 64×64
TINY_PATCH = 8


@dataclass(frozen=True)
class Family:
    """What one VLM family needs beyond a walk of the model (see the package docstring)."""

    name: str
    model_class: type
    image_token: str                             # the placeholder the processor expands
    special_tokens: tuple[str, ...]              # kept whole by a tiny tokenizer (image placeholder first)
    named_tokens: dict                           # tokenizer attributes (e.g. image_token)
    chat_template: str
    build_processor: Callable                    # (tokenizer) -> processor of a tiny model
    tiny_config: Callable                        # (tokenizer) -> config of a tiny model
    load_processor: Callable                     # (folder) -> processor of a checkpoint
    processor_class: type = object               # the processor it loads (how inputs are laid out)
    own_positions: bool = False                  # the model computes its own (3-D, mrope) positions: pass none
    patch_grid: str | None = None                # pixel_values packs every image's patches in one tensor,
                                                 # each image's size in this input (Qwen-VL: image_grid_thw)

    @property
    def architecture(self) -> str:
        return self.model_class.__name__

    def tiny_tokenizer(self, bench, vocab_size: int = 512):
        """A byte-level BPE on the benchmark's text with this family's special tokens and chat template."""
        tokenizer = build_tokenizer(bench, vocab_size, self.special_tokens, self.named_tokens)
        tokenizer.chat_template = self.chat_template
        return tokenizer

    def tiny_model(self, bench, seed: int = 0, vocab_size: int = 512) -> tuple[torch.nn.Module, object]:
        """A freshly initialised tiny model of this family and its processor, for ``bench``
        (``VLM.tiny`` wraps them in a ``VLM``)."""
        tokenizer = self.tiny_tokenizer(bench, vocab_size)
        processor = self.build_processor(tokenizer)
        torch.manual_seed(seed)
        model = self.model_class(self.tiny_config(tokenizer)).eval()
        return model, processor


def pil_processor_loader(processor_class: type, image_processor_class: type) -> Callable:
    """``load_processor`` for a stock processor folder; its image processor is always the ``*Pil`` class
    (no torchvision).

    (Passing the image processor to ``from_pretrained`` would leak it into the tokenizer's saved config.)"""
    def load(folder):
        processor = processor_class.from_pretrained(folder)
        if not isinstance(processor.image_processor, image_processor_class):
            processor.image_processor = image_processor_class.from_pretrained(folder)
        return processor
    return load


def tiny_text_config(tokenizer, **extra) -> dict:
    """The language model of a tiny family: 2 layers of width 64, 96 MLP neurons each, the tokenizer's ids."""
    return dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
                **extra)


# ---------------------------------------------------------------------------------------------------
# The registry

FAMILIES: dict[str, Family] = {}                 # name -> family, in registration order
ARCHITECTURES: dict[str, type] = {}              # architecture (config.json "architectures") -> model class


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (a family module calls it once, at import). Its name and its
    architecture must be new: ``load_vlm`` finds a checkpoint's family by its architecture."""
    if not isinstance(family, Family):
        raise validate.WrongTypeError(f"family must be a Family; got {type(family).__name__}")
    if family.name in FAMILIES:
        raise ValueError(f"family: a family named {family.name!r} is already registered")
    if family.architecture in ARCHITECTURES:
        taken = next(f.name for f in FAMILIES.values() if f.architecture == family.architecture)
        raise ValueError(f"family: {family.architecture} is already the architecture of family {taken!r}")
    FAMILIES[family.name] = family
    ARCHITECTURES[family.architecture] = family.model_class
    return family


def family_of(config: dict) -> Family:
    """The family a ``config.json`` describes, by ``architectures`` then ``model_type``; a clear error otherwise."""
    for name in config.get("architectures") or []:
        for family in FAMILIES.values():
            if family.architecture == name:
                return family
    for family in FAMILIES.values():
        if config.get("model_type") == family.model_class.config_class.model_type:
            return family
    found = config.get("architectures") or config.get("model_type") or "nothing"
    raise ValueError(f"unsupported architecture {found!r} (config.json: architectures / model_type); mini_unlearn "
                     f"supports {sorted(f.architecture for f in FAMILIES.values())}")


def family_of_processor(processor) -> Family:
    """The family whose processor this is (Qwen2-VL and Qwen2.5-VL share one: their inputs are alike)."""
    for family in FAMILIES.values():
        if isinstance(processor, family.processor_class):
            return family
    supported = sorted({family.processor_class.__name__ for family in FAMILIES.values()})
    raise ValueError(f"processor: expected the processor of a supported family ({supported}); "
                     f"got {type(processor).__name__}")


def packed_pixels(batch: dict[str, torch.Tensor]) -> bool:
    """True when ``pixel_values`` holds patches, not images: the batch carries the ``patch_grid`` input of a
    family that packs every image's patches into one ``[patches, dim]`` tensor (Qwen-VL: ``image_grid_thw``).
    Its rows are then not samples."""
    return "pixel_values" in batch and any(family.patch_grid in batch for family in FAMILIES.values()
                                           if family.patch_grid is not None)


__all__ = ["ARCHITECTURES", "FAMILIES", "Family", "TINY_IMAGE", "TINY_PATCH", "family_of", "family_of_processor",
           "packed_pixels", "pil_processor_loader", "register_family", "tiny_text_config"]
