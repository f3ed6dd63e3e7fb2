"""Chapter 05's live control: each press prunes the top α of each tower by the chosen scores, measures the
pruned model, and leaves the weights bit for bit as they were."""
import matplotlib
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.text import fit

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sites(vlm):
    return mu.models.find_mlp_neurons(vlm.model)


@pytest.fixture(scope="module")
def scores(sites):
    generator = torch.Generator().manual_seed(0)
    high = {site.name: torch.rand(site.width, generator=generator) for site in sites}
    return {"high": high, "low": {name: -s for name, s in high.items()}}


def dead_neurons(model, sites):
    """Per site, the neurons whose consuming column is all zero: the pruned ones, seen from the model."""
    return {site.name: (site.module(model).weight == 0).all(dim=0).nonzero().flatten().tolist() for site in sites}


def test_a_press_prunes_the_top_alpha_of_each_tower_and_restores_the_weights(vlm, sites, scores):
    towers = mu.neurons.site_towers(vlm)
    before = {name: value.clone() for name, value in vlm.model.state_dict().items()}
    seen = []

    def measure(model):
        seen.append(dead_neurons(model, sites))
        return {"forget/dead": float(sum(map(len, seen[-1].values())))}

    control = mu.controls.pruning_control(vlm, scores, measure, towers)
    assert repr(control) == fit(mu.controls.pruning.NOTE)   # wrapped to the book's column
    small = control.drive(alpha=0.01, variant="high")
    large = control.drive(alpha=0.2)
    low = control.drive(variant="low")

    assert small["neurons pruned"] < large["neurons pruned"] == low["neurons pruned"]
    assert [r["forget/dead"] for r in (small, large, low)] == [r["neurons pruned"] for r in (small, large, low)]
    for dead, (alpha, variant) in zip(seen, [(0.01, "high"), (0.2, "high"), (0.2, "low")]):
        wanted = mu.neurons.select_top(scores[variant], alpha, "per_tower", towers)
        assert dead == {name: index.tolist() for name, index in wanted.items()}
    assert all(set(seen[1][name]).isdisjoint(seen[2][name]) for name in seen[1])   # the other scores' neurons
    after = vlm.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert dead_neurons(vlm.model, sites) == {site.name: [] for site in sites}


def test_a_press_measures_the_pruned_model_with_a_probe(vlm, bench, scores):
    probe = mu.methods.split_monitor(vlm, bench, 0.25, retain_people=1, score="log_likelihood")
    control = mu.controls.pruning_control(vlm, scores, probe, mu.neurons.site_towers(vlm))
    base = probe(vlm.model)
    pruned = control.drive(alpha=0.3, variant="high")
    assert set(pruned) == {"neurons pruned", *base}
    assert any(pruned[name] != base[name] for name in base)
    assert probe(vlm.model) == base
    with pytest.raises(ValueError, match="at least one set of scores"):
        mu.controls.pruning_control(vlm, {}, probe, {})


def test_released_scores_are_selected_as_the_released_code_does(vlm, sites):
    # every score equal: the released rule keeps every tie at the threshold (the whole tower), select_top
    # exactly round(α·N) of it
    towers = mu.neurons.site_towers(vlm)
    flat = {site.name: torch.ones(site.width) for site in sites}
    control = mu.controls.pruning_control(vlm, {"released": flat, "paper": flat}, lambda model: {}, towers)
    total = sum(site.width for site in sites)
    assert control.drive(alpha=0.1, variant="released")["neurons pruned"] == total
    top = mu.neurons.select_top(flat, 0.1, "per_tower", towers)
    assert control.drive(variant="paper")["neurons pruned"] == sum(map(len, top.values())) < total
