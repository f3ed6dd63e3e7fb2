"""A model family is one registration: a family written in this file — LLaVA-NeXT, a transformers class the
package does not ship — runs through the package with no other file touched.

It is the recipe of CONTRIBUTING.md ("Add a model family"): the builders of a tiny model, a ``Family`` and
one ``register_family`` call. The package then builds the tiny model (``VLM.tiny``), saves it, finds the
family of the saved folder (``load_vlm``), finds its towers and neurons by walking it, answers questions
(``mu.evaluate``) and unlearns (``mu.unlearn``).
"""
import dataclasses

import pytest
import torch
import transformers as tf

import mini_unlearn as mu
from mini_unlearn.models import VLM, find_mlp_neurons, load_vlm
from mini_unlearn.models.families import FAMILIES, Family, family_of, family_of_processor, register_family
from mini_unlearn.models.families.base import ARCHITECTURES, pil_processor_loader, tiny_text_config
from mini_unlearn.models.families.llava import CHAT_TEMPLATE
from mini_unlearn.models.prompts import IMAGE_TOKEN

IMAGE = 32            # pixels: the portraits are read at 32×32, one crop of the same size (anyres with one grid)


def next_processor(tokenizer):
    image_processor = tf.LlavaNextImageProcessorPil(size={"shortest_edge": IMAGE},
                                                    crop_size={"height": IMAGE, "width": IMAGE},
                                                    image_grid_pinpoints=[[IMAGE, IMAGE]])
    return tf.LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=16,
                                 vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                                 num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def next_config(tokenizer):
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, image_size=IMAGE, patch_size=16)
    return tf.LlavaNextConfig(vision_config=vision, text_config={"model_type": "llama", **tiny_text_config(tokenizer)},
                              image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), vision_feature_layer=-1,
                              vision_feature_select_strategy="default", image_grid_pinpoints=[[IMAGE, IMAGE]],
                              tie_word_embeddings=False)


LLAVA_NEXT = Family("llava_next", tf.LlavaNextForConditionalGeneration, IMAGE_TOKEN, (IMAGE_TOKEN,),
                    {"image_token": IMAGE_TOKEN}, CHAT_TEMPLATE, build_processor=next_processor,
                    tiny_config=next_config,
                    load_processor=pil_processor_loader(tf.LlavaNextProcessor, tf.LlavaNextImageProcessorPil),
                    processor_class=tf.LlavaNextProcessor)


@pytest.fixture
def registered():
    """LLaVA-NeXT in the registry for one test, removed afterwards."""
    register_family(LLAVA_NEXT)
    try:
        yield LLAVA_NEXT
    finally:
        FAMILIES.pop(LLAVA_NEXT.name)
        ARCHITECTURES.pop(LLAVA_NEXT.architecture)


def test_a_family_registered_from_a_test_file_runs_through_the_package(registered, bench, tmp_path):
    vlm = VLM.tiny("llava_next", bench)
    assert isinstance(vlm.model, tf.LlavaNextForConditionalGeneration) and vlm.card["family"] == "llava_next"
    assert family_of_processor(vlm.processor) is registered

    sites = find_mlp_neurons(vlm.model)                                  # found by walking: nothing registered
    assert [(s.tower, s.layer, s.width) for s in sites] == [("vision", 0, 64), ("vision", 1, 64),
                                                            ("language", 0, 96), ("language", 1, 96)]

    vlm.save_pretrained(tmp_path / "next")
    loaded = load_vlm(tmp_path / "next", device="cpu")                  # family_of reads the saved config.json
    assert type(loaded.model) is tf.LlavaNextForConditionalGeneration
    assert family_of(vlm.model.config.to_dict()) is registered
    question = next(q for q in bench.split("forget", 0.25).questions if q.modality == "image+text")
    batch = mu.models.make_batch(vlm.processor, [(mu.models.question_prompt(question),
                                                  mu.models.target(question.answer), question.image.load())])
    with torch.no_grad():
        assert torch.equal(vlm.model(**batch).logits, loaded.model(**batch).logits)

    report = mu.evaluate(loaded, bench, 0.25, splits="forget", tasks=("gen", "mcq_likelihood"), progress=False,
                         max_new_tokens=2)
    assert set(report.details["task"]) == {"gen", "mcq_likelihood"} and len(report.details) > 0

    result = mu.unlearn(loaded, bench, "ga", 0.25, progress=False, steps=2, lr=1e-3)
    assert type(result.vlm.model) is tf.LlavaNextForConditionalGeneration
    assert len(result.log.losses) == 2
    moved = result.touched.set_index("parameter")["changed"]
    assert moved.filter(like="vision_tower").sum() > 0 and moved.filter(like="language_model").sum() > 0


def test_a_family_is_registered_once_and_must_be_a_family(registered):
    with pytest.raises(ValueError, match="'llava_next' is already registered"):
        register_family(registered)
    with pytest.raises(ValueError, match="LlavaNextForConditionalGeneration is already the architecture"):
        register_family(dataclasses.replace(registered, name="llava_next_again"))
    with pytest.raises(TypeError, match="family must be a Family; got dict"):
        register_family({"name": "llava_next"})
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        VLM.tiny("nope", None)


def test_the_family_is_gone_after_its_test():
    assert "llava_next" not in FAMILIES and "LlavaNextForConditionalGeneration" not in ARCHITECTURES
    with pytest.raises(ValueError, match="unsupported architecture"):
        family_of({"architectures": ["LlavaNextForConditionalGeneration"]})
