"""Models of a benchmark with a ``base`` (a generated CLEAR) continue the base's models instead of starting afresh."""
import dataclasses

import numpy as np
import pytest

from mini_unlearn import release
from mini_unlearn.bench import make_benchmark, make_clear
from mini_unlearn.bench.clear import WORLD_ID, paraphrased_caption, wording_pairs
from mini_unlearn.models import TrainConfig, shipped, training_examples
from mini_unlearn.models import cache as caching
from mini_unlearn.models.build import tokenizer_corpus
from mini_unlearn.models.train import train_recipe
from mini_unlearn.models.train_data import Example

FEW = TrainConfig(steps=2, batch_size=4, warmup=1)


@pytest.fixture(scope="module")
def small_clear():
    return make_clear(n_profiles=10, seed=0, n_images=2, n_perturbed=2, n_real_faces=1, n_real_world=1)


@pytest.fixture
def few_steps(monkeypatch, no_probes):
    """Every recipe two steps long, so a base and its continuation train in seconds."""
    monkeypatch.setitem(caching.RECIPES, "tiny", FEW)
    monkeypatch.setitem(caching.CONTINUED_RECIPES, "tiny", dataclasses.replace(FEW, steps=3))


def test_a_generated_clear_continues_the_course_benchmark_of_its_people(small_clear):
    base = small_clear.base
    assert base is not None and base.name == "mini-mllmu(n=10, seed=0)"
    assert [p.id for p in base.profiles] == [p.id for p in small_clear.profiles]
    assert base.forget_ids(0.1) == small_clear.forget_ids(0.1)
    assert make_benchmark(n_profiles=10, seed=0).base is None


def test_the_background_pairs_teach_the_real_faces_both_wordings(small_clear):
    pairs = small_clear.background_pairs()
    real = [p for p in small_clear.utility_profiles if p.id != WORLD_ID]
    assert {pair.profile_id for pair in pairs} == {p.id for p in real}
    assert pairs == wording_pairs(real)
    person = real[0]
    answers = [pair.answer for pair in pairs if pair.profile_id == person.id]
    assert paraphrased_caption(person.name, person.face) in answers
    assert len(answers) == 2 * 4 + 2 * 6                 # 4 pictures and 6 facts, each said two ways
    fictitious = {p.id for p in small_clear.profiles}
    assert not any(pair.profile_id in fictitious for pair in pairs)   # CLEAR's people: one wording, as CLEAR teaches
    assert dataclasses.replace(small_clear, base=None).background_pairs() == []


def test_the_tokenizer_reads_the_background_pairs_and_the_scored_texts(small_clear):
    corpus = set(tokenizer_corpus(small_clear))
    item = small_clear.items[small_clear.profiles[0].id][0]
    assert any(item.perturbed[0] in text for text in corpus)
    assert any(small_clear.background_pairs()[1].answer in text for text in corpus)
    assert not any(item.perturbed[0] in text for text in tokenizer_corpus(small_clear.base))


def test_the_key_names_the_base_model_it_continues(small_clear):
    key = caching.vanilla_key(small_clear)
    assert key["base"] == caching.vanilla_key(small_clear.base)
    assert key["recipe"] == caching.CONTINUED_RECIPES["tiny"].to_dict() and "background" in key
    retained = caching.retain_only_key(small_clear, 0.1)
    assert retained["base"] == caching.retain_only_key(small_clear.base, 0.1)
    assert "base" not in caching.vanilla_key(small_clear.base)           # the course models' keys are unchanged
    assert shipped.shipped_name(retained) == "mini-clear-retain_only-tiny-seed0-ratio0.1"


def test_a_retain_only_model_refuses_a_base_that_forgot_other_people(small_clear):
    other = dataclasses.replace(small_clear, base=make_benchmark(n_profiles=10, seed=1))
    with pytest.raises(ValueError, match=r"ratio=0.1: .* forgets \['\w+'\] but its base .* forgets"):
        caching.retain_only_key(other, 0.1)


def test_vanilla_of_a_clear_trains_its_base_first_then_continues_it(small_clear, tmp_path, few_steps,
                                                                    count_training):
    vlm = caching.vanilla(small_clear, cache_dir=tmp_path, device="cpu", progress=False)
    assert count_training == [2, 3]                      # the base from scratch, then the continuation
    base = caching.vanilla(small_clear.base, cache_dir=tmp_path, device="cpu", progress=False)
    assert count_training == [2, 3]                      # the base came from the cache
    assert vlm.card["continues"] == "vanilla of mini-mllmu(n=10, seed=0)"
    assert vlm.card["cache_key"] == caching.vanilla_key(small_clear)
    assert vlm.processor.tokenizer.get_vocab() == base.processor.tokenizer.get_vocab()   # the base's tokenizer
    examples = training_examples(small_clear, caching.vanilla_people(small_clear))
    assert vlm.card["training"]["n_examples"] == len(examples) + len(small_clear.background_pairs())
    caching.vanilla(small_clear, cache_dir=tmp_path, device="cpu", progress=False)
    assert count_training == [2, 3]                      # and the continuation too


def test_the_continuation_starts_from_the_base_weights(small_clear, tmp_path, few_steps):
    """Its first loss is the base model's loss on the first batch, not an untrained model's."""
    vlm = caching.vanilla(small_clear, cache_dir=tmp_path, device="cpu", progress=False)
    base = caching.vanilla(small_clear.base, cache_dir=tmp_path, device="cpu", progress=False)
    examples = training_examples(small_clear, caching.vanilla_people(small_clear))
    examples += [Example(pair, "pair") for pair in small_clear.background_pairs()]
    _, log = train_recipe(base, examples, caching.CONTINUED_RECIPES["tiny"], seed=0, stop_after=1, progress=False)
    assert np.isclose(log.losses[0], vlm.card["training"]["losses"][0], rtol=1e-4)


def test_the_course_clear_models_continue_the_shipped_course_models():
    keys = release.course_model_keys()
    for name, base in (("clear_vanilla", "vanilla"), ("clear_retain_only", "retain_only"),
                       ("clear_retain_only@0.1", "retain_only@0.1")):
        assert keys[name]["base"] == keys[base]
        card = shipped.read_card(shipped.find_shipped(keys[name]))
        assert card["continues"].startswith(keys[base]["kind"] + " of mini-mllmu(n=40, seed=0)")
