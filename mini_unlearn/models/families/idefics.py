"""Idefics2 and Idefics3 (SmolVLM is Idefics3): stock processors with ``*Pil`` image processors (chapter 11).

Both group the images per row by counting image tokens: ``pixel_values`` is ``[rows, images, 3, H, W]``
with ``pixel_attention_mask``, and a text-only row gets a blank image the model skips. Idefics2 reads an
image through a perceiver resampler (4 latents per image in the tiny model), Idefics3 through a pixel
shuffle by 2 (16 tokens).
"""
from __future__ import annotations

import transformers as tf

from .base import TINY_IMAGE, TINY_PATCH, Family, pil_processor_loader, register_family, tiny_text_config

IDEFICS_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
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
        vision_config=IDEFICS_VISION, text_config={"model_type": "mistral", **tiny_text_config(tokenizer)},
        perceiver_config=dict(hidden_size=64, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=4,
                              resampler_head_dim=16, num_key_value_heads=4),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)


def _idefics3_processor(tokenizer):
    image_processor = tf.Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": TINY_IMAGE},
                                                   max_image_size={"longest_edge": TINY_IMAGE})
    return tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=16,
                                chat_template=IDEFICS_TEMPLATE)


def _idefics3_config(tokenizer):
    return tf.Idefics3Config(vision_config=IDEFICS_VISION,
                             text_config={"model_type": "llama", **tiny_text_config(tokenizer)},
                             scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                             tie_word_embeddings=False)


register_family(Family(
    "idefics2", tf.Idefics2ForConditionalGeneration, "<image>", IDEFICS_TOKENS, {}, IDEFICS_TEMPLATE,
    build_processor=_idefics2_processor, tiny_config=_idefics2_config,
    load_processor=pil_processor_loader(tf.Idefics2Processor, tf.Idefics2ImageProcessorPil),
    processor_class=tf.Idefics2Processor))
register_family(Family(
    "idefics3", tf.Idefics3ForConditionalGeneration, "<image>", IDEFICS_TOKENS, {}, IDEFICS_TEMPLATE,
    build_processor=_idefics3_processor, tiny_config=_idefics3_config,
    load_processor=pil_processor_loader(tf.Idefics3Processor, tf.Idefics3ImageProcessorPil),
    processor_class=tf.Idefics3Processor))


__all__ = ["IDEFICS_TEMPLATE", "IDEFICS_TOKENS", "IDEFICS_VISION"]
