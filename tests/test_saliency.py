"""mini_unlearn.neurons.saliency: squared gradients with known values, the mask rule, the weights it
covers, the preserve presets, and clear errors."""
import dataclasses

import pytest
import torch
from torch import nn

import mini_unlearn as mu
from mini_unlearn.neurons import saliency

RATIO = 0.25          # the 4-person fixture benchmark: one person to forget


# -- squared gradients on a toy model with known gradients --------------------------------------------


def test_squared_gradients_are_the_mean_of_squared_batch_mean_gradients():
    model = nn.Linear(3, 1, bias=True)
    # loss = mean_i (w · x_i + b)  ->  dL/dw = mean_i x_i,  dL/db = 1
    batches = [{"x": torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])},     # mean x = (2, 1, 0)
               {"x": torch.tensor([[0.0, -4.0, 1.0]])}]                      # mean x = (0, -4, 1)
    scores = saliency.squared_gradients(model, batches, dict(model.named_parameters()),
                                        loss_fn=lambda m, batch: m(batch["x"]).mean())
    assert torch.allclose(scores["weight"], torch.tensor([[(4 + 0) / 2, (1 + 16) / 2, (0 + 1) / 2]]))
    assert torch.allclose(scores["bias"], torch.tensor([1.0]))
    assert model.weight.grad is None, "saliency must not leave gradients behind"


def test_squared_gradients_need_a_batch_and_a_parameter():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="batches is empty"):
        saliency.squared_gradients(model, [], dict(model.named_parameters()), loss_fn=lambda m, b: m(b["x"]).sum())
    with pytest.raises(ValueError, match="parameters is empty"):
        saliency.squared_gradients(model, [{"x": torch.ones(1, 2)}], {}, loss_fn=lambda m, b: m(b["x"]).sum())


# -- the mask rule -----------------------------------------------------------------------------------


def test_mask_keeps_weights_the_forget_data_pulls_on_at_least_as_hard():
    forget = {"w": torch.tensor([2.0, 1.0, 0.0, 0.5, 0.0])}
    preserve = {"w": torch.tensor([1.0, 1.0, 0.0, 1.0, 3.0])}
    # ratios with eps: 2, 1, (0+eps)/(0+eps) = 1, 0.5, ~0
    assert saliency.saliency_mask(forget, preserve)["w"].tolist() == [True, True, True, False, False]
    assert saliency.saliency_mask(forget, preserve, threshold=1.5)["w"].tolist() == [True, False, False, False, False]
    assert saliency.saliency_mask(forget, preserve, threshold=0.5)["w"].tolist() == [True, True, True, True, False]


@pytest.mark.parametrize("threshold", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_mask_rejects_a_threshold_that_is_not_positive(threshold):
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        saliency.saliency_mask({"w": torch.ones(2)}, {"w": torch.ones(2)}, threshold=threshold)


def test_mask_needs_the_same_weights_in_both_saliencies():
    with pytest.raises(ValueError, match="same weights"):
        saliency.saliency_mask({"a": torch.ones(2)}, {"b": torch.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        saliency.saliency_mask({"a": torch.ones(2)}, {"a": torch.ones(3)})


# -- which weights a mask covers ------------------------------------------------------------------------


def test_maskable_parameters_are_the_linear_layers_of_each_group(vlm):
    model = vlm.model
    vision = saliency.maskable_parameters(model, "vision")
    language = saliency.maskable_parameters(model, "language")
    assert not set(vision) & set(language)
    assert any("vision_tower" in n and "mlp.fc1.weight" in n for n in vision)
    assert any("multi_modal_projector" in n for n in vision)
    assert any("mlp.down_proj.weight" in n for n in language) and any("self_attn.q_proj" in n for n in language)
    linear = {f"{m}.{p}" for m, module in model.named_modules() if isinstance(module, nn.Linear)
              for p, _ in module.named_parameters(recurse=False)}
    # every linear weight of both towers, and nothing else: no norm, no embedding, no LM head
    assert set(vision) | set(language) == {n for n in linear if "lm_head" not in n}
    assert not any("norm" in n or "embed" in n for n in list(vision) + list(language))
    with pytest.raises(ValueError, match="group must be one of"):
        saliency.maskable_parameters(model, "audio")


# -- preserve presets ----------------------------------------------------------------------------------


def test_preserve_sets_follow_the_released_mask_files(bench):
    forget = set(bench.forget_ids(RATIO))
    retain = {p.id for p in bench.profiles} - forget
    vision = saliency.preserve_examples(bench, RATIO, "vision")
    assert vision and all(e.modality == "image+text" and e.profile_id in retain for e in vision)
    assert {e.profile_id for e in vision} == retain

    language = saliency.preserve_examples(bench, RATIO, "language")
    text = [e for e in language if e.modality == "text"]
    image = [e for e in language if e.modality == "image+text"]
    assert {e.profile_id for e in text} == {p.id for p in bench.profiles}, "text-only pairs of every profile"
    assert forget <= {e.profile_id for e in text}, "the forget people's text knowledge is what is preserved"
    assert {e.profile_id for e in image} == retain, "and the retain people's image+text pairs"
    utility = {p.id for p in bench.utility_profiles}
    assert not {e.profile_id for e in language} & utility

    forget_pairs = saliency.forget_examples(bench, RATIO)
    assert forget_pairs and all(e.modality == "image+text" and e.profile_id in forget for e in forget_pairs)


def test_forget_examples_reject_an_empty_forget_set(bench):
    empty = dataclasses.replace(bench, forget_sets={RATIO: []})
    with pytest.raises(ValueError, match="forget set at ratio=0.25 is empty"):
        saliency.forget_examples(empty, RATIO)


# -- a whole model's mask ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masks(vlm, bench):
    before = {n: p.detach().clone() for n, p in vlm.model.named_parameters()}
    result = {preset: saliency.compute_saliency(vlm, bench, RATIO, preset) for preset in saliency.PRESETS}
    return before, result


def test_computing_saliency_changes_no_weight(vlm, masks):
    before, _ = masks
    for name, parameter in vlm.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
        assert parameter.grad is None


def test_both_is_the_union_of_the_vision_and_the_language_mask(masks):
    _, result = masks
    vision, language, both = result["vision"], result["language"], result["both"]
    assert set(both.masks) == set(vision.masks) | set(language.masks)
    for name, mask in both.masks.items():
        single = vision if name in vision else language
        assert mask.dtype == torch.bool and torch.equal(mask, single[name])
    assert set(vision.groups.values()) == {"vision"} and set(language.groups.values()) == {"language"}
    # a real mask: neither everything nor nothing
    assert 0 < both.kept < both.total


def test_summary_has_one_row_per_tensor_with_its_layer(masks):
    _, result = masks
    frame = result["both"].summary()
    assert len(frame) == len(result["both"])
    assert frame["fraction"].between(0, 1).all()
    layered = frame[frame["module"] == "mlp.fc2"]
    assert sorted(layered["layer"].unique()) == [0, 1]
    both = result["both"]
    # the repr gives the salient share (stable across CPU kernels), not the count that flips at the threshold
    assert f"SaliencyMask(preset='both', threshold=1.0: {len(both)} tensors, " in repr(both)
    assert f"{both.kept / both.total:.1%} of {both.total:,} weights salient" in " ".join(repr(both).split())
    assert f"{both.kept:,} of" not in repr(both)


def test_compute_saliency_rejects_bad_input_before_any_work(vlm, bench):
    with pytest.raises(ValueError, match="preset must be one of"):
        saliency.compute_saliency(vlm, bench, RATIO, "audio")
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        saliency.compute_saliency(vlm, bench, RATIO, "vision", threshold=0)
    with pytest.raises(ValueError, match="batch_size"):
        saliency.compute_saliency(vlm, bench, RATIO, "vision", batch_size=0)
    assert mu.neurons.compute_saliency is saliency.compute_saliency


def test_a_higher_threshold_keeps_a_subset(masks):
    _, result = masks
    both = result["both"]
    strict = both.with_threshold(4.0)
    assert strict.threshold == 4.0 and strict.kept < both.kept
    assert all(not (strict[n] & ~both[n]).any() for n in both.masks), "salient at 4 must be salient at 1"
    first = next(iter(both.masks))
    assert torch.equal(both.with_threshold(1.0)[first], both[first])
    with pytest.raises(ValueError, match="threshold"):
        both.with_threshold(0)


# -- which data each saliency comes from ----------------------------------------------------------------


def _scored(vlm, bench, examples, parameters):
    from mini_unlearn.models.train_data import one_pass_batches
    return saliency.squared_gradients(vlm.model, one_pass_batches(vlm.processor, examples, 4, saliency._order(0)),
                                      parameters)


@pytest.mark.parametrize("language_preserve", ["union", "pooled"])
def test_the_language_mask_compares_the_forget_data_with_its_preserve_sets(vlm, bench, language_preserve):
    mask = saliency.compute_saliency(vlm, bench, RATIO, "language", language_preserve=language_preserve)
    parameters = saliency.maskable_parameters(vlm.model, "language")
    forget = _scored(vlm, bench, saliency.forget_examples(bench, RATIO), parameters)
    sets = saliency.preserve_sets(bench, RATIO, "language", language_preserve)
    assert list(sets) == (["retain", "text"] if language_preserve == "union" else ["pooled"])
    scored = [_scored(vlm, bench, examples, parameters) for examples in sets.values()]
    for name in parameters:
        # F_f from the forget people's image+text pairs; F_p the max over the preserve sets (a weight is
        # protected when any map protects it); the mask compares F_f with F_p, in that order
        assert torch.equal(mask.forget[name], forget[name])
        assert torch.equal(mask.preserve[name], torch.stack([s[name] for s in scored]).amax(0))
        assert torch.equal(mask[name], (forget[name] + mask.eps) / (mask.preserve[name] + mask.eps) >= 1.0)
    assert mask.language_preserve == language_preserve


def test_the_union_protects_what_either_map_protects(vlm, bench):
    union = saliency.compute_saliency(vlm, bench, RATIO, "language")
    parameters = saliency.maskable_parameters(vlm.model, "language")
    forget = union.forget
    for examples in saliency.preserve_sets(bench, RATIO, "language").values():
        alone = saliency.saliency_mask(forget, _scored(vlm, bench, examples, parameters))
        for name in parameters:
            assert not (union[name] & ~alone[name]).any(), "a weight protected by one map is salient in the union"
    pooled = saliency.compute_saliency(vlm, bench, RATIO, "language", language_preserve="pooled")
    assert union.kept < pooled.kept       # the pooled mean protects fewer weights than the union here
    with pytest.raises(ValueError, match="language_preserve"):
        saliency.compute_saliency(vlm, bench, RATIO, "language", language_preserve="mean")
