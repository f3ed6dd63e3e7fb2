"""Scoring localisers against a known answer (mini_unlearn.neurons.ground_truth)."""
import math

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.neurons import ground_truth


@pytest.fixture(scope="module")
def sites(vlm):
    return mu.models.find_mlp_neurons(vlm.model)


def test_neuron_precision_recall_counts_hits_per_tower(vlm, sites):
    vision, language = sites[0], sites[-1]
    truth = {vision.name: torch.tensor([1, 2, 3, 4]), language.name: torch.tensor([0, 10])}
    found = {vision.name: torch.tensor([1, 2, 50]), language.name: torch.tensor([7])}
    table = ground_truth.neuron_precision_recall(vlm, found, truth).set_index("tower")
    assert table.loc["vision", ["found", "planted", "hits"]].tolist() == [3, 4, 2]
    assert table.loc["vision", "precision"] == pytest.approx(2 / 3)
    assert table.loc["vision", "recall"] == pytest.approx(0.5)
    width = sum(s.width for s in sites if s.tower == "vision")
    assert table.loc["vision", "random precision"] == pytest.approx(4 / width)
    assert table.loc["language", "hits"] == 0 and table.loc["language", "precision"] == 0
    empty = ground_truth.neuron_precision_recall(vlm, {}, truth).set_index("tower")
    assert math.isnan(empty.loc["vision", "precision"]) and empty.loc["vision", "recall"] == 0
    with pytest.raises(ValueError, match="sites"):
        ground_truth.neuron_precision_recall(vlm, {"no.such.site": torch.tensor([0])}, truth)


def test_weight_precision_recall_counts_the_planted_rows_and_columns(vlm, sites):
    language = sites[-1]
    truth = {language.name: torch.tensor([3])}
    owners = ground_truth.mlp_parameter_towers(vlm)
    planted = ground_truth.planted_weights(vlm, truth)
    assert set(planted) == {f"{p}.weight" for p in language.producers} | {f"{language.name}.weight"}
    hidden = vlm.model.config.text_config.hidden_size
    assert sum(int(m.sum()) for m in planted.values()) == 3 * hidden      # gate row, up row, down column
    masks = {name: mask.clone() for name, mask in planted.items()}
    down = f"{language.name}.weight"
    masks[down][:, 0] = True                                              # plus one column that is not planted
    table = ground_truth.weight_precision_recall(vlm, masks, truth, owners).set_index("tower")
    assert table.loc["language", "recall"] == 1.0
    assert table.loc["language", "precision"] == pytest.approx(3 / 4)


def test_top_share_and_share_on(vlm, sites):
    towers = {s.name: s.tower for s in sites}
    even = {s.name: torch.ones(s.width) for s in sites}
    shares = ground_truth.top_share(even, 0.1, towers)
    for tower, share in shares.items():
        n = sum(s.width for s in sites if s.tower == tower)
        assert share == pytest.approx(round(0.1 * n) / n)
    peaked = {s.name: torch.zeros(s.width) for s in sites}
    peaked[sites[0].name][5] = 7.0
    peaked[sites[-1].name][:3] = -1.0                                     # negative scores count as 0
    peaked[sites[-1].name][10] = 4.0
    assert ground_truth.top_share(peaked, 0.1, towers) == {"vision": 1.0, "language": 1.0}
    assert math.isnan(ground_truth.top_share({sites[0].name: torch.zeros(4)}, 0.5, towers)["vision"])
    assert ground_truth.share_on(peaked, {sites[0].name: torch.tensor([5])}, towers)["vision"] == 1.0
    assert ground_truth.share_on(even, {sites[0].name: torch.tensor([0, 1])}, towers)["vision"] == pytest.approx(
        2 / sum(s.width for s in sites if s.tower == "vision"))


def test_random_selection_is_seeded_and_sized(vlm, sites):
    counts = {s.name: 3 for s in sites}
    a = ground_truth.random_selection(vlm, counts, seed=1)
    assert all(len(v) == 3 and len(set(v.tolist())) == 3 for v in a.values())
    assert all(torch.equal(a[n], ground_truth.random_selection(vlm, counts, seed=1)[n]) for n in a)
    assert any(not torch.equal(a[n], ground_truth.random_selection(vlm, counts, seed=2)[n]) for n in a)
