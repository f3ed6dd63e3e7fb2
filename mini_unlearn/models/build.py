"""Real Hugging Face VLM architectures built from configs: no hub, no download.

A preset names a size. The model is a stock ``LlavaForConditionalGeneration`` — a CLIP vision tower,
a projector and a Llama language model — so every method in this course runs unchanged on a real
LLaVA checkpoint. The tokenizer is a byte-level BPE trained here on the benchmark's own text, and the
processor is a ``LlavaProcessor`` around ``CLIPImageProcessorPil`` (no torchvision needed).

Pitfalls measured with transformers 5, built in:

* ``vision_feature_layer=-1``: with LLaVA's default ``-2`` a 2-layer vision tower's last layer gets
  no gradient, so its neurons could never matter;
* ``num_additional_image_tokens=1``: CLIP adds a CLS token, which the "default" strategy drops.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

from ..bench import Benchmark
from .prompts import IMAGE_TOKEN, chat, question_text, target

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
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
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive integer; got {factor!r}")
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


def tokenizer_corpus(bench: Benchmark) -> list[str]:
    """Every text a model of this benchmark will read or write: prompts, answers, training pairs.

    The holdout people (chapter 09) are left out: nothing of theirs is seen, not even by the tokenizer."""
    texts = []
    for person in bench.profiles + bench.utility_profiles:
        for q in bench.questions[person.id]:
            texts += [chat(question_text(q), with_image=False), target(q.answer)]
            if q.task == "mcq":   # the answer letter: " A" … " D" must each be ONE token (the first generated)
                texts.append(target(q.correct))
    for pair in bench.train_pairs():
        texts += [chat(pair.question, with_image=False), target(pair.answer)]
    return texts


def build_tokenizer(bench: Benchmark, vocab_size: int, special_tokens: tuple[str, ...] = (IMAGE_TOKEN,),
                    named_tokens: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the benchmark's text (decodes back to the exact string).

    ``special_tokens`` are kept whole (the image placeholder and a family's markers, :mod:`.families`);
    ``named_tokens`` become tokenizer attributes (default: ``image_token`` = ``<image>``)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, *special_tokens],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(tokenizer_corpus(bench), trainer=trainer)
    named = {"image_token": IMAGE_TOKEN} if named_tokens is None else named_tokens
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   extra_special_tokens=named, padding_side="left")


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


def build_model(preset: str | Preset, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlavaForConditionalGeneration:
    """A freshly initialised LLaVA of this preset (seeded)."""
    preset = get_preset(preset)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(preset, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def preset_card(preset: Preset) -> dict:
    return asdict(preset)
