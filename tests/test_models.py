"""mini_unlearn.models: presets, tokenizer, processor, save/load round trip, and the MLP anatomy."""
import json

import pytest
import torch
from torch import nn
import transformers as tf

import mini_unlearn as mu
from mini_unlearn.models import (SUPPORTED_ARCHITECTURES, VLM, NeuronSite, build_model, build_processor,
                                 build_tokenizer, chat, count_neurons, find_mlp_neurons, find_towers, get_preset,
                                 load_vlm, summary)
from mini_unlearn.models.prompts import IMAGE_TOKEN

TINY = get_preset("tiny")


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=4, seed=0)


@pytest.fixture(scope="module")
def vlm(bench):
    torch.set_num_threads(1)
    tokenizer = build_tokenizer(bench, TINY.vocab_size)
    return VLM(build_model(TINY, tokenizer, seed=0), build_processor(tokenizer, TINY), {"preset": "tiny", "seed": 0})


@pytest.fixture(scope="module")
def prompts_and_images(bench):
    """Two prompts with a portrait each, of different lengths (so one is padded)."""
    images = [bench.questions[pid][0].image.load() for pid in bench.forget_order[:2]]
    return [chat("Who is this?", with_image=True), chat("What is the name of the person in the image?", True)], images


@pytest.fixture(scope="module")
def image_batch(vlm, prompts_and_images):
    return vlm.encode(*prompts_and_images)


# --- presets, tokenizer, processor -------------------------------------------------------------------------

def test_tiny_preset_builds_a_llava_with_the_right_number_of_image_tokens(vlm):
    assert isinstance(vlm.model, tf.LlavaForConditionalGeneration)
    assert vlm.n_parameters() > 0
    assert TINY.image_tokens == (64 // 16) ** 2 == vlm.model.config.image_seq_length


def test_unknown_preset_is_named_in_the_error():
    with pytest.raises(ValueError, match="huge"):
        get_preset("huge")


@pytest.mark.parametrize("text", ["USER: Who is Druka Lazudre?\nASSISTANT: A cartographer, born in 1970.",
                                  "  two  spaces, tabs\tand punctuation: (a) [Blank]!?", "naïve café — ünïcode"])
def test_tokenizer_decodes_back_to_the_exact_text(vlm, text):
    ids = vlm.tokenizer.encode(text, add_special_tokens=False)
    assert vlm.tokenizer.decode(ids) == text


def test_image_token_is_one_token(vlm):
    image_id = vlm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert vlm.tokenizer.encode(IMAGE_TOKEN, add_special_tokens=False) == [image_id]
    ids = vlm.tokenizer.encode(chat("Who is this?", with_image=True), add_special_tokens=False)
    assert ids.count(image_id) == 1


def test_processor_expands_image_token_to_one_token_per_patch(vlm, image_batch):
    image_id = vlm.model.config.image_token_index
    assert (image_batch["input_ids"] == image_id).sum(dim=1).tolist() == [TINY.image_tokens] * 2
    assert tuple(image_batch["pixel_values"].shape) == (2, 3, TINY.image_size, TINY.image_size)


# --- save / load ----------------------------------------------------------------------------------------------

def _logits(vlm, batch):
    with torch.no_grad():
        return vlm.model(**batch).logits


def test_save_then_load_gives_identical_logits_and_keeps_the_card(vlm, prompts_and_images, image_batch, tmp_path):
    vlm.save_pretrained(tmp_path / "ckpt")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ckpt").iterdir()}
    loaded = load_vlm(tmp_path / "ckpt", device="cpu")
    assert isinstance(loaded.processor, tf.LlavaProcessor)
    assert loaded.card["preset"] == "tiny" and loaded.card["loaded_from"] == str(tmp_path / "ckpt")
    reloaded_batch = loaded.encode(*prompts_and_images)
    assert all(torch.equal(reloaded_batch[key], image_batch[key]) for key in image_batch)
    assert (_logits(loaded, reloaded_batch) - _logits(vlm, image_batch)).abs().max().item() == 0.0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ckpt").iterdir()} == before, "load wrote to the source"


def test_save_refuses_a_non_empty_folder_unless_asked(vlm, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        vlm.save_pretrained(tmp_path)
    vlm.save_pretrained(tmp_path, overwrite=True)
    assert (tmp_path / "config.json").is_file()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_vlm(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_vlm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    with pytest.raises(ValueError, match="BertModel.*LlavaForConditionalGeneration"):
        load_vlm(tmp_path)
    assert "LlavaForConditionalGeneration" in SUPPORTED_ARCHITECTURES


# --- anatomy: LLaVA ---------------------------------------------------------------------------------------------

def test_anatomy_finds_every_mlp_layer_of_both_llava_towers(vlm):
    sites = find_mlp_neurons(vlm)
    assert all(isinstance(s, NeuronSite) for s in sites)
    assert len(sites) == TINY.vision_layers + TINY.text_layers
    by_tower = {t: [s for s in sites if s.tower == t] for t in ("vision", "language")}
    assert [s.layer for s in by_tower["vision"]] == list(range(TINY.vision_layers))
    assert [s.layer for s in by_tower["language"]] == list(range(TINY.text_layers))
    assert {s.width for s in by_tower["vision"]} == {TINY.vision_mlp}
    assert {s.width for s in by_tower["language"]} == {TINY.text_mlp}
    for site in sites:
        consumer = site.module(vlm.model)
        assert isinstance(consumer, nn.Linear) and consumer.in_features == site.width
        producers = site.producer_modules(vlm.model)
        assert [p.split(".")[-1] for p in site.producers] == (["gate_proj", "up_proj"] if site.gated else ["fc1"])
        assert all(isinstance(p, nn.Linear) and p.out_features == site.width for p in producers)
    assert not any("projector" in s.name for s in sites)
    assert count_neurons(vlm.model) == {"vision": TINY.vision_layers * TINY.vision_mlp,
                                        "language": TINY.text_layers * TINY.text_mlp}
    table = summary(vlm.model)
    assert list(table.columns) == ["tower", "layer", "module", "neurons"] and len(table) == len(sites)


def pre_hook_shapes(model, batch) -> dict[str, tuple]:
    """The input shape of every neuron site's consumer during one forward pass."""
    seen = {}
    handles = [site.module(model).register_forward_pre_hook(
        lambda module, args, name=site.name: seen.__setitem__(name, tuple(args[0].shape)))
        for site in find_mlp_neurons(model)]
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_pre_hook_on_each_site_sees_width_neurons(vlm, image_batch):
    sites = find_mlp_neurons(vlm.model)
    seen = pre_hook_shapes(vlm.model, image_batch)
    assert {s.name: seen[s.name][-1] for s in sites} == {s.name: s.width for s in sites}
    vision = next(s for s in sites if s.tower == "vision")
    assert seen[vision.name][:2] == (2, TINY.image_tokens + 1)     # patches + CLS, per image


def test_anatomy_does_not_depend_on_module_paths(vlm):
    """The pre-4.52 LLaVA layout (language_model.model.layers) is found just as well."""
    class OldLayoutLlava(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.vision_tower = tf.CLIPVisionModel(config.vision_config)
            self.multi_modal_projector = nn.Sequential(nn.Linear(8, 8))
            self.language_model = tf.LlamaForCausalLM(config.text_config)

    old = OldLayoutLlava(vlm.model.config)
    assert find_towers(old)["language"][0] == "language_model"
    sites = find_mlp_neurons(old)
    assert [s.name for s in sites if s.tower == "language"] == [
        f"language_model.model.layers.{i}.mlp.down_proj" for i in range(TINY.text_layers)]
    assert [(s.tower, s.layer, s.width) for s in sites] == [(s.tower, s.layer, s.width) for s in find_mlp_neurons(vlm)]


def test_anatomy_rejects_models_it_cannot_read(vlm):
    lm = tf.LlamaForCausalLM(vlm.model.config.text_config)
    with pytest.raises(ValueError, match="vision_config"):
        find_mlp_neurons(lm)

    class NoMLPs(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.vision_tower = nn.Module()
            self.vision_tower.config = config.vision_config
            self.language_model = tf.LlamaModel(config.text_config)

    with pytest.raises(ValueError, match="vision tower.*down_proj.*fc1"):
        find_mlp_neurons(NoMLPs(vlm.model.config))


# --- anatomy: other architectures, built from configs (no processors) ---------------------------------------

TEXT = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=4, bos_token_id=0, eos_token_id=1, pad_token_id=2)
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}   # head dim 16: sums to 8
QWEN_VISION = dict(depth=2, num_heads=4, patch_size=8, temporal_patch_size=2, spatial_merge_size=2)


IMAGE_IDS = torch.tensor([[5, 252] + [250] * 16 + [6, 7]])      # 16 image tokens: 64x64 pixels, patch 8, merge 2
QWEN_BATCH = dict(input_ids=IMAGE_IDS, pixel_values=torch.zeros(64, 3 * 2 * 8 * 8), image_grid_thw=torch.tensor([[1, 8, 8]]))


def qwen2_vl():
    batch = {**QWEN_BATCH, "mm_token_type_ids": (IMAGE_IDS == 250).long()}   # Qwen2-VL refuses images without it
    return batch, tf.Qwen2VLForConditionalGeneration(tf.Qwen2VLConfig(
        text_config={**TEXT, "rope_parameters": MROPE},
        vision_config={**QWEN_VISION, "embed_dim": 32, "hidden_size": 64, "mlp_ratio": 4},
        image_token_id=250, video_token_id=251, vision_start_token_id=252))


def qwen2_5_vl():
    return QWEN_BATCH, tf.Qwen2_5_VLForConditionalGeneration(tf.Qwen2_5_VLConfig(
        text_config={**TEXT, "rope_parameters": MROPE},
        vision_config={**QWEN_VISION, "hidden_size": 32, "intermediate_size": 128, "out_hidden_size": 64,
                       "window_size": 64, "fullatt_block_indexes": [1]},
        image_token_id=250, video_token_id=251, vision_start_token_id=252))


def idefics3():
    batch = dict(input_ids=IMAGE_IDS, pixel_values=torch.ones(1, 1, 3, 64, 64))   # all-zero images count as padding
    return batch, tf.Idefics3ForConditionalGeneration(tf.Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           image_size=64, patch_size=8),
        text_config={**TEXT, "model_type": "llama"}, scale_factor=2, image_token_id=250))


@pytest.mark.parametrize("build, vision_consumer", [(qwen2_vl, "fc2"), (qwen2_5_vl, "down_proj"), (idefics3, "fc2")])
def test_anatomy_reads_other_vlm_architectures(build, vision_consumer):
    torch.manual_seed(0)
    batch, model = build()
    sites = find_mlp_neurons(model)
    assert [(s.tower, s.layer, s.width) for s in sites] == (
        [("vision", i, 128) for i in range(2)] + [("language", i, 96) for i in range(3)])
    assert all(s.name.endswith(vision_consumer) for s in sites if s.tower == "vision")
    assert all(s.name.endswith("down_proj") for s in sites if s.tower == "language")
    assert all(isinstance(s.module(model), nn.Linear) for s in sites)
    assert not any("merger" in s.name or "connector" in s.name for s in sites)
    seen = pre_hook_shapes(model, batch)
    assert {s.name: seen[s.name][-1] for s in sites} == {s.name: s.width for s in sites}
