"""One small adapter per VLM family: what cannot be found by walking the model (chapter 11).

:mod:`..anatomy` finds the two towers and every MLP neuron of any of these models by walking it. What a
walk cannot tell lives here, one :class:`Family` per architecture (:mod:`.base`):

* the transformers class, and how to build a **tiny** model of the family from a config (tests, chapter 11);
* which token marks the image, and the tokenizer's other special tokens;
* the processor — how a question with or without an image becomes model inputs (``pixel_values``,
  ``image_grid_thw`` and ``mm_token_type_ids`` for Qwen-VL, image splitting for Idefics) — built for a
  tiny model or loaded from a checkpoint folder, always with a ``*Pil`` image processor (no torchvision);
* a chat template for the tiny model, in the family's own format.

Each family is one module that registers it (:func:`register_family`); importing this package imports
them all, so :data:`FAMILIES` is full wherever it is read. Supported: LLaVA (1.5 conventions,
:mod:`.llava`, which also builds the course's own models), Qwen2-VL and Qwen2.5-VL (:mod:`.qwen_vl`),
Idefics2 and Idefics3 (:mod:`.idefics`; SmolVLM is Idefics3). How a batch is encoded for any of them is
:mod:`..inputs`.
"""
from .base import FAMILIES, Family, family_of, family_of_processor, packed_pixels, register_family
# the families, in the order the chapters list them
from . import llava
from . import qwen_vl
from . import idefics
from .qwen_vl import QwenVLProcessor, image_token_counts
from ..inputs import model_inputs            # encoding a batch is its own idea; importable here as before

__all__ = ["FAMILIES", "Family", "QwenVLProcessor", "family_of", "family_of_processor", "idefics",
           "image_token_counts", "llava", "model_inputs", "packed_pixels", "qwen_vl", "register_family"]
