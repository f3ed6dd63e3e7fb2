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
    """The paper's four functions, one neuron at a time, from the stored activations (counts and sums
    per sample: the two views may hold different numbers of samples)."""
    out = {m: [] for m in ("abs", "freq", "var", "rms")}
    for j in range(multi.shape[1]):
        zm, zt = [float(v) for v in multi[:, j]], [float(v) for v in text[:, j]]
        mm, mt = sum(zm) / len(zm), sum(zt) / len(zt)
        vm = sum((v - mm) ** 2 for v in zm) / len(zm)
        vt = sum((v - mt) ** 2 for v in zt) / len(zt)
        nm, nt = sum(v > tau for v in zm) / len(zm), sum(v > tau for v in zt) / len(zt)
        sm, st = sum(v * v for v in zm) / len(zm), sum(v * v for v in zt) / len(zt)
        out["abs"].append(abs(mm - mt) / (abs(mm) + abs(mt) + eps))
        out["freq"].append(abs(nm - nt) / (nm + nt + eps))
        out["var"].append(math.sqrt(vm + vt))
        out["rms"].append(math.sqrt(abs(sm - st) / (sm + st + eps)))
    return {m: torch.tensor(v, dtype=torch.float64) for m, v in out.items()}


def naive_released(z, tau=0.1, batch_size=3):
    """The released code's statistics, one neuron at a time: per batch of ``batch_size`` samples (as
    :func:`stats_of` feeds them), with the n − 1 standard deviation, averaged over the batches (fewer than 10)."""
    out = {m: [] for m in ("abs", "freq", "var", "rms")}
    for j in range(z.shape[1]):
        col = [float(v) for v in z[:, j]]
        per_batch = {m: [] for m in out}
        for start in range(0, len(col), batch_size):
            batch = col[start:start + batch_size]
            mean = sum(batch) / len(batch)
            per_batch["abs"].append(sum(abs(v) for v in batch) / len(batch))
            per_batch["freq"].append(sum(abs(v) > tau for v in batch) / len(batch))
            per_batch["var"].append(math.sqrt(sum((v - mean) ** 2 for v in batch) / (len(batch) - 1)))
            per_batch["rms"].append(math.sqrt(sum(v * v for v in batch) / len(batch)))
        for m, values in per_batch.items():
            out[m].append(sum(values) / len(values))
    return {m: torch.tensor(v, dtype=torch.float64) for m, v in out.items()}


def test_paper_functions_match_a_per_neuron_loop(site):
    torch.manual_seed(0)
    multi, text = torch.randn(11, site.width) * 0.3, torch.randn(8, site.width) * 0.2 + 0.05
    got = imp.paper_importance(stats_of(site, multi), stats_of(site, text))
    expected = naive_paper(multi, text)
    for metric in imp.METRICS:
        assert torch.allclose(got[metric], expected[metric], atol=1e-9), metric
    assert torch.allclose(got["total"], sum(expected.values()), atol=1e-9)


def test_released_functions_and_score_match_a_per_neuron_loop(site):
    torch.manual_seed(1)
    forget, retain = torch.randn(9, site.width), torch.randn(14, site.width) * 0.5
    f, r = imp.released_importance(stats_of(site, forget)), imp.released_importance(stats_of(site, retain))
    nf, nr = naive_released(forget), naive_released(retain)
    for metric in imp.METRICS:
        assert torch.allclose(f[metric], nf[metric], atol=1e-9), metric
    expected = sum(w * (nf[m] / (nr[m] + 1e-5) - 1) for m, w in imp.RELEASED_WEIGHTS.items())
    assert torch.allclose(imp.released_score(f, r), expected, atol=1e-9)


def test_a_view_that_never_ran_counts_as_silent(site):
    multi = torch.randn(6, site.width)
    got = imp.paper_importance(stats_of(site, multi), NeuronStats(site))   # e.g. a vision neuron, text-only view
    mean = multi.double().mean(0).abs()
    assert torch.allclose(got["abs"], mean / (mean + 1e-6), atol=1e-9)     # ≈ 1 for any active neuron
    assert torch.allclose(got["rms"], torch.ones_like(got["rms"]), atol=1e-6)
    assert torch.allclose(got["var"], multi.double().var(0, unbiased=False).sqrt(), atol=1e-9)


def test_a_neuron_that_behaves_the_same_in_both_views_scores_zero_whatever_the_counts(site):
    # 7 image+text pairs against 6 text-only ones (the name question has no text-only form): the same
    # per-sample behaviour must not look modality-specific because one view has more samples
    torch.manual_seed(2)
    text = torch.randn(6, site.width).abs() + 0.2
    multi = text.repeat(2, 1)                 # the same per-sample distribution, twice the samples
    got = imp.paper_importance(stats_of(site, multi), stats_of(site, text))
    for metric in ("abs", "freq", "rms"):      # raw counts and sums would give rms ≈ 0.58, freq ≈ 0.33 here
        assert torch.allclose(got[metric], torch.zeros_like(got[metric]), atol=1e-6), metric   # sqrt of rounding


def test_relative_score_is_forget_importance_over_retain_importance():
    forget, retain = torch.tensor([3.0, 1.0, 2.0, 0.0]), torch.tensor([1.0, 2.0, 4.0, 1.0])
    assert torch.allclose(imp.relative_score(forget, retain, eps=0.0), torch.tensor([3.0, 0.5, 0.5, 0.0]))
    assert imp.relative_score(torch.tensor([1.0]), torch.tensor([0.0]), eps=1e-6).item() == pytest.approx(1e6)


def _four(site, seed, shift):
    """stats[view] of one made-up data set, both views, one site."""
    generator = torch.Generator().manual_seed(seed)
    multi = torch.randn(8, site.width, generator=generator) * (1 + shift) + shift   # no one-sample batch
    text = torch.randn(6, site.width, generator=generator) * 0.5
    return {"image+text": stats_of(site, multi), "text": stats_of(site, text)}


@pytest.mark.parametrize("tower", ["language", "vision"])
def test_neuron_scores_compare_the_forget_set_with_the_retain_set(vlm, tower):
    site = next(s for s in find_mlp_neurons(vlm.model) if s.tower == tower)
    forget, retain = _four(site, 0, 0.5), _four(site, 1, 0.0)
    if tower == "vision":                      # a question without an image never runs the vision tower
        forget["text"], retain["text"] = NeuronStats(site), NeuronStats(site)
    stats = {"forget": {v: {site.name: s} for v, s in forget.items()},
             "retain": {v: {site.name: s} for v, s in retain.items()}}
    paper = imp.neuron_scores(stats, "paper")[site.name]
    if tower == "language":
        expected = imp.paper_importance(forget["image+text"], forget["text"])["total"] / (
            imp.paper_importance(retain["image+text"], retain["text"])["total"] + imp.EPS)
    else:                                      # the spread ratio on the portraits
        expected = forget["image+text"].variance().sqrt() / (retain["image+text"].variance().sqrt() + imp.EPS)
    assert torch.allclose(paper, expected, atol=1e-12)
    view = "image+text" if tower == "vision" else "text"
    released = imp.neuron_scores(stats, "released")[site.name]
    expected = imp.released_score(imp.released_importance(forget[view]), imp.released_importance(retain[view]))
    assert torch.allclose(released, expected, atol=1e-12)
    # swapping the forget and retain sets changes every score
    swapped = {"forget": stats["retain"], "retain": stats["forget"]}
    assert not torch.allclose(imp.neuron_scores(swapped, "paper")[site.name], paper)


def test_the_literal_vision_reading_squeezes_scores_towards_one(vlm):
    site = next(s for s in find_mlp_neurons(vlm.model) if s.tower == "vision")
    generator = torch.Generator().manual_seed(3)       # every neuron fires above τ in both sets
    forget = stats_of(site, torch.randn(7, site.width, generator=generator).abs() * 1.5 + 0.2)
    retain = stats_of(site, torch.randn(9, site.width, generator=generator).abs() + 0.2)
    literal, spread = imp.literal_vision_score(forget, retain), imp.vision_score(forget, retain)
    assert (literal - 1).abs().max() < (spread - 1).abs().max()
    sigma_f, sigma_r = forget.variance().sqrt(), retain.variance().sqrt()
    assert torch.allclose(literal, (3 + sigma_f) / (3 + sigma_r + imp.EPS), atol=1e-4)


def test_select_top_global_per_tower_and_per_layer():
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.3]), "b": torch.tensor([0.8, 0.2, float("nan"), 0.7])}
    assert {k: v.tolist() for k, v in select_top(scores, 0.25).items()} == {"a": [1], "b": [0]}
    assert {k: v.tolist() for k, v in select_top(scores, 0.5, "per_layer").items()} == {"a": [1, 2], "b": [0, 3]}
    # per tower: a low-scoring tower still gets its α (globally, "c" would get nothing)
    scores["c"] = torch.tensor([0.01, 0.03, 0.02, 0.0])
    towers = {"a": "language", "b": "language", "c": "vision"}
    assert {k: v.tolist() for k, v in select_top(scores, 0.25, "global").items()} == {"a": [1], "b": [0, 3], "c": []}
    assert {k: v.tolist() for k, v in select_top(scores, 0.25, "per_tower", towers).items()} == {
        "a": [1], "b": [0], "c": [1]}
    with pytest.raises(ValueError, match="towers"):
        select_top(scores, 0.25, "per_tower")
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
                                            ({"variant": "v2"}, "variant"), ({"scope": "tower"}, "scope"),
                                            ({"language_tokens": "answer"}, "language_tokens")])
def test_manu_refuses_bad_settings_before_any_weight_changes(vlm, bench, options, words):
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    with pytest.raises(ValueError, match=words):
        mu.unlearn(vlm, bench, method="manu", ratio=0.25, progress=False, **options)
    assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items())


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_manu_prunes_alpha_of_the_chosen_towers_in_a_copy(vlm, bench, variant):
    result = mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, variant=variant, towers=("language",),
                        progress=False)
    counts = result.log.details["counts"]
    assert set(counts["tower"]) == {"language"}
    assert counts["pruned"].sum() == round(0.05 * counts["neurons"].sum())
    parts = result.touched_by_part()
    assert parts.loc["vision", "entries_changed"] == 0 and parts.loc["language", "entries_changed"] > 0
    assert result.touched["changed"].sum() > 0


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_manu_prunes_alpha_of_each_tower_by_default(vlm, bench, variant):
    # released: batches of 8, as batches of 4 leave one of the 21 retain image+text pairs alone; int(α·N)
    # neurons (the released code's count), where the paper variant takes round(α·N)
    options = {"batch_size": 8} if variant == "released" else {}
    result = mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, variant=variant, progress=False, **options)
    count = int if variant == "released" else round
    counts = result.log.details["counts"].groupby("tower")[["pruned", "neurons"]].sum()
    for tower in ("vision", "language"):                   # both towers pruned, each by its own α
        assert counts.loc[tower, "pruned"] == count(0.05 * counts.loc[tower, "neurons"]) > 0, tower
    assert result.touched_by_part().loc["vision", "entries_changed"] > 0
