"""Chapter 06's live control: the saliency threshold slider cuts a computed mask's saliencies again, a
stricter threshold selects fewer weights, and pressing twice with one value gives the same numbers."""
import matplotlib
import pytest
import torch

import mini_unlearn as mu

matplotlib.use("Agg")

RATIO = 0.25          # the 4-person fixture benchmark: one person to forget


@pytest.fixture(scope="module")
def mask(vlm, bench):
    return mu.neurons.compute_saliency(vlm, bench, RATIO, "both")


def test_a_stricter_threshold_selects_fewer_weights(mask, monkeypatch):
    import matplotlib.pyplot as plt
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: plt.close("all"))
    before = {name: m.clone() for name, m in mask.masks.items()}
    control = mu.controls.saliency_control(mask)
    assert control.values == {"threshold": 1.0}
    loose, strict = control.drive(threshold=0.5), control.drive(threshold=4.0)
    assert list(loose.index) == ["language", "vision", "all"]
    assert (strict <= loose).all() and strict["all"] < loose["all"]
    # at the mask's own threshold the control reads the mask as computed
    at_one = control.drive(threshold=1.0)
    assert at_one["all"] == pytest.approx(mask.kept / mask.total)
    # cutting again leaves the mask itself alone
    assert all(torch.equal(mask.masks[name], m) for name, m in before.items())


def test_driving_twice_with_one_value_gives_the_same_numbers(mask, monkeypatch):
    import matplotlib.pyplot as plt
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: plt.close("all"))
    control = mu.controls.saliency_control(mask, threshold=2.0)
    first = control.drive(threshold=2.0)
    control.drive(threshold=0.3)
    assert control.drive(threshold=2.0).equals(first)


def test_the_control_needs_the_saliencies(mask):
    bare = mu.neurons.SaliencyMask(mask.masks, mask.groups, mask.preset)
    with pytest.raises(ValueError, match="without its saliencies"):
        mu.controls.saliency_control(bare)
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        mu.controls.saliency_control(mask, threshold=0)
