"""mini_unlearn.neurons.paths: integrated gradients against closed forms, completeness with the cascade,
batched steps equal to the looped computation, the paper's and the released path formulas against a
hand loop, the default objectives and positions on a tiny VLM, the greedy search on a hand-built
table, and errors."""
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mini_unlearn.neurons import paths


class TwoLayers(nn.Module):
    """x → [up0 → relu → down0] → [up1 → tanh → down1] → F: two MLP 'layers' with gateable neurons."""

    def __init__(self, d=3, width=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.up0, self.down0 = nn.Linear(d, width), nn.Linear(width, d)
        self.up1, self.down1 = nn.Linear(d, width), nn.Linear(width, 1)

    def forward(self, x):
        h = x + self.down0(torch.relu(self.up0(x)))
        return self.down1(torch.tanh(self.up1(h)))


SITES = [SimpleNamespace(name="down0", width=4, tower="language"), SimpleNamespace(name="down1", width=4, tower="language")]


def objective(model, batch):
    return model(batch["x"]).sum(dim=(1, 2))          # one value per copy


def run(model, x, **options):
    positions = {s.name: torch.ones(x.shape[1], dtype=torch.bool) for s in SITES}
    return paths.attribute_sample(model, {"x": x}, SITES, objective_fn=objective, positions=positions, **options)


def f_with_gates(model, x, gates):
    """F with the given gates (one copy), no gradients."""
    positions = {name: torch.ones(x.shape[1], dtype=torch.bool) for name in gates}
    with torch.no_grad(), paths.gated(model, {n: g[None] for n, g in gates.items()}, positions):
        return float(objective(model, {"x": x}).sum())


# -- closed forms and completeness ------------------------------------------------------------------------


def test_integrated_gradients_match_the_closed_form_of_a_quadratic():
    # F(g) = (Σ_i w_i g_i a_i)²  →  IG_i = ∫₀¹ 2α S w_i a_i dα = S w_i a_i  (S = Σ w_i a_i);
    # the right Riemann sum with m steps gives exactly S w_i a_i (m+1)/m.
    a, w = torch.tensor([[[1.0, -2.0, 0.5]]]), torch.tensor([0.3, 0.7, -1.2])
    down = nn.Linear(3, 1, bias=False)
    down.weight.data = w[None]
    model = nn.Module()
    model.down = down
    site = [SimpleNamespace(name="down", width=3, tower="language")]
    S = float((w * a[0, 0]).sum())
    for m in (4, 64):
        result = paths.attribute_sample(model, {"x": a}, site, m=m, k=3, objective_fn=lambda mod, b: mod.down(b["x"]).pow(2).sum(dim=(1, 2)),
                                        positions={"down": torch.ones(1, dtype=torch.bool)}, variant="neuron_ig")
        expected = S * w * a[0, 0] * (m + 1) / m
        assert torch.allclose(result.scores["down"], expected, atol=1e-5)
    # completeness in the limit: the attributions sum to F(1) − F(0) = S²
    assert float(result.scores["down"].sum()) == pytest.approx(S ** 2, rel=0.02)


def test_completeness_with_the_cascade_as_m_grows():
    model, x = TwoLayers(), torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(1))
    full = f_with_gates(model, x, {})
    errors = []
    for m in (8, 256):
        result = run(model, x, m=m, k=2, variant="neuron_ig")
        # layer 0: its neurons alone
        base0 = f_with_gates(model, x, {"down0": torch.zeros(4)})
        # layer 1: its neurons and layer 0's path neurons move together from 0
        gate0 = torch.ones(4)
        gate0[result.path["down0"]] = 0.0
        base1 = f_with_gates(model, x, {"down0": gate0, "down1": torch.zeros(4)})
        total1 = float(result.scores["down1"].sum()) + result.path_term["down1"]
        errors.append((abs(float(result.scores["down0"].sum()) - (full - base0)), abs(total1 - (full - base1))))
    assert result.path_term["down0"] == 0.0
    assert errors[1][0] < 0.01 and errors[1][1] < 0.01, errors
    assert errors[1][1] < errors[0][1] or errors[0][1] < 1e-4, "the Riemann sum should converge"


def test_the_batched_steps_equal_the_looped_computation():
    model, x = TwoLayers(seed=3), torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(2))
    m = 5
    batched = run(model, x, m=m, k=2, variant="neuron_ig")
    # layer 0 by hand: one forward and backward per step
    looped = torch.zeros(4)
    for alpha in paths.alphas(m):
        gate = torch.full((1, 4), float(alpha), requires_grad=True)
        with paths.gated(model, {"down0": gate}, {"down0": torch.ones(4, dtype=torch.bool)}):
            objective(model, {"x": x}).sum().backward()
        looped += gate.grad[0] / m
    assert torch.allclose(batched.scores["down0"], looped, atol=1e-6)
    # and layer 1 with the path of layer 0 scaled jointly
    looped1 = torch.zeros(4)
    for alpha in paths.alphas(m):
        gate0 = torch.ones(1, 4)
        gate0[0, batched.path["down0"]] = float(alpha)
        gate1 = torch.full((1, 4), float(alpha), requires_grad=True)
        positions = {n: torch.ones(4, dtype=torch.bool) for n in ("down0", "down1")}
        with paths.gated(model, {"down0": gate0, "down1": gate1}, positions):
            objective(model, {"x": x}).sum().backward()
        looped1 += gate1.grad[0] / m
    assert torch.allclose(batched.scores["down1"], looped1, atol=1e-6)


def test_neuron_ig_fisher_scores_are_mean_squared_gradients_and_pointwise_ignores_the_path():
    model, x = TwoLayers(seed=4), torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(3))
    ig, fisher = run(model, x, m=6, k=2, variant="neuron_ig"), run(model, x, m=6, k=2, fisher=True, variant="neuron_ig")
    assert (fisher.scores["down0"] >= 0).all() and fisher.path_term["down1"] >= 0
    # layer 0 by hand: the mean over the m steps of the squared gradient (not of the gradient, squared)
    looped = torch.zeros(4)
    for alpha in paths.alphas(6):
        gate = torch.full((1, 4), float(alpha), requires_grad=True)
        with paths.gated(model, {"down0": gate}, {"down0": torch.ones(x.shape[1], dtype=torch.bool)}):
            objective(model, {"x": x}).sum().backward()
        looped += gate.grad[0] ** 2 / 6
    assert torch.allclose(fisher.scores["down0"], looped, atol=1e-6)
    assert not torch.allclose(fisher.scores["down0"], ig.scores["down0"] ** 2, atol=1e-6)
    point = run(model, x, m=6, k=2, cascade=False, variant="neuron_ig")
    assert torch.equal(point.scores["down0"], ig.scores["down0"])      # layer 0 has no earlier path
    assert point.path_term["down1"] == 0.0 and not torch.allclose(point.scores["down1"], ig.scores["down1"])


# -- the paper's and the released path formulas ----------------------------------------------------------


class Residual(TwoLayers):
    """TwoLayers with a residual stream past layer 1 (so the earlier path's gradients are not zero) and
    a read-out curved in both layers' activations (so the gradients vary along the m steps)."""

    def forward(self, x):
        h = x + self.down0(torch.relu(self.up0(x)))
        return (h ** 2).sum(dim=-1, keepdim=True) + self.down1(torch.tanh(self.up1(h))) ** 2


def hand_path_scores(model, x, m, path0, *, fisher=False, variant="paper", at=None):
    """The path formula for layer 1, one step at a time with leaf tensors in place of the activations."""
    at = torch.ones(x.shape[1], dtype=torch.bool) if at is None else at
    clean = {}
    hooks = [getattr(model, n).register_forward_pre_hook(lambda mod, args, n=n: clean.__setitem__(n, args[0][0].detach()))
             for n in ("down0", "down1")]
    with torch.no_grad():
        objective(model, {"x": x})
    for h in hooks:
        h.remove()
    per_step = {"down0": [], "down1": []}
    for alpha in paths.alphas(m, variant):
        leaves = {}

        def replace(name, chosen, alpha=alpha, leaves=leaves):
            def hook(_mod, args):
                v = args[0].detach().clone()
                v[0][at[:, None] & chosen[None, :]] = (alpha * clean[name])[at[:, None] & chosen[None, :]]
                leaves[name] = v.requires_grad_(True)
                return (leaves[name],)
            return hook
        chosen0 = torch.zeros(4, dtype=torch.bool)
        chosen0[path0] = True
        hooks = [model.down0.register_forward_pre_hook(replace("down0", chosen0)),
                 model.down1.register_forward_pre_hook(replace("down1", torch.ones(4, dtype=torch.bool)))]
        value = objective(model, {"x": x}).sum()
        (value / m if variant == "released" else value).backward()    # released: output.loss, a mean over copies
        for h in hooks:
            h.remove()
        for name, steps in per_step.items():
            steps.append(leaves[name].grad[0])
    grads = {name: torch.stack(g) for name, g in per_step.items()}                  # [m, tokens, width]
    if not fisher:
        summed = {name: g.sum(dim=0) for name, g in grads.items()}
    elif variant == "released":
        summed = {name: (((g - g.mean(0)) / g.std(0)) ** 2).sum(dim=0) for name, g in grads.items()}
    else:
        summed = {name: (g ** 2).sum(dim=0) for name, g in grads.items()}
    used = path0[-1:] if variant == "released" else path0
    steps_path = clean["down0"][at][:, used].sum(-1) / m
    grads_path = summed["down0"][at][:, used].sum(-1)
    return ((clean["down1"][at] / m + steps_path[:, None]) * (summed["down1"][at] + grads_path[:, None])).sum(dim=0)


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("fisher", [False, True])
def test_path_scores_are_the_paths_steps_times_its_summed_gradients(variant, fisher):
    model, x = Residual(seed=0), torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(0))
    result = run(model, x, m=5, k=2, fisher=fisher, variant=variant)
    expected = hand_path_scores(model, x, 5, result.path["down0"], fisher=fisher, variant=variant)
    assert torch.allclose(result.scores["down1"], expected, atol=1e-5), (result.scores["down1"], expected)
    assert result.path_term["down1"] != 0.0


def test_the_paper_formula_lets_the_path_reorder_a_layer_and_agrees_at_the_first_layer():
    model, x = Residual(seed=0), torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(0))
    paper, neuron = run(model, x, m=5, k=2), run(model, x, m=5, k=2, variant="neuron_ig")
    point = run(model, x, m=5, k=2, cascade=False)
    assert torch.allclose(paper.scores["down0"], neuron.scores["down0"], atol=1e-6)   # no earlier path: plain IG
    assert torch.allclose(point.scores["down0"], paper.scores["down0"])
    # layer 1: the cross terms (own step × path gradients, path steps × own gradient) change the scores
    assert not torch.allclose(paper.scores["down1"], point.scores["down1"], atol=1e-3)
    assert not torch.allclose(paper.scores["down1"], neuron.scores["down1"], atol=1e-3)
    # point-wise is the path formula with an empty path: each neuron's own integrated gradient
    own = hand_path_scores(model, x, 5, torch.empty(0, dtype=torch.long))
    assert torch.allclose(point.scores["down1"], own, atol=1e-5)


def test_a_layer_whose_scores_are_all_zero_gets_an_empty_path_and_a_warning():
    model, x = Residual(seed=0), torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(0))
    positions = {"down0": torch.ones(4, dtype=torch.bool), "down1": torch.zeros(4, dtype=torch.bool)}
    with pytest.warns(UserWarning, match="down1: every neuron scores exactly 0"):
        result = paths.attribute_sample(model, {"x": x}, SITES, objective_fn=objective, positions=positions, k=2)
    assert result.path["down1"].numel() == 0 and result.path["down0"].numel() == 2


# -- the default objectives and positions on a tiny VLM ---------------------------------------------------


@pytest.fixture(scope="module")
def samples(vlm, bench):
    from mini_unlearn.models.train_data import one_pass_batches, training_examples
    examples = training_examples(bench, bench.split("forget", 0.25).ids, practice=False)
    text = next(e for e in examples if e.modality == "text")
    image = next(e for e in examples if e.modality == "image+text")
    return {name: next(one_pass_batches(vlm.processor, [e], 1)) for name, e in (("text", text), ("image", image))}


def layer_off_change(model, batch, site, where):
    """log p(answer) with the site's neurons as they are, minus with them off at ``where``."""
    from mini_unlearn.models.train import answer_log_likelihoods
    with torch.no_grad():
        full = float(answer_log_likelihoods(model, batch)[0])
        with paths.gated(model, {site.name: torch.zeros(1, site.width)}, {site.name: where}):
            off = float(answer_log_likelihoods(model, batch)[0])
    return full - off


@pytest.mark.parametrize("tower, sample", [("language", "text"), ("vision", "image")])
def test_the_default_objective_is_the_answers_log_likelihood_at_the_default_positions(vlm, samples, tower, sample):
    # at the first layer the paper's score is the integrated gradient: complete as m grows, so the
    # scores add up to what switching the layer off (at the answer / every image position) costs
    batch, site = samples[sample], paths.tower_sites(vlm.model, tower)[0]
    n_vision = (vlm.model.config.vision_config.image_size // vlm.model.config.vision_config.patch_size) ** 2 + 1
    where = paths.answer_positions(batch) if tower == "language" else torch.ones(n_vision, dtype=torch.bool)
    change = layer_off_change(vlm.model, batch, site, where)
    total = float(paths.attribute_sample(vlm.model, batch, [site], m=64).scores[site.name].sum())
    assert abs(change) > 1e-3
    assert total == pytest.approx(change, rel=0.05, abs=1e-4)


def test_the_released_objective_is_the_models_own_loss_over_the_whole_sequence(vlm, samples):
    from mini_unlearn.models.train_data import sequence_labels
    batch = samples["text"]
    with torch.no_grad():
        ours = float(paths.objective(vlm.model, batch, "released")[0])
        hf = float(vlm.model(**sequence_labels(batch)).loss)
    assert ours == pytest.approx(hf, rel=1e-5)


def test_the_released_variant_scores_every_layer(vlm, samples, monkeypatch):
    # with the answer-only loss at position 0 the last language layer scored all zeros; the whole-
    # sequence loss reaches it, path or point-wise
    language = paths.tower_sites(vlm.model, "language")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cascade in (True, False):
            result = paths.attribute_sample(vlm.model, samples["text"], language, m=4, cascade=cascade, variant="released")
            assert all(bool(result.scores[s.name].any()) for s in language), cascade
        vision = paths.tower_sites(vlm.model, "vision")
        borrowed = paths.attribute_sample(vlm.model, samples["image"], vision, m=4, fisher=True, variant="released")
    assert all(bool(borrowed.scores[s.name].any()) for s in vision)
    # the last vision layer (whose CLS token LLaVA drops) borrows the layer below's gradients
    monkeypatch.setattr(paths, "_borrowing", lambda sites: {})
    alone = paths.attribute_sample(vlm.model, samples["image"], vision, m=4, fisher=True, variant="released")
    assert torch.equal(alone.scores[vision[0].name], borrowed.scores[vision[0].name])
    assert not torch.allclose(alone.scores[vision[-1].name], borrowed.scores[vision[-1].name])


def test_a_layer_nothing_varies_along_has_no_released_fisher_ranking(vlm, samples):
    # point-wise, interpolating the last vision layer's CLS changes nothing the model outputs: the m
    # copies' gradients agree up to rounding, z-score to 0, and the layer gets no path (not a random one)
    vision = paths.tower_sites(vlm.model, "vision")
    with pytest.warns(UserWarning, match=f"{vision[-1].name}: every neuron scores exactly 0"):
        point = paths.attribute_sample(vlm.model, samples["image"], vision, m=4, fisher=True, cascade=False,
                                       variant="released")
    assert point.path[vision[-1].name].numel() == 0 and point.path[vision[0].name].numel() == 5


# -- the released variant's pieces ------------------------------------------------------------------------


def test_released_uses_the_left_riemann_sum():
    assert paths.alphas(4).tolist() == [0.25, 0.5, 0.75, 1.0]
    assert paths.alphas(4, "released").tolist() == [0.0, 0.25, 0.5, 0.75]


def test_zscore_fisher_collapses_to_m_minus_one_for_every_neuron():
    grads = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 3, 50)
    assert torch.allclose(paths.zscore_fisher(grads), torch.full((50,), 3.0), atol=1e-4)
    # gradients equal up to rounding do not vary: 0, not m − 1
    rounding = torch.tensor([[1.0, 0.0], [1.0 + 1e-7, 0.0], [1.0, 0.0], [1.0 - 1e-7, 0.0]])
    assert paths.zscore_fisher(rounding).tolist() == [0.0, 0.0]


def test_answer_and_first_positions():
    batch = {"labels": torch.tensor([[-100, -100, -100, 7, 8, 2]]), "attention_mask": torch.tensor([[0, 1, 1, 1, 1, 1]])}
    assert paths.answer_positions(batch).tolist() == [[False, False, True, True, True, False]]
    assert paths.first_real_position(batch).tolist() == [[False, True, False, False, False, False]]
    assert paths.vision_positions(5, "paper").all() and paths.vision_positions(5, "released").tolist() == [True] + [False] * 4


# -- the greedy search on a hand-built table ----------------------------------------------------------------


def test_greedy_search_follows_the_path_chosen_so_far():
    sites = [SimpleNamespace(name=f"l{i}", width=4) for i in range(3)]
    table = {
        "l0": {(): torch.tensor([0.1, 0.9, 0.5, 0.2])},
        "l1": {(1, 2): torch.tensor([0.0, 0.3, 0.8, 0.7]), (0, 1): torch.tensor([9.0, 0.0, 0.0, 0.0])},
        "l2": {(1, 2, 2, 3): torch.tensor([0.4, 0.4, 0.1, 0.0])},
    }

    def score_layer(site, path):
        key = tuple(sorted(path["l0"].tolist())) + tuple(sorted(path["l1"].tolist())) if "l1" in path else \
            tuple(sorted(path["l0"].tolist())) if "l0" in path else ()
        return table[site.name][key], 0.0
    result = paths.greedy_path(sites, score_layer, k=2)
    assert result.path["l0"].tolist() == [1, 2]          # best first
    assert result.path["l1"].tolist() == [2, 3]          # from the row for path (1, 2), not (0, 1)
    assert result.path["l2"].tolist() == [0, 1]          # a tie goes to the lower index


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, words", [({"k": 0}, "k must be a positive integer"),
                                            ({"m": 0}, "m must be a positive integer"),
                                            ({"m": 2.5}, "m must be a positive integer"),
                                            ({"variant": "official"}, "variant must be one of")])
def test_bad_k_m_and_variant(options, words):
    with pytest.raises(ValueError, match=words):
        run(TwoLayers(), torch.ones(1, 2, 3), **options)


def test_one_sample_at_a_time():
    with pytest.raises(ValueError, match="one sample at a time"):
        paths.repeat_batch({"input_ids": torch.ones(2, 3)}, 4)


def test_integrated_gradients_of_a_function_are_complete_and_exact_for_a_linear_one():
    w, a = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(paths.integrated_gradients(lambda x: x @ w, a, m=1), w * a)   # exact at any m
    f = lambda x: torch.tanh(x @ w)
    ig = paths.integrated_gradients(f, a, m=400)
    assert float(ig.sum()) == pytest.approx(float(f(a[None])[0] - f(torch.zeros(1, 3, dtype=torch.float64))[0]), abs=1e-2)
