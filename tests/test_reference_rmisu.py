"""RMisU's representation MSEs: over the real tokens (the package's default) or over every position, pads
included, as the released MIP-Editor code's ``F.mse_loss`` on the whole ``[batch, tokens, hidden]``
tensor (``train_eval.py``, ``adaptive_rmu_finetune``; issue 34, point 7). Expected values by hand."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods import rmisu

RATIO = 0.25


def test_the_retain_mse_over_real_tokens_or_every_position_by_hand():
    # two rows of three positions, two hidden units; row 0 is left-padded (position 0 is a pad)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    diff = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [0.0, 2.0]],     # squared per token: 25 (pad), 1, 4
                         [[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]]])    # 1, 0, 4
    frozen = torch.full_like(diff, 0.5)
    h = frozen + diff
    real = rmisu.retain_representation_loss(h, frozen, rmisu.mse_mask(mask, "real"))
    every = rmisu.retain_representation_loss(h, frozen, rmisu.mse_mask(mask, "all"))
    assert real.item() == pytest.approx((1 + 4 + 1 + 0 + 4) / (5 * 2))          # 5 real tokens × 2 units = 1.0
    assert every.item() == pytest.approx((25 + 1 + 4 + 1 + 0 + 4) / (6 * 2))    # 6 positions × 2 units = 35/12
    assert rmisu.mse_mask(mask, "real") is mask and rmisu.mse_mask(mask, "all") is None


def test_the_forget_mse_over_every_position_includes_the_pads_target():
    # per-token target λ‖h_frozen‖u: the pad's target counts too under "all"
    mask = torch.tensor([[0, 1]])
    frozen = torch.tensor([[[0.0, 2.0], [3.0, 4.0]]])             # norms 2 (pad), 5
    u, lam = torch.tensor([1.0, 0.0]), 1.0                       # targets (2, 0) and (5, 0)
    h = torch.zeros(1, 2, 2)
    real = rmisu.rmisu_forget_loss(h, frozen, u, lam, rmisu.mse_mask(mask, "real"))
    every = rmisu.rmisu_forget_loss(h, frozen, u, lam, rmisu.mse_mask(mask, "all"))
    assert real.item() == pytest.approx((25 + 0) / 2)
    assert every.item() == pytest.approx((4 + 0 + 25 + 0) / 4)


@pytest.mark.parametrize("mse_positions", ["real", "all"])
def test_representation_loss_averages_over_the_chosen_positions(make_vlm, vlm, bench, loop_batches, mse_positions):
    # a frozen model that differs from the trained one, so the retain MSE is not 0; batches with pads
    frozen = make_vlm(bench, seed=1)
    [(forget_batch, retain_batch)] = loop_batches(vlm, bench, RATIO, "both")
    assert (forget_batch["attention_mask"] == 0).any() and (retain_batch["attention_mask"] == 0).any()
    layer = len(rmisu.language_layers(vlm.model)) - 1
    u = rmisu.control_vector(vlm.model.config.text_config.hidden_size, 0)
    forget_loss = lambda h, mask, h_frozen: rmisu.rmisu_forget_loss(h, h_frozen, u, 2.0, mask)
    loss_fn = rmisu.representation_loss(frozen.model, layer, forget_loss, gamma=1.0, retain_ce_weight=0.0,
                                        mse_positions=mse_positions)
    with torch.no_grad():
        terms = loss_fn(vlm.model, forget_batch, retain_batch)
        h_r, h_r0 = (rmisu.hidden_states(m.model, retain_batch, layer) for m in (vlm, frozen))
        h_f, h_f0 = (rmisu.hidden_states(m.model, forget_batch, layer) for m in (vlm, frozen))
    target = 2.0 * h_f0.norm(dim=-1, keepdim=True) * u
    per_token = {"retain": ((h_r - h_r0) ** 2).mean(dim=-1), "forget": ((h_f - target) ** 2).mean(dim=-1)}
    masks = {"retain": retain_batch["attention_mask"].bool(), "forget": forget_batch["attention_mask"].bool()}
    for term in ("retain", "forget"):
        real, every = per_token[term][masks[term]].mean(), per_token[term].mean()
        expected = real if mse_positions == "real" else every
        assert terms[f"{term}_mse"].item() == pytest.approx(expected.item(), rel=1e-5), term
        assert abs(real.item() - every.item()) > 1e-3 * real.item(), term                # the pads matter here


@pytest.mark.parametrize("mse_positions", ["real", "all"])
def test_mip_editor_passes_mse_positions_to_its_loss(vlm, bench, loop_batches, mse_positions):
    # step 1: the model is the input model; the forget MSE to λ‖h‖u over the chosen positions
    [(forget_batch, _)] = loop_batches(vlm, bench, RATIO, "both")
    layer = len(rmisu.language_layers(vlm.model)) - 1
    u = rmisu.control_vector(vlm.model.config.text_config.hidden_size, 0)
    with torch.no_grad():
        h = rmisu.hidden_states(vlm.model, forget_batch, layer)
    per_token = ((h - 3.0 * h.norm(dim=-1, keepdim=True) * u) ** 2).mean(dim=-1)
    expected = per_token[forget_batch["attention_mask"].bool()].mean() if mse_positions == "real" else per_token.mean()
    result = mu.unlearn(vlm, bench, method="mip_editor", ratio=RATIO, progress=False, steps=1, batch_size=4,
                        localise="none", lam=3.0, mse_positions=mse_positions)
    assert result.log.losses[0]["forget_mse"] == pytest.approx(expected.item(), rel=1e-4)
    assert result.config.mse_positions == mse_positions


def test_a_bad_mse_positions_is_refused():
    with pytest.raises(ValueError, match="mse_positions must be one of"):
        mu.methods.make_config("mip_editor", mse_positions="pads")
    with pytest.raises(ValueError, match="mse_positions must be one of"):
        rmisu.mse_mask(torch.ones(1, 2), "every")
