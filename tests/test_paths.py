"""mini_unlearn.neurons.paths: integrated gradients against closed forms, completeness with the cascade,
batched steps equal to the looped computation, the greedy search on a hand-built table, and errors."""
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
                                        positions={"down": torch.ones(1, dtype=torch.bool)})
        expected = S * w * a[0, 0] * (m + 1) / m
        assert torch.allclose(result.scores["down"], expected, atol=1e-5)
    # completeness in the limit: the attributions sum to F(1) − F(0) = S²
    assert float(result.scores["down"].sum()) == pytest.approx(S ** 2, rel=0.02)


def test_completeness_with_the_cascade_as_m_grows():
    model, x = TwoLayers(), torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(1))
    full = f_with_gates(model, x, {})
    errors = []
    for m in (8, 256):
        result = run(model, x, m=m, k=2)
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
    batched = run(model, x, m=m, k=2)
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


def test_fisher_scores_are_mean_squared_gradients_and_pointwise_ignores_the_path():
    model, x = TwoLayers(seed=4), torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(3))
    ig, fisher = run(model, x, m=6, k=2), run(model, x, m=6, k=2, fisher=True)
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
    point = run(model, x, m=6, k=2, cascade=False)
    assert torch.equal(point.scores["down0"], ig.scores["down0"])      # layer 0 has no earlier path
    assert point.path_term["down1"] == 0.0 and not torch.allclose(point.scores["down1"], ig.scores["down1"])


# -- the released variant's pieces ------------------------------------------------------------------------


def test_released_uses_the_left_riemann_sum():
    assert paths.alphas(4).tolist() == [0.25, 0.5, 0.75, 1.0]
    assert paths.alphas(4, "released").tolist() == [0.0, 0.25, 0.5, 0.75]


def test_zscore_fisher_collapses_to_m_minus_one_for_every_neuron():
    grads = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 3, 50)
    assert torch.allclose(paths.zscore_fisher(grads), torch.full((50,), 3.0), atol=1e-4)


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
