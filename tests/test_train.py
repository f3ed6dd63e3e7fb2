"""Knowledge injection (mini_unlearn.models.train, train_data, cache): fast checks on a 4-person benchmark."""
import dataclasses
import random
import warnings

import pytest
import torch
from transformers import LlavaForConditionalGeneration

import mini_unlearn as mu
from mini_unlearn.models import VLM, build_model, build_processor, build_tokenizer, get_preset
from mini_unlearn.models import cache as caching
from mini_unlearn.models.train import LoraSettings, Monitor, TrainConfig, train
from mini_unlearn.models.train_data import IGNORE_INDEX, answer_only_labels, make_batch, position_ids, training_examples

QUICK = TrainConfig(steps=6, batch_size=8, lr=3e-3, warmup=2)


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)


def fresh_vlm(bench, seed=0, preset="tiny"):
    preset = get_preset(preset)
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    return VLM(build_model(preset, tokenizer, seed=seed), build_processor(tokenizer, preset))


def quick_train(vlm, bench, steps=6, seed=0, **options):
    return train(vlm, training_examples(bench), steps=steps, batch_size=8, lr=3e-3, warmup=2, seed=seed,
                 progress=False, **options)


# -- the label mask -------------------------------------------------------------------------------

def test_answer_only_labels_on_left_padded_rows():
    pad = 0
    input_ids = torch.tensor([[0, 0, 5, 6, 7, 8],      # 2 pads, prompt [5, 6], answer [7, 8]
                              [9, 5, 6, 7, 8, 2],      # no pad, prompt [9, 5, 6], answer [7, 8, 2]
                              [0, 0, 0, 0, 4, 3]])     # 4 pads, prompt [4], answer [3]
    labels = answer_only_labels(input_ids, torch.tensor([2, 3, 1]), pad)
    x = IGNORE_INDEX
    assert labels.tolist() == [[x, x, x, x, 7, 8], [x, x, x, 7, 8, 2], [x, x, x, x, x, 3]]
    assert input_ids.tolist()[0] == [0, 0, 5, 6, 7, 8]      # the input is not modified


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_a_batch_scores_exactly_the_answer_and_eos(bench):
    vlm = fresh_vlm(bench)
    rng = random.Random(0)
    examples = training_examples(bench)
    chosen = [examples[0], examples[-1]] + [e for e in examples if e.task == "mcq"][:2]   # image and text rows
    samples = [(*e.draw(rng), e.image(rng)) for e in chosen]
    batch = make_batch(vlm.processor, samples)
    assert batch["pixel_values"].shape[0] == sum(image is not None for _, _, image in samples)
    for row, (_, answer, _) in zip(batch["labels"], samples):
        assert vlm.tokenizer.decode(row[row != IGNORE_INDEX]) == answer + vlm.tokenizer.eos_token


def test_training_examples_cover_pairs_and_every_practised_format(bench):
    examples = training_examples(bench)
    everyone = bench.profiles + bench.utility_profiles
    assert sum(e.task == "pair" for e in examples) == sum(len(bench.pairs[p.id]) for p in everyone)
    for task in ("mcq", "gen", "cloze"):
        for modality in mu.bench.MODALITIES:
            assert any(e.task == task and e.modality == modality for e in examples)
    assert len(training_examples(bench, practice=False)) == len(bench.train_pairs())


def test_mcq_practice_reshuffles_the_options_and_moves_the_letter(bench):
    example = next(e for e in training_examples(bench) if e.task == "mcq")
    question, rng = example.source, random.Random(0)
    letters = set()
    for _ in range(40):
        prompt, answer = example.draw(rng)
        letter = answer.strip()
        letters.add(letter)
        assert f"\n{letter}: {question.answer}\n" in prompt       # the drawn letter labels the right option
    assert letters == set(mu.bench.LETTERS)


def test_the_mcq_letters_are_single_tokens(bench):
    tokenizer = fresh_vlm(bench).tokenizer
    for letter in mu.bench.LETTERS:
        assert len(tokenizer(f" {letter}", add_special_tokens=False).input_ids) == 1, letter


# -- the loop -------------------------------------------------------------------------------------

def test_a_few_steps_reduce_the_loss(bench):
    log = quick_train(fresh_vlm(bench), bench, steps=25)
    assert sum(log.losses[-5:]) / 5 < 0.8 * sum(log.losses[:5]) / 5
    assert log.seconds > 0 and len(log.losses) == 25


def test_the_same_seed_gives_identical_weights(bench):
    first, second = fresh_vlm(bench), fresh_vlm(bench)
    quick_train(first, bench, steps=4, seed=3)
    quick_train(second, bench, steps=4, seed=3)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    third = fresh_vlm(bench)
    quick_train(third, bench, steps=4, seed=4)
    assert not torch.equal(first.model.lm_head.weight, third.model.lm_head.weight)


def test_the_monitor_logs_every_task_and_modality(bench):
    vlm = fresh_vlm(bench)
    log = quick_train(vlm, bench, steps=4, monitor=Monitor(vlm, bench), probe_every=2)
    assert [p["step"] for p in log.probes] == [2, 4]
    assert set(log.final_accuracy) == {f"{t}/{m}" for t in mu.bench.TASKS for m in mu.bench.MODALITIES}
    assert all(0.0 <= value <= 1.0 for value in log.final_accuracy.values())


def test_lora_trains_only_the_language_model_and_merges(bench):
    vlm = fresh_vlm(bench)
    before = {name: p.detach().clone() for name, p in vlm.model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)    # peft's deprecation warning is filtered inside
        quick_train(vlm, bench, steps=3, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    assert type(vlm.model) is LlavaForConditionalGeneration          # merged back: no peft wrapper left
    after = dict(vlm.model.named_parameters())
    assert set(after) == set(before)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".language_model." in name and name.endswith("proj.weight") for name in changed)
    assert any("mlp.down_proj" in name for name in changed) and any("self_attn.q_proj" in name for name in changed)


def test_greedy_generation_with_left_padding_agrees_with_the_teacher_forced_check(bench):
    vlm = fresh_vlm(bench)
    quick_train(vlm, bench, steps=10)
    questions = [q for p in bench.profiles for q in bench.questions[p.id] if q.task == "mcq"][::3]
    prompts = [mu.models.question_prompt(q) for q in questions]
    images = [q.image.load() for q in questions if q.image is not None]
    inputs = vlm.encode(prompts, images)
    assert (inputs["attention_mask"][:, 0] == 0).any()               # some rows really are left-padded
    generated = vlm.model.generate(**inputs, max_new_tokens=1, do_sample=False)[:, -1]
    with torch.no_grad():
        forced = vlm.model(**inputs, position_ids=position_ids(inputs["attention_mask"])).logits[:, -1].argmax(-1)
    assert generated.tolist() == forced.tolist()


# -- the cache ------------------------------------------------------------------------------------

def logits(vlm, bench):
    question = bench.questions[bench.profiles[0].id][0]
    inputs = vlm.encode([mu.models.question_prompt(question)], [question.image.load()])
    with torch.no_grad():
        return vlm.model(**inputs).logits


def test_vanilla_is_cached_and_reloaded_identically(bench, tmp_path, count_training):
    first = caching.vanilla(bench, seed=0, cache_dir=tmp_path, recipe=QUICK, device="cpu", progress=False)
    assert count_training == [QUICK.steps]
    second = caching.vanilla(bench, seed=0, cache_dir=tmp_path, recipe=QUICK, device="cpu", progress=False)
    assert count_training == [QUICK.steps]                               # loaded, not trained
    assert torch.equal(logits(first, bench), logits(second, bench))
    assert second.card["cache_key"] == first.card["cache_key"]
    assert second.card["training"]["losses"] == first.card["training"]["losses"]
    assert len(list(tmp_path.iterdir())) == 1                              # no temporary folder left over


def test_a_changed_benchmark_seed_or_preset_retrains(bench, tmp_path, count_training, no_probes):
    options = dict(cache_dir=tmp_path, recipe=QUICK, device="cpu", progress=False)
    caching.vanilla(bench, seed=0, **options)
    caching.vanilla(mu.bench.make_benchmark(n_profiles=4, seed=1, n_utility=1), seed=0, **options)
    caching.vanilla(mu.bench.make_benchmark(n_profiles=5, seed=0, n_utility=1), seed=0, **options)
    caching.vanilla(bench, seed=1, **options)
    narrower = dataclasses.replace(get_preset("tiny"), text_mlp=256)
    caching.vanilla(bench, preset=narrower, seed=0, **options)
    caching.vanilla(bench, seed=0, **dict(options, recipe=dataclasses.replace(QUICK, lr=1e-3)))
    assert len(count_training) == 6 and len(list(tmp_path.iterdir())) == 6
    caching.vanilla(bench, seed=0, **options)                          # the first one again: cached
    assert len(count_training) == 6
    caching.vanilla(bench, seed=0, retrain=True, **options)
    assert len(count_training) == 7 and len(list(tmp_path.iterdir())) == 6


def test_the_fingerprint_sees_any_change_in_the_text(bench):
    changed = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)
    assert caching.benchmark_fingerprint(changed) == caching.benchmark_fingerprint(bench)
    pid = changed.profiles[0].id
    changed.pairs[pid][0] = dataclasses.replace(changed.pairs[pid][0], answer="Someone else.")
    assert caching.benchmark_fingerprint(changed) != caching.benchmark_fingerprint(bench)


def test_retain_only_never_sees_the_forget_people(bench, tmp_path, count_training, monkeypatch):
    seen = []
    real = caching.training_examples
    monkeypatch.setattr(caching, "training_examples", lambda b, people: seen.extend(people) or real(b, people))
    gold = caching.retain_only(bench, ratio=0.25, cache_dir=tmp_path, recipe=QUICK, device="cpu", progress=False)
    forget = set(bench.forget_ids(0.25))
    assert seen and not forget & set(seen)
    assert gold.card["kind"] == "retain_only" and gold.card["ratio"] == 0.25


def test_an_unknown_preset_is_named(bench, tmp_path):
    with pytest.raises(ValueError, match="'huge'"):
        caching.vanilla(bench, preset="huge", cache_dir=tmp_path)


def test_the_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINI_UNLEARN_CACHE", str(tmp_path / "here"))
    assert caching.default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MINI_UNLEARN_CACHE")
    assert caching.default_cache_dir().parts[-2:] == (".cache", "mini_unlearn")


def test_the_reading_phase_runs_first_and_is_part_of_the_key(bench, tmp_path, count_training, no_probes):
    from dataclasses import replace

    from mini_unlearn.models import ReadingCurriculum
    examples = mu.models.training_examples(bench)
    curriculum = ReadingCurriculum(reading_steps=4, mcq_weight=3)
    first, second = curriculum.phases(examples)
    mcq = [e for e in examples if e.task == "mcq"]
    assert {e.modality for e in first} == {"text"}
    assert len(first) == sum(e.modality == "text" for e in examples) + 2 * sum(e.modality == "text" for e in mcq)
    assert len(second) == len(examples) + 2 * len(mcq)
    with pytest.raises(ValueError, match="mcq_weight"):
        ReadingCurriculum(mcq_weight=0)
    assert caching.RECIPES["tiny"].reading is not None                # the course recipe reads first
    options = dict(cache_dir=tmp_path, device="cpu", progress=False)
    plain = caching.vanilla(bench, seed=0, recipe=QUICK, **options)
    assert "reading_phase" not in plain.card and plain.card["cache_key"]["recipe"]["reading"] is None
    read = caching.vanilla(bench, seed=0, recipe=replace(QUICK, reading=curriculum), **options)
    assert count_training == [QUICK.steps, 4, QUICK.steps]            # reading phase, then the usual run
    assert read.card["cache_key"]["recipe"]["reading"] == {"reading_steps": 4, "mcq_weight": 3}
    assert read.card["reading_phase"]["config"]["steps"] == 4
    assert read.card["training"]["n_examples"] == len(second)         # the main phase repeats the MCQs too
    with pytest.raises(TypeError, match="reading"):
        replace(QUICK, reading={"reading_steps": 4})
    with pytest.raises(TypeError, match="recipe"):
        caching.vanilla(bench, seed=0, recipe={"steps": 4}, **options)
