"""One small adapter per VLM family: what cannot be found by walking the model (chapter 11).

:mod:`.anatomy` finds the two towers and every MLP neuron of any of these models by walking it. What a
walk cannot tell lives here, one :class:`Family` per architecture:

* the transformers class, and how to build a **tiny** model of the family from a config (tests, chapter 11);
* which token marks the image, and the tokenizer's other special tokens;
* the processor — how a question with or without an image becomes model inputs (``pixel_values``,
  ``image_grid_thw`` and ``mm_token_type_ids`` for Qwen-VL, image splitting for Idefics) — built for a
  tiny model or loaded from a checkpoint folder, always with a ``*Pil`` image processor (no torchvision);
* a chat template for the tiny model, in the family's own format.

Adding a family is one more entry in :data:`FAMILIES`. Supported: LLaVA (1.5 conventions), Qwen2-VL,
Qwen2.5-VL, Idefics2 and Idefics3 (SmolVLM is Idefics3).

Qwen-VL's stock processor cannot be built without torchvision (its video processor needs it;
measured with transformers 5), so :class:`QwenVLProcessor` does the same job for images: it expands
each ``<|image_pad|>`` into one token per merged patch and marks them in ``mm_token_type_ids``. It
reads and writes the stock file layout (tokenizer files, ``preprocessor_config.json``, the chat
template), so a real Qwen2.5-VL checkpoint folder loads with it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers as tf
from transformers import AutoTokenizer

from .build import CHAT_TEMPLATE, IMAGE_TOKEN, build_config, build_processor, build_tokenizer, get_preset

TINY_IMAGE = 64        # pixels: every tiny family reads the portraits at 64×64
TINY_PATCH = 8

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDEFICS_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


# ---------------------------------------------------------------------------------------------------
# Qwen-VL inputs without torchvision

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
            grids = pixels["image_grid_thw"]
            counts = image_token_counts(grids, self.image_processor.merge_size)
            expanded, used = [], 0
            for row in texts:
                parts = row.split(self.image_token)
                out = parts[0]
                for part in parts[1:]:
                    if used >= len(counts):
                        raise ValueError(f"text holds more {self.image_token} placeholders than the {len(counts)} images")
                    out += self.image_token * counts[used] + part
                    used += 1
                expanded.append(out)
            if used != len(counts):
                raise ValueError(f"{len(counts)} images but {used} {self.image_token} placeholders in the text")
            texts = expanded
            inputs.update(pixel_values=pixels["pixel_values"], image_grid_thw=grids)
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
# The families

@dataclass(frozen=True)
class Family:
    """What one VLM family needs beyond a walk of the model (see the module docstring)."""

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

    @property
    def architecture(self) -> str:
        return self.model_class.__name__

    def tiny_tokenizer(self, bench, vocab_size: int = 512):
        """A byte-level BPE on the benchmark's text with this family's special tokens and chat template."""
        tokenizer = build_tokenizer(bench, vocab_size, self.special_tokens, self.named_tokens)
        tokenizer.chat_template = self.chat_template
        return tokenizer

    def tiny(self, bench, seed: int = 0, vocab_size: int = 512):
        """A freshly initialised tiny model of this family and its processor, for ``bench``."""
        from .vlm import VLM
        tokenizer = self.tiny_tokenizer(bench, vocab_size)
        processor = self.build_processor(tokenizer)
        torch.manual_seed(seed)
        model = self.model_class(self.tiny_config(tokenizer)).eval()
        return VLM(model, processor, {"family": self.name, "tiny": True})


def _ids(tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def _text_config(tokenizer, **extra) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
                **extra)


# LLaVA: the course's own builders (a 64×64 CLIP tower with patch 16 and a Llama)
def _llava_processor(tokenizer):
    return build_processor(tokenizer, get_preset("tiny"))


def _llava_config(tokenizer):
    return build_config(get_preset("tiny"), tokenizer)


def _processor_loader(processor_class, image_processor_class):
    """Read a stock processor folder; its image processor is always the ``*Pil`` class (no torchvision).

    (Passing the image processor to ``from_pretrained`` would leak it into the tokenizer's saved config.)"""
    def load(folder):
        processor = processor_class.from_pretrained(folder)
        if not isinstance(processor.image_processor, image_processor_class):
            processor.image_processor = image_processor_class.from_pretrained(folder)
        return processor
    return load


_llava_load = _processor_loader(tf.LlavaProcessor, tf.CLIPImageProcessorPil)


# Qwen2-VL and Qwen2.5-VL: patch 8, temporal patch 2, 2×2 merge → 16 image tokens for 64×64 pixels
QWEN_TOKENS = ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>")
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}     # head dim 16


def _qwen_processor(tokenizer):
    pixels = TINY_IMAGE * TINY_IMAGE
    image_processor = tf.Qwen2VLImageProcessorPil(patch_size=TINY_PATCH, temporal_patch_size=2, merge_size=2,
                                                  min_pixels=pixels, max_pixels=pixels)
    return QwenVLProcessor(image_processor, tokenizer, QWEN_TEMPLATE)


def _qwen_ids(tokenizer) -> dict:
    image, start, video = _ids(tokenizer, "<|image_pad|>", "<|vision_start|>", "<|video_pad|>")
    return dict(image_token_id=image, video_token_id=video, vision_start_token_id=start)


def _qwen2_config(tokenizer):
    return tf.Qwen2VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=MROPE),
        vision_config=dict(depth=2, num_heads=4, patch_size=TINY_PATCH, temporal_patch_size=2, spatial_merge_size=2,
                           embed_dim=32, hidden_size=64, mlp_ratio=4),
        **_qwen_ids(tokenizer))


def _qwen2_5_config(tokenizer):
    return tf.Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=MROPE),
        vision_config=dict(depth=2, num_heads=4, patch_size=TINY_PATCH, temporal_patch_size=2, spatial_merge_size=2,
                           hidden_size=32, intermediate_size=128, out_hidden_size=64, window_size=64,
                           fullatt_block_indexes=[1]),
        **_qwen_ids(tokenizer))


# Idefics2 (a perceiver resampler: 4 latents per image) and Idefics3 (pixel shuffle by 2: 16 tokens)
IDEFICS_TOKENS = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
IDEFICS_VISION = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      image_size=TINY_IMAGE, patch_size=TINY_PATCH)


def _idefics2_processor(tokenizer):
    image_processor = tf.Idefics2ImageProcessorPil(do_image_splitting=False,
                                                   size={"longest_edge": TINY_IMAGE, "shortest_edge": TINY_IMAGE})
    return tf.Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                chat_template=IDEFICS_TEMPLATE)


def _idefics2_config(tokenizer):
    return tf.Idefics2Config(
        vision_config=IDEFICS_VISION, text_config={"model_type": "mistral", **_text_config(tokenizer)},
        perceiver_config=dict(hidden_size=64, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=4,
                              resampler_head_dim=16, num_key_value_heads=4),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)


def _idefics3_processor(tokenizer):
    image_processor = tf.Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": TINY_IMAGE},
                                                   max_image_size={"longest_edge": TINY_IMAGE})
    return tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=16,
                                chat_template=IDEFICS_TEMPLATE)


def _idefics3_config(tokenizer):
    return tf.Idefics3Config(vision_config=IDEFICS_VISION, text_config={"model_type": "llama", **_text_config(tokenizer)},
                             scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                             tie_word_embeddings=False)


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("llava", tf.LlavaForConditionalGeneration, IMAGE_TOKEN, (IMAGE_TOKEN,), {"image_token": IMAGE_TOKEN},
           CHAT_TEMPLATE, _llava_processor, _llava_config, _llava_load, tf.LlavaProcessor),
    Family("qwen2_vl", tf.Qwen2VLForConditionalGeneration, "<|image_pad|>", QWEN_TOKENS,
           {"image_token": "<|image_pad|>"}, QWEN_TEMPLATE, _qwen_processor, _qwen2_config, QwenVLProcessor.from_pretrained,
           QwenVLProcessor, own_positions=True),
    Family("qwen2_5_vl", tf.Qwen2_5_VLForConditionalGeneration, "<|image_pad|>", QWEN_TOKENS,
           {"image_token": "<|image_pad|>"}, QWEN_TEMPLATE, _qwen_processor, _qwen2_5_config,
           QwenVLProcessor.from_pretrained, QwenVLProcessor, own_positions=True),
    Family("idefics2", tf.Idefics2ForConditionalGeneration, "<image>", IDEFICS_TOKENS, {}, IDEFICS_TEMPLATE,
           _idefics2_processor, _idefics2_config, _processor_loader(tf.Idefics2Processor, tf.Idefics2ImageProcessorPil),
           tf.Idefics2Processor),
    Family("idefics3", tf.Idefics3ForConditionalGeneration, "<image>", IDEFICS_TOKENS, {}, IDEFICS_TEMPLATE,
           _idefics3_processor, _idefics3_config, _processor_loader(tf.Idefics3Processor, tf.Idefics3ImageProcessorPil),
           tf.Idefics3Processor),
)}


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
    raise ValueError(f"processor: expected the processor of a supported family "
                     f"({sorted({f.processor_class.__name__ for f in FAMILIES.values()})}); got {type(processor).__name__}")


@contextmanager
def padding_left(tokenizer):
    """Left padding inside (every answer ends at the last position; batched generation needs it)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side


def model_inputs(processor, texts: list[str], images: list | None = None) -> dict[str, torch.Tensor]:
    """Left-padded inputs for rendered ``texts``; ``images`` in row order, one per image token.

    Every supported processor takes the images as one flat list: Idefics2/3 group them per row by
    counting image tokens (a text-only row gets a blank image the model skips), Qwen-VL packs their
    patches into one ``pixel_values`` with each image's ``image_grid_thw``.
    """
    family_of_processor(processor)                     # a clear error for a processor of no supported family
    with padding_left(processor.tokenizer):
        batch = processor(text=list(texts), images=images or None, padding=True, return_tensors="pt")
    return dict(batch)


__all__ = ["FAMILIES", "Family", "QwenVLProcessor", "family_of", "family_of_processor", "image_token_counts",
           "model_inputs"]
