"""Qwen2-VL and Qwen2.5-VL: inputs without torchvision, and their tiny models (chapter 11).

Qwen-VL's stock processor cannot be built without torchvision (its video processor needs it;
measured with transformers 5), so :class:`QwenVLProcessor` does the same job for images: it expands
each ``<|image_pad|>`` into one token per merged patch and marks them in ``mm_token_type_ids``. It
reads and writes the stock file layout (tokenizer files, ``preprocessor_config.json``, the chat
template), so a real Qwen2.5-VL checkpoint folder loads with it.

Two things set the family apart from the others: ``pixel_values`` packs every image's patches into one
``[patches, dim]`` tensor, each image's grid in ``image_grid_thw`` (the family's ``patch_grid``), and the
model computes its own 3-D ("mrope") positions (``own_positions``).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers as tf
from transformers import AutoTokenizer

from .base import TINY_IMAGE, TINY_PATCH, Family, register_family, tiny_text_config

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PATCH_GRID = "image_grid_thw"      # the input that sizes each image's patches in the packed pixel_values


def image_token_counts(grid_thw: torch.Tensor, merge_size: int) -> list[int]:
    """How many tokens each image becomes in Qwen-VL (chapter 11): ``image_grid_thw`` holds each image's
    patches as ``[t, h, w]`` (frames, rows, columns), and the vision tower merges every ``merge × merge``
    block of neighbouring patches into one token: ``t·h·w / merge²``."""
    return (grid_thw.prod(dim=-1) // merge_size ** 2).tolist()


class QwenVLProcessor:
    """Qwen2-VL / Qwen2.5-VL inputs for images: a tokenizer and a ``Qwen2VLImageProcessorPil``.

    Called like a transformers processor (``text=``, ``images=``, ``padding=``, ``return_tensors="pt"``):
    each ``<|image_pad|>`` in the text becomes ``t·h·w / merge²`` tokens of its image, and
    ``mm_token_type_ids`` marks them (1) — Qwen2-VL refuses images without it."""

    def __init__(self, image_processor, tokenizer, chat_template: str | None = None):
        self.image_processor, self.tokenizer = image_processor, tokenizer
        self.chat_template = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    def __call__(self, text=None, images=None, padding=True, return_tensors="pt", **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        inputs = {}
        if images:
            pixels = self.image_processor(images=images, return_tensors="pt")
            grids = pixels[PATCH_GRID]
            counts = image_token_counts(grids, self.image_processor.merge_size)
            expanded, used = [], 0
            for row in texts:
                parts = row.split(self.image_token)
                out = parts[0]
                for part in parts[1:]:
                    if used >= len(counts):
                        raise ValueError(f"text holds more {self.image_token} placeholders than the "
                                         f"{len(counts)} images")
                    out += self.image_token * counts[used] + part
                    used += 1
                expanded.append(out)
            if used != len(counts):
                raise ValueError(f"{len(counts)} images but {used} {self.image_token} placeholders in the text")
            texts = expanded
            inputs.update(pixel_values=pixels["pixel_values"], **{PATCH_GRID: grids})
        encoded = self.tokenizer(texts, padding=padding, return_tensors=return_tensors, **kwargs)
        encoded = dict(encoded)
        encoded["mm_token_type_ids"] = (encoded["input_ids"] == self.image_token_id).long()
        return {**encoded, **inputs}

    def apply_chat_template(self, conversation, **kwargs):
        return self.tokenizer.apply_chat_template(conversation, chat_template=self.chat_template, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def save_pretrained(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        if self.chat_template:
            (folder / "chat_template.jinja").write_text(self.chat_template)

    @classmethod
    def from_pretrained(cls, folder) -> QwenVLProcessor:
        """Read a checkpoint folder: tokenizer files, ``preprocessor_config.json``, and the chat template from
        ``chat_template.jinja`` (the current layout), ``chat_template.json`` (the older one, as the Qwen
        checkpoints were published) or the tokenizer's config."""
        folder = Path(folder)
        return cls(tf.Qwen2VLImageProcessorPil.from_pretrained(folder), AutoTokenizer.from_pretrained(folder),
                   read_chat_template(folder))


def read_chat_template(folder: Path) -> str | None:
    """The chat template a checkpoint folder holds, in either published layout (None: the tokenizer's own)."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text())["chat_template"]
    return None


# ---------------------------------------------------------------------------------------------------
# Tiny models: patch 8, temporal patch 2, 2×2 merge → 16 image tokens for 64×64 pixels

QWEN_TOKENS = ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>")
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}     # head dim 16


def _tiny_processor(tokenizer):
    pixels = TINY_IMAGE * TINY_IMAGE
    image_processor = tf.Qwen2VLImageProcessorPil(patch_size=TINY_PATCH, temporal_patch_size=2, merge_size=2,
                                                  min_pixels=pixels, max_pixels=pixels)
    return QwenVLProcessor(image_processor, tokenizer, QWEN_TEMPLATE)


def _token_ids(tokenizer) -> dict:
    image, start, video = tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|vision_start|>", "<|video_pad|>"])
    return dict(image_token_id=image, video_token_id=video, vision_start_token_id=start)


def _qwen2_config(tokenizer):
    return tf.Qwen2VLConfig(
        text_config=tiny_text_config(tokenizer, rope_parameters=MROPE),
        vision_config=dict(depth=2, num_heads=4, patch_size=TINY_PATCH, temporal_patch_size=2, spatial_merge_size=2,
                           embed_dim=32, hidden_size=64, mlp_ratio=4),
        **_token_ids(tokenizer))


def _qwen2_5_config(tokenizer):
    return tf.Qwen2_5_VLConfig(
        text_config=tiny_text_config(tokenizer, rope_parameters=MROPE),
        vision_config=dict(depth=2, num_heads=4, patch_size=TINY_PATCH, temporal_patch_size=2, spatial_merge_size=2,
                           hidden_size=32, intermediate_size=128, out_hidden_size=64, window_size=64,
                           fullatt_block_indexes=[1]),
        **_token_ids(tokenizer))


def _family(name: str, model_class: type, tiny_config) -> Family:
    return Family(name, model_class, "<|image_pad|>", QWEN_TOKENS, {"image_token": "<|image_pad|>"}, QWEN_TEMPLATE,
                  build_processor=_tiny_processor, tiny_config=tiny_config,
                  load_processor=QwenVLProcessor.from_pretrained, processor_class=QwenVLProcessor,
                  own_positions=True, patch_grid=PATCH_GRID)


register_family(_family("qwen2_vl", tf.Qwen2VLForConditionalGeneration, _qwen2_config))
register_family(_family("qwen2_5_vl", tf.Qwen2_5_VLForConditionalGeneration, _qwen2_5_config))


__all__ = ["MROPE", "PATCH_GRID", "QWEN_TEMPLATE", "QWEN_TOKENS", "QwenVLProcessor", "image_token_counts",
           "read_chat_template"]
