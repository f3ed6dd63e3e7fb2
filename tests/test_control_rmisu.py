"""Chapter 08's live control: each press edits a fresh copy along the same paths with the control's λ and
steps, and leaves the input model bit-identical."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.course.controls.rmisu import PROBES

RATIO = 0.25
SMALL = {"k": 2, "m": 2, "batch_size": 4, "lr": 1e-2}     # the smallest MIP-Editor the tests run (test_rmisu)


@pytest.fixture(scope="module")
def control(vlm, bench):
    return mu.controls.rmisu_control(vlm, bench, RATIO, lam=1.0, steps=5, probe_every=5, retain_people=2, **SMALL)


def weights(vlm):
    return {name: p.detach().clone() for name, p in vlm.model.named_parameters()}


def test_each_press_runs_its_lambda_and_steps_and_leaves_the_model_alone(control, vlm):
    before = weights(vlm)
    gentle = control.drive(lam=1.0, steps=5)
    assert all(torch.equal(p, before[n]) for n, p in vlm.model.named_parameters())
    hard = control.drive(lam=10.0, steps=10)
    assert control.values == {"lam": 10.0, "steps": 10}
    assert all(torch.equal(p, before[n]) for n, p in vlm.model.named_parameters())
    # the steps: one loss row per step, a probe before the first step and every 5 steps
    assert list(gentle["losses"].index) == list(range(1, 6)) and list(hard["losses"].index) == list(range(1, 11))
    assert list(gentle["probes"].index) == [0, 5] and list(hard["probes"].index) == [0, 5, 10]
    assert list(hard["probes"].columns) == list(PROBES)
    # λ: at step 1 the model is still the input model, so h = h_0 and the forget MSE is
    # mean ‖h − λ‖h‖u‖² — at λ = 10 more than 50 times the λ = 1 value
    assert hard["losses"].loc[1, "forget_mse"] > 50 * gentle["losses"].loc[1, "forget_mse"]
    # the same press again gives the same measurement: nothing carries over between presses
    again = control.drive(lam=1.0, steps=5)
    assert again["losses"].equals(gentle["losses"]) and again["probes"].equals(gentle["probes"])


def test_the_control_refuses_pruning_and_shows_its_note(vlm, bench, control):
    with pytest.raises(ValueError, match="edit='prune'"):
        mu.controls.rmisu_control(vlm, bench, RATIO, edit="prune", **SMALL)
    assert repr(control).startswith("Live control: RMisU's target scale λ")
    assert set(control.controls) == {"lam", "steps"}
