"""The planted model: the localisation ground truth (mini_unlearn.models.planting)."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn import release
from mini_unlearn.models import planting
from mini_unlearn.models.train_data import make_batch, training_examples

COUNTS = {"vision": 2, "language": 3}


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=20, seed=0, n_utility=1)      # 5%: one forget person


def logits(vlm, bench):
    examples = training_examples(bench, [bench.profiles[0].id])
    image = next(e for e in examples if e.modality == "image+text")
    text = next(e for e in examples if e.modality == "text")
    batch = make_batch(vlm.processor, [(*e.draw(None), e.image(None)) for e in (image, text)])
    with torch.no_grad():
        return vlm.model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_planting_widens_every_mlp_and_changes_nothing_yet(make_vlm, bench):
    base = make_vlm(bench)
    vlm, where = planting.plant(base, COUNTS, seed=0)
    widths = {s.name: (s.tower, s.width) for s in mu.models.find_mlp_neurons(base.model)}
    for site in mu.models.find_mlp_neurons(vlm.model):
        tower, width = widths[site.name]
        assert site.width == width + COUNTS[tower]
        assert len(where[site.name]) == COUNTS[tower] and where[site.name].max() < site.width
    assert torch.allclose(logits(vlm, bench), logits(base, bench), atol=1e-5)
    assert planting.plant(base, COUNTS, seed=0)[1].keys() == where.keys()
    assert all(torch.equal(a, b) for a, b in zip(planting.plant(base, COUNTS, seed=0)[1].values(), where.values()))


def test_training_moves_only_the_planted_entries_and_switching_them_off_gives_back_the_base(make_vlm, bench):
    base = make_vlm(bench)
    vlm, where = planting.plant(base, COUNTS, seed=0)
    before = {name: p.detach().clone() for name, p in vlm.model.named_parameters()}
    config = planting.PlantedConfig(ratio=0.05, neurons=COUNTS, steps=3, batch_size=4, warmup=1)
    planting.train_planted(vlm, where, bench, config, progress=False)
    planted = {p: mask for p, mask in planting.planted_parameters(vlm.model, where).items()}
    changed_planted = 0
    for name, p in vlm.model.named_parameters():
        mask = planted.get(p)
        if mask is None:
            assert torch.equal(p, before[name]), name
        else:
            assert torch.equal(p[~mask], before[name][~mask]), name
            changed_planted += int(not torch.equal(p[mask], before[name][mask]))
    assert changed_planted > 0
    assert all(p.requires_grad for p in vlm.model.parameters())      # nothing left frozen
    assert not torch.allclose(logits(vlm, bench), logits(base, bench), atol=1e-4)
    mu.neurons.prune_neurons(vlm.model, where)
    assert torch.allclose(logits(vlm, bench), logits(base, bench), atol=1e-5)


def test_the_card_records_the_planted_neurons(make_vlm, bench):
    config = planting.PlantedConfig(ratio=0.05, neurons=COUNTS, steps=2, batch_size=4, warmup=1)
    vlm = planting.make_planted(bench, make_vlm(bench), config, progress=False)
    truth = mu.models.planted_neurons(vlm)
    assert {name: len(index) for name, index in truth.items()} == {
        s.name: COUNTS[s.tower] for s in mu.models.find_mlp_neurons(vlm.model)}
    assert vlm.card["planted"]["forget"] == bench.forget_ids(0.05)
    with pytest.raises(ValueError, match="planted"):
        mu.models.planted_neurons(make_vlm(bench))


@pytest.mark.parametrize("bad, match", [
    ({"neurons": {"vision": 2}}, "neurons"),
    ({"neurons": {"vision": 0, "language": 3}}, "neurons"),
    ({"steps": 0}, "steps"),
    ({"forget_weight": 1.5}, "forget_weight"),
])
def test_bad_configs_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        planting.PlantedConfig(**bad)


def test_planted_rejects_a_wrong_config_type(bench):
    with pytest.raises(TypeError, match="config"):
        mu.models.planted(bench, config={"steps": 3})


# -- the shipped planted model ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def course_bench():
    return release.course_benchmark()


def test_the_shipped_planted_model_loads_and_switching_its_planted_neurons_off_gives_back_retain_only(
        course_bench, count_training):
    vlm = mu.models.planted(course_bench, device="cpu", progress=False)
    base = mu.models.retain_only(course_bench, 0.05, device="cpu", progress=False)
    assert count_training == []
    assert vlm.card["cache_key"] == planting.planted_key(course_bench)
    assert vlm.card["planted"]["forget"] == course_bench.forget_ids(0.05)
    sites = mu.models.find_mlp_neurons(vlm.model)
    truth = mu.models.planted_neurons(vlm)
    assert {s.name: len(truth[s.name]) for s in sites} == {
        s.name: planting.PlantedConfig().neurons[s.tower] for s in sites}
    assert not torch.allclose(logits(vlm, course_bench), logits(base, course_bench), atol=1e-3)
    mu.neurons.prune_neurons(vlm.model, truth)
    assert torch.allclose(logits(vlm, course_bench), logits(base, course_bench), atol=1e-4)


def test_planting_retraces_the_start_of_the_shipped_log(course_bench):
    card = mu.models.planted(course_bench, device="cpu", progress=False).card
    config = planting.PlantedConfig(**card["planted"]["config"])
    vlm, where = planting.plant(mu.models.retain_only(course_bench, 0.05, device="cpu", progress=False),
                                config.neurons, config.seed)
    log = planting.train_planted(vlm, where, course_bench, config, progress=False, stop_after=20)
    assert {k: v.tolist() for k, v in where.items()} == card["planted"]["neurons"]
    assert log.losses == pytest.approx(card["training"]["losses"][:20], rel=1e-3)
