"""Every registered method on a tiny generated CLEAR (each with its registry's ``quick`` setting, an untrained
tiny model): it unlearns CLEAR's forget person's captions and questions by name, leaves its input alone and
changes the model."""
import pytest
import torch

import mini_unlearn as mu

RATIO = 0.10            # CLEAR's forget10: one of the eight people
QUICK = {name: mu.methods.get(name).quick for name in mu.methods.available()}


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_clear(n_profiles=8, seed=0, n_images=2, n_perturbed=3, n_real_faces=1, n_real_world=1)


@pytest.fixture(scope="module")
def vlm(bench, make_vlm):
    return make_vlm(bench)


def test_the_methods_unlearn_clears_pairs_of_one_person(bench):
    forget, retain = mu.methods.unlearning_sets(bench, RATIO, "both")
    [person] = bench.forget_ids(RATIO)
    assert {e.profile_id for e in forget} == {person}
    assert {(e.modality, e.source.answer) for e in forget} == {
        ("image+text" if item.kind == "caption" else "text", item.answer)
        for item in bench.clear_items("forget", RATIO)}
    assert person not in {e.profile_id for e in retain} and len(retain) > len(forget)


@pytest.mark.parametrize("method", list(QUICK))
def test_every_method_runs_on_clear_and_leaves_its_input_alone(vlm, bench, method):
    before = {n: p.detach().clone() for n, p in vlm.model.named_parameters()}
    result = mu.unlearn(vlm, bench, method, RATIO, progress=False, **QUICK[method])
    assert all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters()), "the input model changed"
    assert result.vlm.model is not vlm.model
    assert result.touched["changed"].sum() > 0, f"{method} changed nothing on CLEAR"
