"""Shared test helpers: an untrained tiny LLaVA for a benchmark, built in a fraction of a second."""
import pytest

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



# `course.py test` runs two pytest-xdist workers that take whole files in the order they are collected, so
# the longest files go first: a two-minute chapter started last would leave the other worker idle at the
# end. The slowest files (measured with `--durations`), by name; every other file keeps its place after them.
LONGEST_FIRST = ("notebooks/08_mip_editor.ipynb", "notebooks/06_mmunlearner.ipynb", "notebooks/09_attacks.ipynb",
                 "notebooks/02_vlm.ipynb", "notebooks/04_gradient_ascent.ipynb", "notebooks/05_manu.ipynb",
                 "tests/test_cli.py", "tests/test_gpu_pipeline.py", "tests/test_families_methods.py",
                 "tests/test_audit.py", "tests/test_shipped.py")


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))    # stable: a file stays whole
