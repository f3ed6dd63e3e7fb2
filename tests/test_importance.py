"""MANU's importance functions against naive per-neuron loops, and the reversible neuron pruning."""
import math

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.models import find_mlp_neurons
from mini_unlearn.neurons import NeuronStats, importance as imp
from mini_unlearn.neurons import prune_neurons, select_top


@pytest.fixture(scope="module")
def site(vlm):
    return next(s for s in find_mlp_neurons(vlm.model) if s.tower == "language")


def stats_of(site, values):
    stats = NeuronStats(site)
    for chunk in values.split(3):
        stats.add(chunk)
    return stats


def naive_paper(multi, text, tau=0.1, eps=1e-6):
    """The paper's four functions, one neuron at a time, from the stored activations."""
    out = {m: [] for m in ("abs", "freq", "var", "rms")}
    for j in range(multi.shape[1]):
        zm, zt = [float(v) for v in multi[:, j]], [float(v) for v in text[:, j]]
        mm, mt = sum(zm) / len(zm), sum(zt) / len(zt)
        vm = sum((v - mm) ** 2 for v in zm) / len(zm)
        vt = sum((v - mt) ** 2 for v in zt) / len(zt)
        nm, nt = sum(v > tau for v in zm), sum(v > tau for v in zt)
        sm, st = sum(v * v for v in zm), sum(v * v for v in zt)
        out["abs"].append(abs(mm - mt) / (abs(mm) + abs(mt) + eps))
        out["freq"].append(abs(nm - nt) / (nm + nt + eps))
        out["var"].append(math.sqrt(vm + vt))
        out["rms"].append(math.sqrt(abs(sm - st) / (sm + st + eps)))
    return {m: torch.tensor(v, dtype=torch.float64) for m, v in out.items()}


def naive_official(z, tau=0.1):
    out = {m: [] for m in ("abs", "freq", "var", "rms")}
    for j in range(z.shape[1]):
        col = [float(v) for v in z[:, j]]
        mean = sum(col) / len(col)
        out["abs"].append(sum(abs(v) for v in col) / len(col))
        out["freq"].append(sum(abs(v) > tau for v in col) / len(col))
        out["var"].append(math.sqrt(sum((v - mean) ** 2 for v in col) / len(col)))
        out["rms"].append(math.sqrt(sum(v * v for v in col) / len(col)))
    return {m: torch.tensor(v, dtype=torch.float64) for m, v in out.items()}


def test_paper_functions_match_a_per_neuron_loop(site):
    torch.manual_seed(0)
    multi, text = torch.randn(11, site.width) * 0.3, torch.randn(11, site.width) * 0.2 + 0.05
    got = imp.paper_importance(stats_of(site, multi), stats_of(site, text))
    expected = naive_paper(multi, text)
    for metric in imp.METRICS:
        assert torch.allclose(got[metric], expected[metric], atol=1e-9), metric
    assert torch.allclose(got["total"], sum(expected.values()), atol=1e-9)


def test_official_functions_and_score_match_a_per_neuron_loop(site):
    torch.manual_seed(1)
    forget, retain = torch.randn(9, site.width), torch.randn(14, site.width) * 0.5
    f, r = imp.official_importance(stats_of(site, forget)), imp.official_importance(stats_of(site, retain))
    nf, nr = naive_official(forget), naive_official(retain)
    for metric in imp.METRICS:
        assert torch.allclose(f[metric], nf[metric], atol=1e-9), metric
    expected = sum(w * (nf[m] / (nr[m] + 1e-5) - 1) for m, w in imp.OFFICIAL_WEIGHTS.items())
    assert torch.allclose(imp.official_score(f, r), expected, atol=1e-9)


def test_a_view_that_never_ran_counts_as_silent(site):
    multi = torch.randn(6, site.width)
    got = imp.paper_importance(stats_of(site, multi), NeuronStats(site))   # e.g. a vision neuron, text-only view
    mean = multi.double().mean(0).abs()
    assert torch.allclose(got["abs"], mean / (mean + 1e-6), atol=1e-9)     # ≈ 1 for any active neuron
    assert torch.allclose(got["rms"], torch.ones_like(got["rms"]), atol=1e-6)
    assert torch.allclose(got["var"], multi.double().var(0, unbiased=False).sqrt(), atol=1e-9)


def test_relative_score_ranks_forget_specific_neurons_first():
    forget, retain = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 4.0])
    assert imp.relative_score(forget, retain).argmax().item() == 0


def test_select_top_global_and_per_layer():
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.3]), "b": torch.tensor([0.8, 0.2, float("nan"), 0.7])}
    assert {k: v.tolist() for k, v in select_top(scores, 0.25).items()} == {"a": [1], "b": [0]}
    assert {k: v.tolist() for k, v in select_top(scores, 0.5, "per_layer").items()} == {"a": [1, 2], "b": [0, 3]}
    for bad in (0, 1, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="alpha"):
            select_top(scores, bad)


def test_pruning_touches_exactly_the_selected_neurons_and_undo_restores_the_logits(vlm, bench):
    question = next(q for q in bench.questions[bench.profiles[0].id] if q.modality == "image+text")
    batch = vlm.encode([mu.models.question_prompt(question)], [question.image.load()])
    with torch.no_grad():
        before_logits = vlm.model(**batch).logits.clone()
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    sites = find_mlp_neurons(vlm.model)
    selection = {sites[0].name: torch.tensor([3, 7]), sites[-1].name: torch.tensor([0, 5, 9])}
    pruning = prune_neurons(vlm, selection)
    after = vlm.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    expected = {sites[0].name + ".weight", sites[-1].name + ".weight"}
    for s in (sites[0], sites[-1]):
        expected |= {p + ".weight" for p in s.producers}
        expected |= {p + ".bias" for p in s.producers if vlm.model.get_submodule(p).bias is not None}
    assert changed <= expected and sites[-1].name + ".weight" in changed
    consumer = vlm.model.get_submodule(sites[-1].name).weight
    assert torch.all(consumer[:, [0, 5, 9]] == 0)
    untouched = [j for j in range(sites[-1].width) if j not in (0, 5, 9)]
    assert torch.equal(consumer[:, untouched], before[sites[-1].name + ".weight"][:, untouched])
    with torch.no_grad():
        assert not torch.equal(vlm.model(**batch).logits, before_logits)
    counts = pruning.counts()
    assert counts["pruned"].sum() == 5 == len(pruning)
    pruning.undo()
    assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(vlm.model(**batch).logits, before_logits)
    with pytest.raises(RuntimeError, match="already undone"):
        pruning.undo()


def test_pruning_rejects_unknown_sites_and_out_of_range_neurons(vlm):
    with pytest.raises(ValueError, match="no MLP neuron site"):
        prune_neurons(vlm, {"lm_head": torch.tensor([0])})
    site = find_mlp_neurons(vlm.model)[0]
    with pytest.raises(ValueError, match="must lie in"):
        prune_neurons(vlm, {site.name: torch.tensor([site.width])})


@pytest.mark.parametrize("options, words", [({"alpha": 0}, "alpha"), ({"alpha": 1.0}, "alpha"),
                                            ({"towers": ("vision", "audio")}, "towers"),
                                            ({"variant": "v2"}, "variant"), ({"scope": "tower"}, "scope")])
def test_manu_refuses_bad_settings_before_any_weight_changes(vlm, bench, options, words):
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    with pytest.raises(ValueError, match=words):
        mu.unlearn(vlm, bench, method="manu", ratio=0.25, progress=False, **options)
    assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items())


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_manu_prunes_alpha_of_the_chosen_towers_in_a_copy(vlm, bench, variant):
    result = mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, variant=variant, towers=("language",),
                        progress=False)
    counts = result.log.details["counts"]
    assert set(counts["tower"]) == {"language"}
    assert counts["pruned"].sum() == round(0.05 * counts["neurons"].sum())
    parts = result.touched_by_part()
    assert parts.loc["vision", "entries_changed"] == 0 and parts.loc["language", "entries_changed"] > 0
    assert result.touched["changed"].sum() > 0
