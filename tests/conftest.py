"""Shared test helpers: an untrained tiny LLaVA for a benchmark, built in a fraction of a second."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.models import VLM, build_model, build_processor, build_tokenizer, get_preset
from mini_unlearn.models import train as training


def untrained_vlm(bench, preset="tiny", seed=0, card=None) -> VLM:
    """A freshly initialised model of ``preset`` with a tokenizer and processor for ``bench``."""
    preset = get_preset(preset)
    tokenizer = build_tokenizer(bench, preset.vocab_size)
    return VLM(build_model(preset, tokenizer, seed=seed), build_processor(tokenizer, preset), dict(card or {}))


@pytest.fixture(scope="session")
def make_vlm():
    return untrained_vlm


@pytest.fixture(scope="module")
def bench():
    """Four people and one utility person: enough for every split at ratio 0.25 (a module may override it)."""
    return mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)


@pytest.fixture(scope="module")
def vlm(bench):
    """An untrained tiny model for ``bench``, a fresh one per test module (a module may override it)."""
    return untrained_vlm(bench)


@pytest.fixture
def count_training(monkeypatch):
    """The ``steps`` of every training run started during the test (none: the model was loaded)."""
    calls = []
    real = training.train

    def counted(*args, **kwargs):
        calls.append(kwargs.get("steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", counted)     # train_recipe, which the cache calls, looks it up there
    return calls


@pytest.fixture
def no_probes(monkeypatch):
    """Models trained during the test skip the held-out probes (about 2 s each on the course benchmark,
    up to five per phase): for tests about keys, caching and shipping, not about what the probes read."""
    from mini_unlearn.models import cache as caching
    monkeypatch.setattr(caching, "Monitor", lambda *args, **kwargs: None)


def _loop_batches(vlm, bench, ratio=0.25, forget_on="image+text", batch_size=4, steps=1):
    """The (forget, retain) batches ``run_gradient_loop`` draws at each of its first ``steps`` steps, seed 0."""
    import random

    from mini_unlearn.methods.data import example_batches
    forget, retain = mu.methods.unlearning_sets(bench, ratio, forget_on)
    rng = random.Random("mini_unlearn/unlearn/0")
    forget_stream = example_batches(vlm.processor, forget, batch_size, rng)
    retain_stream = example_batches(vlm.processor, retain, batch_size, rng)
    return [(next(forget_stream), next(retain_stream)) for _ in range(steps)]


@pytest.fixture(scope="session")
def loop_batches():
    """:func:`_loop_batches`: recompute what a method's first steps saw, to check its logged losses."""
    return _loop_batches


def assert_mask_held(before, after, mask):
    """Mask-0 entries bit-identical; some mask-1 entries moved; every weight outside the mask untouched."""
    moved = 0
    for name, value in after.named_parameters():
        old = before[name]
        if name in mask:
            m = mask[name]
            assert torch.equal(value[~m], old[~m]), f"{name}: an entry with mask 0 changed"
            moved += int((value[m] != old[m]).sum())
        else:
            assert torch.equal(value, old), f"{name} is outside the mask but changed"
    assert moved > 0, "no salient weight moved: the forget step did nothing"


def assert_only_path_rows_moved(before, model, chosen):
    """Only the producer rows of the ``chosen`` neurons changed (and some did)."""
    from mini_unlearn.methods import mip_editor
    parameters, masks = mip_editor.path_rows(model, chosen)
    owned = {id(p): masks[id(p)] for p in parameters}
    moved = 0
    for name, value in model.named_parameters():
        if id(value) in owned:
            rows = owned[id(value)].expand_as(value)
            assert torch.equal(value[~rows], before[name][~rows]), f"{name}: a row outside the paths changed"
            moved += int((value[rows] != before[name][rows]).sum())
        else:
            assert torch.equal(value, before[name]), f"{name} is not a path row but changed"
    assert moved > 0, "no path row moved"
