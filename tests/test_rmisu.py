"""RMU / RMisU losses on hand-made tensors; MIP-Editor edits only the path rows; its ablations and errors."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods import rmisu

from assertions import assert_only_path_rows_moved

RATIO = 0.25


# -- losses ------------------------------------------------------------------------------------------


def test_control_vector_is_a_seeded_nonnegative_unit_vector():
    u = rmisu.control_vector(16, seed=3)
    assert u.norm().item() == pytest.approx(1.0) and (u >= 0).all()
    assert torch.equal(u, rmisu.control_vector(16, seed=3)) and not torch.equal(u, rmisu.control_vector(16, seed=4))


def test_rmu_forget_loss_is_the_mse_to_a_constant_target():
    h = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
    u = torch.tensor([1.0, 0.0])
    # target (2, 0) for every token: ((1, 4) and (-2, 0)) squared, averaged over 4 entries
    assert rmisu.rmu_forget_loss(h, u, steering=2.0).item() == pytest.approx((1 + 16 + 4 + 0) / 4)
    mask = torch.tensor([[1, 0]])
    assert rmisu.rmu_forget_loss(h, u, steering=2.0, mask=mask).item() == pytest.approx((1 + 16) / 2)


def test_rmisu_target_scales_with_the_input_models_norm():
    h = torch.tensor([[[1.0, 1.0]]])
    frozen = torch.tensor([[[3.0, 4.0]]])          # norm 5
    u = torch.tensor([0.0, 1.0])
    lam = 2.0                                       # target (0, 10)
    assert rmisu.rmisu_forget_loss(h, frozen, u, lam).item() == pytest.approx((1 + 81) / 2)
    retain, retain_frozen = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[1.0, 0.0]]])
    total = rmisu.rmisu_loss(h, frozen, retain, retain_frozen, u, lam=lam, gamma=0.5)
    assert total.item() == pytest.approx((1 + 81) / 2 + 0.5 * (0 + 4) / 2)


def test_rmisu_gradient_does_not_flow_into_the_target():
    h = torch.tensor([[[1.0, 2.0]]], requires_grad=True)
    frozen = h.detach().clone()
    rmisu.rmisu_forget_loss(h, frozen, torch.tensor([1.0, 0.0]), 1.0).backward()
    target = torch.tensor([5 ** 0.5, 0.0])
    assert torch.allclose(h.grad[0, 0], (h.detach()[0, 0] - target))      # d/dh mean (h − t)² = 2(h − t)/2


def test_the_first_batch_target_shares_one_norm_across_tokens():
    frozen = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]])      # token norms 5, 1, (pad)
    mask = torch.tensor([[1, 1, 0]])
    assert rmisu.mean_token_norm(frozen, mask).item() == pytest.approx(3.0)
    h, u = torch.zeros(1, 3, 2), torch.tensor([0.0, 1.0])
    # per token: targets (0, 10) and (0, 2); one norm: (0, 6) for both
    assert rmisu.rmisu_forget_loss(h, frozen, u, 2.0, mask).item() == pytest.approx((100 + 4) / 4)
    shared = rmisu.rmisu_forget_loss(h, frozen, u, 2.0, mask, norm=rmisu.mean_token_norm(frozen, mask))
    assert shared.item() == pytest.approx((36 + 36) / 4)


# -- the methods on a small untrained model -----------------------------------------------------------


def _run(vlm, bench, method="mip_editor", **options):
    options = {"steps": 2, "batch_size": 4, "k": 2, "m": 2, **options} if method == "mip_editor" else \
        {"steps": 2, "batch_size": 4, **options}
    return mu.unlearn(vlm, bench, method=method, ratio=RATIO, progress=False, **options)


@pytest.fixture(scope="module")
def before(vlm):
    return {n: p.detach().clone() for n, p in vlm.model.named_parameters()}


def test_rmisu_changes_only_the_rows_of_path_neurons(vlm, bench, before):
    result = _run(vlm, bench, lr=1e-2)
    chosen = result.log.details["selection"]
    assert set(result.log.details["paths"]) == {"igi", "ifi"}
    assert_only_path_rows_moved(before, result.vlm.model, chosen)
    parts = result.touched_by_part()
    assert parts.loc["vision", "entries_changed"] > 0 and parts.loc["language", "entries_changed"] > 0
    assert parts.loc["lm_head", "entries_changed"] == 0 and parts.loc["projector", "entries_changed"] == 0


def test_one_branch_edits_one_tower(vlm, bench):
    parts = _run(vlm, bench, lr=1e-2, branches=("ifi",)).touched_by_part()
    assert parts.loc["language", "entries_changed"] == 0 and parts.loc["vision", "entries_changed"] > 0
    parts = _run(vlm, bench, lr=1e-2, branches="igi").touched_by_part()
    assert parts.loc["vision", "entries_changed"] == 0 and parts.loc["language", "entries_changed"] > 0


def test_prune_only_zeroes_the_path_neurons_without_training(vlm, bench):
    result = _run(vlm, bench, edit="prune")
    assert result.log.losses == []
    chosen = result.log.details["selection"]
    sites = {s.name: s for s in mu.models.find_mlp_neurons(result.vlm.model)}
    name, indices = next(iter(chosen.items()))
    for producer in sites[name].producer_modules(result.vlm.model):
        assert (producer.weight[indices] == 0).all()


def test_full_model_rmisu_trains_everything_and_point_wise_uses_no_cascade(vlm, bench):
    full = _run(vlm, bench, lr=1e-3, localise="none")
    assert full.log.details["paths"] == {} and full.touched_by_part().loc["lm_head", "entries_changed"] > 0
    point = _run(vlm, bench, lr=1e-3, localise="point")
    assert all(not p.cascade for p in point.log.details["paths"].values())


def test_rmu_trains_only_the_mlps_up_to_its_layer(vlm, bench, before):
    result = _run(vlm, bench, method="rmu", lr=1e-2, layer=0, update_layers=1)
    for name, value in result.vlm.model.named_parameters():
        changed = not torch.equal(value, before[name])
        expected_region = "language_model.layers.0.mlp." in name
        assert not changed or expected_region, f"{name} changed outside layer 0's MLP"
    assert result.log.details["updated_layers"] == [0]
    assert list(result.to_frame().columns) == ["loss", "forget_mse", "retain_mse", "retain_ce"]


@pytest.mark.parametrize("method, options, words", [
    ("mip_editor", {"k": 0}, "k must be a positive integer"),
    ("mip_editor", {"m": 0}, "m must be a positive integer"),
    ("mip_editor", {"layer": 7}, r"layer must be a language-model layer index in \[0, 1\]"),
    ("mip_editor", {"layer": 0}, "above the target layer 0"),
    ("mip_editor", {"branches": ("audio",)}, "branches must be"),
    ("mip_editor", {"localise": "none", "edit": "prune"}, "needs neurons to prune"),
    ("mip_editor", {"variant": "official"}, "variant must be one of"),
    ("rmu", {"layer": -1}, "layer must be a language-model layer index"),
    ("rmu", {"steering": 0}, "steering"),
    ("mip_editor", {"target_norm": "sequence"}, "target_norm"),
])
def test_bad_input_is_refused_before_any_weight_changes(vlm, bench, before, method, options, words):
    with pytest.raises(ValueError, match=words):
        _run(vlm, bench, method=method, **options)
    assert all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters())


def test_hidden_states_read_the_chosen_decoder_layer(vlm, bench):
    forget, _ = mu.methods.unlearning_sets(bench, RATIO, "text")
    from mini_unlearn.methods.data import example_batches
    import random
    batch = next(example_batches(vlm.processor, forget, 2, random.Random(0)))
    h0, h1 = (mu.methods.hidden_states(vlm.model, batch, layer) for layer in (0, 1))
    assert h0.shape == h1.shape == (*batch["input_ids"].shape, vlm.model.config.text_config.hidden_size)
    assert not torch.equal(h0, h1)


@pytest.mark.parametrize("target_norm, loss_on", [("token", "answer"), ("first_batch", "answer"), ("token", "sequence")])
def test_the_rmisu_loss_holds_its_weighted_terms(vlm, bench, target_norm, loss_on, loop_batches):
    from mini_unlearn.models.train import answer_loss
    from mini_unlearn.models.train_data import sequence_labels
    [(forget_batch, retain_batch)] = loop_batches(vlm, bench, RATIO, "both")
    layer = len(rmisu.language_layers(vlm.model)) - 1
    u = rmisu.control_vector(vlm.model.config.text_config.hidden_size, 0)
    with torch.no_grad():
        h_f = rmisu.hidden_states(vlm.model, forget_batch, layer)
        mask = forget_batch["attention_mask"]
        norm = rmisu.mean_token_norm(h_f, mask) if target_norm == "first_batch" else None
        forget_mse = rmisu.rmisu_forget_loss(h_f, h_f, u, 3.0, mask, norm=norm).item()
        retain_ce = (answer_loss(vlm.model, retain_batch) if loss_on == "answer" else   # whole rows: the model's own loss
                     vlm.model(**sequence_labels(retain_batch)).loss).item()
    result = _run(vlm, bench, steps=3, lam=3.0, gamma=0.7, retain_ce_weight=0.2, target_norm=target_norm,
                  loss_on=loss_on)
    rows = result.log.losses
    # step 1: the model is the input model, so the retain MSE is 0 and the rest is known
    assert rows[0]["forget_mse"] == pytest.approx(forget_mse, rel=1e-4)
    assert rows[0]["retain_mse"] == pytest.approx(0.0, abs=1e-8)
    assert rows[0]["retain_ce"] == pytest.approx(retain_ce, rel=1e-4)
    for row in rows:                               # λ, γ and the CE weight all reach the loss
        assert row["loss"] == pytest.approx(row["forget_mse"] + 0.7 * row["retain_mse"] + 0.2 * row["retain_ce"],
                                            rel=1e-5)
    assert rows[-1]["retain_mse"] > 0
    if target_norm == "first_batch":
        assert result.log.details["target_norm"].item() == pytest.approx(rmisu.mean_token_norm(h_f, mask).item())
    else:
        assert result.log.details["target_norm"] is None
