"""LLaVA (1.5 conventions): the course's own model, built from configs — no hub, no download.

A preset names a size. The model is a stock ``LlavaForConditionalGeneration`` — a CLIP vision tower,
a projector and a Llama language model — so every method in this course runs unchanged on a real
LLaVA checkpoint. The tokenizer is the byte-level BPE every family trains on the benchmark's own text
(:mod:`..build`), and the processor is a ``LlavaProcessor`` around ``CLIPImageProcessorPil`` (no
torchvision needed).

Pitfalls measured with transformers 5, built in:

* ``vision_feature_layer=-1``: with LLaVA's default ``-2`` a 2-layer vision tower's last layer gets
  no gradient, so its neurons could never matter;
* ``num_additional_image_tokens=1``: CLIP adds a CLS token, which the "default" strategy drops.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

from ... import validate
from ..prompts import IMAGE_TOKEN
from .base import Family, pil_processor_loader, register_family

# Renders exactly what prompts.chat() writes (transformers' Jinja trims the newline after a block tag,
# so every newline is an explicit {{ '\n' }}); the answer turn is prompts.target() + eos.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{{ '\\n' }}"
    "{% else %}ASSISTANT: {% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class Preset:
    """The size of a VLM and of its training run."""

    name: str
    image_size: int          # pixels; the portraits are drawn at 128 and resized
    patch_size: int          # image tokens = (image_size / patch_size) ** 2
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_mlp: int          # neurons per vision MLP layer (the input width of fc2)
    text_hidden: int
    text_layers: int
    text_heads: int
    text_mlp: int            # neurons per language MLP layer (the input width of down_proj)
    vocab_size: int
    max_positions: int = 256

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def scaled(self, factor: int) -> Preset:
        """This preset with every width divided by ``factor``: the same depth, heads, images and
        vocabulary, so a CPU runs the exact code path of a GPU-sized model (``xl`` / 16: ~5 M
        parameters instead of ~1 B). Named ``"<name>/<factor>"``."""
        validate.positive_int(factor, "factor")
        widths = dict(vision_hidden=self.vision_hidden, vision_mlp=self.vision_mlp, text_hidden=self.text_hidden,
                      text_mlp=self.text_mlp)
        uneven = [name for name, width in widths.items() if width % factor]
        heads = {"vision_hidden": self.vision_heads, "text_hidden": self.text_heads}
        uneven += [name for name, n in heads.items() if (widths[name] // factor) % n]
        if uneven:
            raise ValueError(f"factor={factor} does not divide {sorted(set(uneven))} of preset {self.name!r} "
                             "evenly (into whole widths and attention heads)")
        return replace(self, name=f"{self.name}/{factor}", **{name: width // factor for name, width in widths.items()})


PRESETS: dict[str, Preset] = {
    # the course: trains to >= 95% on 40 people in a few minutes on 2 CPU cores
    "tiny": Preset("tiny", image_size=64, patch_size=16, vision_hidden=64, vision_layers=2, vision_heads=4,
                   vision_mlp=256, text_hidden=128, text_layers=2, text_heads=4, text_mlp=512, vocab_size=1024),
    # the depth study (chapter 08): tiny's widths, 4 layers per tower instead of 2
    "tiny_deep": Preset("tiny_deep", image_size=64, patch_size=16, vision_hidden=64, vision_layers=4, vision_heads=4,
                        vision_mlp=256, text_hidden=128, text_layers=4, text_heads=4, text_mlp=512, vocab_size=1024),
    # a GPU: 500 people (MLLMU-Bench's size), larger images and widths
    "base": Preset("base", image_size=128, patch_size=16, vision_hidden=256, vision_layers=4, vision_heads=8,
                   vision_mlp=1024, text_hidden=512, text_layers=6, text_heads=8, text_mlp=2048, vocab_size=4096,
                   max_positions=512),
    # a small real VLM (~1 B parameters; measured: 0.12 s a step for 64 samples on an H100 with
    # bf16 + torch.compile, 33 % MFU). CLIP ViT-B/16-sized vision tower, a 2048-wide 16-layer Llama
    "xl": Preset("xl", image_size=128, patch_size=16, vision_hidden=768, vision_layers=12, vision_heads=12,
                 vision_mlp=3072, text_hidden=2048, text_layers=16, text_heads=16, text_mlp=5632, vocab_size=4096,
                 max_positions=512),
}


def get_preset(preset: str | Preset) -> Preset:
    """A preset by name (or the preset itself); a clear error for an unknown name.

    ``"xl/16"`` is ``PRESETS["xl"].scaled(16)``: every width divided by 16 (see :meth:`Preset.scaled`)."""
    if isinstance(preset, Preset):
        return preset
    name, _, factor = str(preset).partition("/")
    if factor and name in PRESETS:
        if not factor.isdigit():
            raise ValueError(f"preset {preset!r}: the scale after '/' must be a positive integer")
        return PRESETS[name].scaled(int(factor))
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset]


def build_processor(tokenizer: PreTrainedTokenizerFast, preset: Preset) -> LlavaProcessor:
    """A ``LlavaProcessor``: resizes portraits to the preset's size and expands ``<image>``."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": preset.image_size}, crop_size={"height": preset.image_size, "width": preset.image_size})
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=preset.patch_size,
                          vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                          num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def build_config(preset: Preset, tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    vision = CLIPVisionConfig(hidden_size=preset.vision_hidden, intermediate_size=preset.vision_mlp,
                              num_hidden_layers=preset.vision_layers, num_attention_heads=preset.vision_heads,
                              image_size=preset.image_size, patch_size=preset.patch_size)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=preset.text_hidden, intermediate_size=preset.text_mlp,
                       num_hidden_layers=preset.text_layers, num_attention_heads=preset.text_heads,
                       num_key_value_heads=preset.text_heads, max_position_embeddings=preset.max_positions,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    return LlavaConfig(vision_config=vision, text_config=text,
                       image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                       vision_feature_layer=-1, vision_feature_select_strategy="default",
                       image_seq_length=preset.image_tokens, projector_hidden_act="gelu")


def build_model(preset: str | Preset, tokenizer: PreTrainedTokenizerFast,
                seed: int = 0) -> LlavaForConditionalGeneration:
    """A freshly initialised LLaVA of this preset (seeded)."""
    preset = get_preset(preset)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(preset, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def preset_card(preset: Preset) -> dict:
    return asdict(preset)


# The family: the tiny preset's towers (a 64×64 CLIP tower with patch 16 and a Llama)
def _tiny_processor(tokenizer):
    return build_processor(tokenizer, get_preset("tiny"))


def _tiny_config(tokenizer):
    return build_config(get_preset("tiny"), tokenizer)


register_family(Family(
    "llava", LlavaForConditionalGeneration, IMAGE_TOKEN, (IMAGE_TOKEN,), {"image_token": IMAGE_TOKEN}, CHAT_TEMPLATE,
    build_processor=_tiny_processor, tiny_config=_tiny_config,
    load_processor=pil_processor_loader(LlavaProcessor, CLIPImageProcessorPil), processor_class=LlavaProcessor))


__all__ = ["CHAT_TEMPLATE", "PRESETS", "Preset", "build_config", "build_model", "build_processor", "get_preset",
           "preset_card"]
