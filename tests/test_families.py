"""mini_unlearn.models.families and load_vlm on every supported family: tiny models built from configs,
their towers found by anatomy, the family's own chat template and inputs, save → load round trips with
identical logits, and the clear errors a wrong checkpoint folder gets before anything is loaded."""
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mini_unlearn.models import SUPPORTED_ARCHITECTURES, VLM, find_mlp_neurons, load_vlm
from mini_unlearn.models.families import FAMILIES, QwenVLProcessor, family_of

NAMES = sorted(FAMILIES)
PORTRAIT = Image.new("RGB", (64, 64), (120, 30, 200))


@pytest.fixture(scope="module")
def tiny(bench):
    return {name: VLM.tiny(name, bench) for name in NAMES}


def image_inputs(vlm, name, answer=" Ann."):
    """One image+text question rendered with the processor's own chat template, with its portrait."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who is this?"}]}]
    prompt = vlm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [[PORTRAIT]] if name.startswith("idefics") else [PORTRAIT]
    return prompt, dict(vlm.processor(text=[prompt + answer], images=images, padding=True, return_tensors="pt"))


@pytest.mark.parametrize("name", NAMES)
def test_a_tiny_model_of_each_family_runs_and_anatomy_finds_both_towers(tiny, name):
    vlm, family = tiny[name], FAMILIES[name]
    sites = find_mlp_neurons(vlm.model)
    assert [(s.tower, s.layer) for s in sites] == [("vision", 0), ("vision", 1), ("language", 0), ("language", 1)]
    prompt, batch = image_inputs(vlm, name)
    assert prompt.count(family.image_token) == 1                   # the template places one image
    image_id = vlm.processor.tokenizer.convert_tokens_to_ids(family.image_token)
    assert int((batch["input_ids"] == image_id).sum()) > 1          # the processor expanded it
    with torch.no_grad():
        logits = vlm.model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()
    assert SUPPORTED_ARCHITECTURES[family.architecture] is family.model_class
    assert family_of(vlm.model.config.to_dict()) is family


@pytest.mark.parametrize("name", NAMES)
def test_save_then_load_gives_the_same_inputs_and_logits(tiny, name, tmp_path):
    vlm = tiny[name]
    vlm.save_pretrained(tmp_path / "ckpt")
    loaded = load_vlm(tmp_path / "ckpt", device="cpu")
    assert type(loaded.model) is type(vlm.model)
    assert type(loaded.processor.image_processor).__name__.endswith("Pil")    # no torchvision backend
    _, before = image_inputs(vlm, name)
    _, after = image_inputs(loaded, name)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(vlm.model(**before).logits, loaded.model(**after).logits)
    loaded.save_pretrained(tmp_path / "again")                          # a loaded model saves again
    assert load_vlm(tmp_path / "again", device="cpu").processor.tokenizer.get_vocab() == vlm.processor.tokenizer.get_vocab()


def test_the_qwen_processor_expands_each_image_by_its_grid(tiny):
    processor = tiny["qwen2_vl"].processor
    assert isinstance(processor, QwenVLProcessor)
    batch = processor(text=["a <|image_pad|> b", "text only"], images=[PORTRAIT], padding=True, return_tensors="pt")
    grid = batch["image_grid_thw"]
    assert grid.tolist() == [[1, 8, 8]]                                 # 64×64 pixels, patch 8
    expected = int(grid.prod()) // processor.image_processor.merge_size ** 2
    assert batch["mm_token_type_ids"].sum(dim=1).tolist() == [expected, 0]
    assert torch.equal(batch["mm_token_type_ids"].bool(), batch["input_ids"] == processor.image_token_id)
    with pytest.raises(ValueError, match="more <\\|image_pad\\|> placeholders than the 1 images"):
        processor(text=["<|image_pad|> and <|image_pad|>"], images=[PORTRAIT])
    with pytest.raises(ValueError, match="2 images but 1"):
        processor(text=["<|image_pad|> only once"], images=[PORTRAIT, PORTRAIT])


# -- errors, raised before a model is loaded -------------------------------------------------------------


def saved(vlm, folder):
    vlm.save_pretrained(folder)
    return folder


def test_a_folder_without_processor_files_is_refused(tiny, tmp_path):
    folder = saved(tiny["qwen2_5_vl"], tmp_path / "ckpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match="holds a model but not its processor: no tokenizer"):
        load_vlm(folder, device="cpu")


def test_a_tokenizer_without_the_image_token_is_refused(tiny, tmp_path):
    folder = saved(tiny["qwen2_vl"], tmp_path / "ckpt")
    tiny["llava"].processor.tokenizer.save_pretrained(folder)          # LLaVA's tokenizer: no <|image_pad|>
    with pytest.raises(ValueError, match="no image token '<\\|image_pad\\|>'"):
        load_vlm(folder, device="cpu")


def test_weights_that_do_not_match_the_config_are_refused(tiny, tmp_path):
    folder = saved(tiny["idefics3"], tmp_path / "reshaped")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 80
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"do not match its config.json \(mismatched keys: 6 \(e.g. model.text_model.layers.0.mlp.down_proj.weight: checkpoint \[64, 96\] vs config \[64, 80\]"):
        load_vlm(folder, device="cpu")
    folder = saved(tiny["idefics3"], tmp_path / "missing")               # a tensor gone: not filled at random
    weights = load_file(folder / "model.safetensors")
    weights.pop(next(k for k in weights if "down_proj" in k))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing keys: 1"):
        load_vlm(folder, device="cpu")


def test_an_unsupported_architecture_names_every_supported_one(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["PaliGemmaForConditionalGeneration"]}))
    with pytest.raises(ValueError, match="PaliGemma.*Idefics2.*Idefics3.*Llava.*Qwen2VL.*Qwen2_5_VL"):
        load_vlm(tmp_path, device="cpu")


# -- the course's LLaVA keeps its prompts --------------------------------------------------------------------


def test_the_course_llava_chat_template_renders_the_course_prompts(tiny, bench):
    from mini_unlearn.bench.questions import IMAGE_TEXT
    from mini_unlearn.models import question_prompt, question_text, target
    from mini_unlearn.models.prompts import render_turns
    from mini_unlearn.models.shipped import shipped_folders
    from mini_unlearn.release import course_model_keys
    processors = [tiny["llava"].processor] + [load_vlm(f, device="cpu").processor for f in shipped_folders()]
    questions = [q for qs in bench.questions.values() for q in qs]
    assert {q.modality for q in questions} == {"image+text", "text"}
    assert len(processors) == 1 + len(course_model_keys())          # the tiny model and every shipped one
    for processor in processors:
        for q in questions:
            prompt, reply = render_turns(processor, question_text(q), q.modality == IMAGE_TEXT, q.answer)
            assert prompt == question_prompt(q) and reply == target(q.answer) + processor.tokenizer.eos_token


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_image", [True, False])
def test_each_family_renders_a_question_and_its_answer_turn(tiny, name, with_image):
    from mini_unlearn.models.prompts import chat, render_turns, target
    processor, family = tiny[name].processor, FAMILIES[name]
    prompt, reply = render_turns(processor, "Where was Ann born?", with_image, "Ann was born in Dunmere.")
    assert prompt == render_turns(processor, "Where was Ann born?", with_image)[0]
    assert (family.image_token in prompt) == with_image and "Where was Ann born?" in prompt
    assert "Dunmere" not in prompt and "Ann was born in Dunmere." in reply
    whole = [{"role": "user", "content": ([{"type": "image"}] if with_image else [])
              + [{"type": "text", "text": "Where was Ann born?"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "Ann was born in Dunmere."}]}]
    assert prompt + reply == processor.apply_chat_template(whole, tokenize=False)
    if name == "llava":                                     # the course's prompts, unchanged
        assert prompt == chat("Where was Ann born?", with_image)
        assert reply == target("Ann was born in Dunmere.") + processor.tokenizer.eos_token


def test_a_template_that_does_not_continue_its_prompt_is_refused(tiny):
    from mini_unlearn.models.prompts import render_turns

    class Odd:
        def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=False):
            return "Q?\nA:" if add_generation_prompt else "Q?\nAnswer: " + messages[-1]["content"][0]["text"]
    with pytest.raises(ValueError, match="does not continue its generation prompt"):
        render_turns(Odd(), "Q?", False, "yes")


# -- training batches and neuron statistics follow the family's layout ---------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_training_batch_scores_exactly_the_answer_turn_of_the_familys_template(tiny, bench, name):
    from mini_unlearn.models.prompts import chat, render, target
    from mini_unlearn.models.train_data import make_batch
    vlm, family = tiny[name], FAMILIES[name]
    samples = [(chat("Who is this?", True), target("Ann Lee."), PORTRAIT),
               (chat("Where was Ann Lee born, and in which year?", False), target("Dunmere."), None)]
    batch = make_batch(vlm.processor, samples)
    tokenizer = vlm.processor.tokenizer
    for row, (prompt, answer, _) in enumerate(samples):
        turn = render(vlm.processor, prompt, answer)[1]
        scored = batch["labels"][row][batch["labels"][row] != -100]
        assert scored.tolist() == tokenizer(turn, add_special_tokens=False).input_ids
        assert "Ann Lee." in turn or "Dunmere." in turn
    assert batch["attention_mask"][:, -1].all()                     # left padding: every answer ends the row
    assert ("position_ids" in batch) == (not family.own_positions)  # Qwen-VL computes its own 3-D positions
    with torch.no_grad():
        assert torch.isfinite(vlm.model(**batch).loss)


@pytest.mark.parametrize("name", NAMES)
def test_vision_statistics_count_one_sample_per_image(tiny, name):
    from mini_unlearn.models.inputs import model_inputs
    from mini_unlearn.neurons.activations import collect_stats
    vlm = tiny[name]
    prompt = vlm.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who?"}]}], add_generation_prompt=True,
        tokenize=False)
    other = Image.new("RGB", (64, 64), (10, 200, 30))
    batch = model_inputs(vlm.processor, [prompt] * 3, [PORTRAIT, other, PORTRAIT])
    stats = collect_stats(vlm, [batch], towers=("vision",))
    assert {s.count for s in stats.values()} == {3}
    first = next(iter(stats.values()))
    alone = next(iter(collect_stats(vlm, [model_inputs(vlm.processor, [prompt], [other])], towers=("vision",)).values()))
    single = next(iter(collect_stats(vlm, [model_inputs(vlm.processor, [prompt], [PORTRAIT])],
                                     towers=("vision",)).values()))
    assert torch.allclose(first.total, 2 * single.total + alone.total, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_a_family_that_packs_its_pixels_says_so_and_path_attribution_copies_whole_patch_sets(tiny, name):
    from mini_unlearn.models.families import packed_pixels
    from mini_unlearn.models.inputs import model_inputs
    from mini_unlearn.neurons.paths import first_copy, repeat_batch
    vlm, family = tiny[name], FAMILIES[name]
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who?"}]}]
    prompt = vlm.processor.apply_chat_template(question, add_generation_prompt=True, tokenize=False)
    batch = model_inputs(vlm.processor, [prompt], [PORTRAIT])
    assert packed_pixels(batch) == (family.patch_grid is not None) == name.startswith("qwen")
    assert not packed_pixels({key: value for key, value in batch.items() if key != "pixel_values"})
    copies = repeat_batch(batch, 3)
    assert copies["input_ids"].shape[0] == 3
    assert copies["pixel_values"].shape[0] == 3 * batch["pixel_values"].shape[0]
    assert all(torch.equal(value, batch[key]) for key, value in first_copy(copies).items())


def test_a_tiny_model_is_asked_by_family_or_by_name(bench):
    by_name, by_family = VLM.tiny("idefics3", bench), VLM.tiny(FAMILIES["idefics3"], bench)
    assert by_name.card == by_family.card == {"family": "idefics3", "tiny": True}
    assert all(torch.equal(a, b) for a, b in zip(by_name.model.parameters(), by_family.model.parameters()))
    with pytest.raises(ValueError, match="unknown family 'llava2'; expected one of \\['llava', 'qwen2_vl'"):
        VLM.tiny("llava2", bench)
    with pytest.raises(ValueError, match="family must be a Family or the name of one; got int"):
        VLM.tiny(3, bench)


# -- checkpoint folders as they are published ------------------------------------------------------------------


def as_published(folder, flat_config: bool):
    """The older published layout: chat_template.json instead of .jinja; optionally Qwen's flat config.json
    (the language model's settings at the top level, as Qwen2-VL's checkpoints carry them)."""
    template = folder / "chat_template.jinja"
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template.read_text()}))
    template.unlink()
    if flat_config:
        config = json.loads((folder / "config.json").read_text())
        text = config.pop("text_config")
        config.update({k: v for k, v in text.items() if k not in ("model_type", "architectures")})
        (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("name, flat", [("qwen2_vl", True), ("qwen2_5_vl", True), ("idefics3", False), ("llava", False)])
def test_a_folder_in_the_published_layout_loads_with_its_template(tiny, tmp_path, name, flat):
    from mini_unlearn.models.prompts import chat, render
    vlm = tiny[name]
    folder = saved(vlm, tmp_path / "ckpt")
    as_published(folder, flat)
    loaded = load_vlm(folder, device="cpu")
    prompt = chat("Who is this?", True)
    assert render(loaded.processor, prompt) == render(vlm.processor, prompt)
    _, before = image_inputs(vlm, name)
    _, after = image_inputs(loaded, name)
    with torch.no_grad():
        assert torch.equal(vlm.model(**before).logits, loaded.model(**after).logits)


def test_a_tied_lm_head_is_reported_under_both_names(bench):
    import mini_unlearn as mu
    family = FAMILIES["qwen2_5_vl"]
    tokenizer = family.tiny_tokenizer(bench)
    config = family.tiny_config(tokenizer)
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = True
    torch.manual_seed(0)
    model = family.model_class(config).eval()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    vlm = mu.models.VLM(model, family.build_processor(tokenizer))
    result = mu.unlearn(vlm, bench, "ga", 0.25, progress=False, steps=1, lr=1e-2)
    rows = result.touched.set_index("parameter")
    head, embeddings = "lm_head.weight", rows.loc["lm_head.weight", "tied_to"]
    assert embeddings.endswith("embed_tokens.weight") and rows.loc[embeddings, "tied_to"] == head
    assert rows.loc[head, "changed"] == rows.loc[embeddings, "changed"] > 0
    assert "lm_head.weight is tied to" in repr(result)
