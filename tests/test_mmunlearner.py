"""MMUnlearner: the mask really applies (full fine-tuning and LoRA), the interleaved schedule, the goal,
and clear errors before any weight changes."""
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods.masked_lora import add_masked_lora
from mini_unlearn.neurons import saliency

from assertions import assert_mask_held

RATIO = 0.25


def _run(vlm, bench, **options):
    options = {"forget_steps": 2, "retain_per_forget": 0, "lr": 1e-2, **options}
    return mu.unlearn(vlm, bench, method="mmunlearner", ratio=RATIO, progress=False, **options)


@pytest.fixture(scope="module")
def before(vlm):
    return {n: p.detach().clone() for n, p in vlm.model.named_parameters()}


@pytest.mark.parametrize("preset", ["vision", "language", "both"])
def test_a_forget_step_changes_only_salient_weights(vlm, bench, before, preset):
    result = _run(vlm, bench, preset=preset)
    mask = result.log.details["mask"]
    assert mask.preset == preset and 0 < mask.kept < mask.total
    assert_mask_held(before, result.vlm.model, mask.masks)
    parts = result.touched_by_part()
    untouched = {"vision": ("language", "lm_head"), "language": ("vision", "projector", "lm_head"),
                 "both": ("lm_head",)}[preset]
    assert all(parts.loc[part, "entries_changed"] == 0 for part in untouched)


def test_the_mask_applies_under_lora_too(vlm, bench, before):
    result = _run(vlm, bench, preset="both", lora_rank=4, forget_steps=3)
    mask = result.log.details["mask"]
    assert_mask_held(before, result.vlm.model, {n: m for n, m in mask.masks.items() if n.endswith(".weight")})
    # the result is a plain model again: no adapter left, every parameter trainable
    names = [n for n, _ in result.vlm.model.named_parameters()]
    assert names == list(before) and all(p.requires_grad for p in result.vlm.model.parameters())


def test_without_the_mask_lora_changes_protected_weights(vlm, bench, before):
    # the control for the test above: the same LoRA run unmasked (what the released code does in effect)
    masked = _run(vlm, bench, preset="both", lora_rank=4, forget_steps=3).log.details["mask"]
    plain = _run(vlm, bench, preset="both", lora_rank=4, forget_steps=3, masked=False)
    assert plain.log.details["mask"] is None
    name = next(n for n, m in masked.masks.items() if n.endswith(".weight") and not m.all())
    m = masked.masks[name]
    after = dict(plain.vlm.model.named_parameters())[name]
    assert not torch.equal(after[~m], before[name][~m])


def test_the_released_mask_lookup_matches_no_lora_parameter(make_vlm, bench):
    # MLLMU_manifold.py: `if name in grad_mask: grad *= grad_mask[name]` over the trainable parameters
    vlm = make_vlm(bench)
    mask = saliency.compute_saliency(vlm, bench, RATIO, "language")
    peft_model = add_masked_lora(vlm.model, mask.masks, rank=2)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and not [n for n in trainable if n in mask.masks]


def test_retain_steps_follow_the_released_schedule(vlm, bench):
    result = _run(vlm, bench, preset="vision", forget_steps=2, retain_per_forget=2)
    assert result.log.details["retain_per_forget"] == 2
    frame = result.to_frame()
    assert list(frame.columns) == ["loss", "forget_ce", "retain_ce"] and len(frame) == 2
    default = _run(vlm, bench, preset="vision", forget_steps=1, retain_per_forget=None)
    forget, retain = mu.methods.unlearning_sets(bench, RATIO, "image+text")
    retain = [e for e in retain if e.modality == "image+text"]
    expected = mu.methods.default_retain_per_forget(len(forget), len(retain), 4)
    assert default.log.details["retain_per_forget"] == expected >= 1


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_the_papers_retain_steps_are_masked_too(vlm, bench, before, lora_rank):
    # Δw = m ⊙ ∇(−L_f + λ L_r): with retain steps in the run, still nothing outside the mask moves
    result = _run(vlm, bench, preset="vision", forget_steps=2, retain_per_forget=2, lora_rank=lora_rank)
    assert result.log.details["retain_mask"] == "paper"
    mask = result.log.details["mask"].masks
    if lora_rank:                                  # LoRA adapts the weights, not the biases
        mask = {n: m for n, m in mask.items() if n.endswith(".weight")}
    assert_mask_held(before, result.vlm.model, mask)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_the_released_retain_steps_change_protected_weights(vlm, bench, before, lora_rank):
    options = {"preset": "vision", "forget_steps": 2, "lora_rank": lora_rank, "retain_mask": "released"}
    # forget steps alone still obey the mask (under LoRA the unmasked adapter is trained by retain steps only)
    alone = _run(vlm, bench, retain_per_forget=0, **options)
    mask = alone.log.details["mask"].masks
    assert_mask_held(before, alone.vlm.model,
                      {n: m for n, m in mask.items() if n.endswith(".weight")} if lora_rank else mask)
    # with retain steps, protected vision weights move, and (full fine-tuning) so does the language side
    mixed = _run(vlm, bench, retain_per_forget=2, **options)
    after = dict(mixed.vlm.model.named_parameters())
    moved = sum(int((after[n][~m] != before[n][~m]).sum()) for n, m in mask.items() if n.endswith(".weight"))
    assert moved > 0, "the released retain step should change weights outside the mask"
    if not lora_rank:
        assert mixed.touched_by_part().loc["language", "entries_changed"] > 0


def test_default_schedule_is_retain_batches_over_forget_batches():
    assert mu.methods.default_retain_per_forget(n_forget=8, n_retain=152, batch_size=4) == 19
    assert mu.methods.default_retain_per_forget(n_forget=5, n_retain=9, batch_size=4) == 1   # 3 // 2
    assert mu.methods.default_retain_per_forget(n_forget=40, n_retain=4, batch_size=4) == 1  # at least one


@pytest.mark.parametrize("loss_on", ["answer", "sequence"])
def test_the_loss_scores_the_chosen_tokens(vlm, bench, loss_on, loop_batches):
    from mini_unlearn.models.train import answer_loss
    from mini_unlearn.models.train_data import sequence_labels
    [(forget_batch, _)] = loop_batches(vlm, bench, RATIO, "image+text")
    with torch.no_grad():                       # whole rows: the model's own loss over every labelled token
        expected = (answer_loss(vlm.model, forget_batch) if loss_on == "answer" else
                    vlm.model(**sequence_labels(forget_batch)).loss).item()
    result = _run(vlm, bench, forget_steps=1, masked=False, loss_on=loss_on)
    assert result.log.losses[0]["forget_ce"] == pytest.approx(expected, rel=1e-4)


def test_the_saliency_scores_the_chosen_tokens(vlm, bench):
    from mini_unlearn.models.train_data import one_pass_batches, sequence_labels
    answer = saliency.compute_saliency(vlm, bench, RATIO, "vision")
    whole = saliency.compute_saliency(vlm, bench, RATIO, "vision", loss_on="sequence")
    params = saliency.maskable_parameters(vlm.model, "vision")
    batches = one_pass_batches(vlm.processor, saliency.forget_examples(bench, RATIO), 4, saliency._order(0))
    hf = saliency.squared_gradients(vlm.model, batches, params, lambda model, batch: model(**sequence_labels(batch)).loss)
    name = next(iter(params))
    assert torch.allclose(whole.forget[name], hf[name], rtol=1e-4, atol=1e-12)
    assert not torch.allclose(answer.forget[name], hf[name], rtol=1e-2)


def test_masked_ascent_raises_the_forget_loss(vlm, bench):
    frame = _run(vlm, bench, preset="both", forget_steps=5, lr=3e-3).to_frame()
    assert frame["forget_ce"].iloc[-1] > frame["forget_ce"].iloc[0]


def test_mmunlearner_declares_the_visual_goal():
    assert mu.methods.get("mmunlearner").goal == "forget_visual"
    goal = mu.evaluation.GOALS["forget_visual"]
    assert mu.methods.get("mmunlearner").goal == "forget_visual" and goal["direction"][("forget", "text")] == "up"
    assert "mmunlearner" in mu.methods.available()


@pytest.mark.parametrize("options, words", [
    ({"threshold": 0}, "threshold must be a positive number"),
    ({"threshold": -1.0}, "threshold must be a positive number"),
    ({"preset": "audio"}, "preset must be one of"),
    ({"forget_steps": 0}, "forget_steps"),
    ({"retain_per_forget": -1}, "retain_per_forget"),
    ({"lora_rank": -2}, "lora_rank"),
    ({"language_preserve": "both"}, "language_preserve must be one of"),
    ({"lr": 0}, "lr"),
])
def test_bad_input_is_refused_before_any_weight_changes(vlm, bench, before, options, words):
    with pytest.raises(ValueError, match=words):
        _run(vlm, bench, **options)
    assert all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters())


def test_same_seed_same_weights(vlm, bench):
    first, second = _run(vlm, bench, seed=5, retain_per_forget=1), _run(vlm, bench, seed=5, retain_per_forget=1)
    assert first.log.losses == second.log.losses
    assert all(torch.equal(a, b) for a, b in zip(first.vlm.model.parameters(), second.vlm.model.parameters()))


def test_a_given_mask_is_used_as_it_is_and_gives_the_same_run(vlm, bench, before):
    # mask=: a mask computed once (compute_saliency, the run's own settings) instead of computed again
    computed = _run(vlm, bench, preset="vision", retain_per_forget=1)
    mask = saliency.compute_saliency(vlm, bench, RATIO, "vision")
    given = _run(vlm, bench, preset="vision", retain_per_forget=1, mask=mask)
    assert given.log.details["mask"] is mask
    assert given.log.losses == computed.log.losses
    assert all(torch.equal(a, b) for a, b in zip(given.vlm.model.parameters(), computed.vlm.model.parameters()))
    # the given mask is the one applied: protect every weight and nothing masked moves
    frozen = saliency.SaliencyMask({n: torch.zeros_like(m) for n, m in mask.masks.items()}, mask.groups, "vision")
    held = _run(vlm, bench, preset="vision", mask=frozen)
    assert all(torch.equal(before[n], p) for n, p in held.vlm.model.named_parameters())


@pytest.mark.parametrize("change, error, words", [
    (lambda mask: mask.masks, TypeError, "mask must be a SaliencyMask"),
    (lambda mask: mask.with_threshold(2.0), ValueError, "computed with threshold=2.0"),
    (lambda mask: saliency.SaliencyMask(mask.masks, mask.groups, "both"), ValueError, "computed with preset='both'"),
    (lambda mask: saliency.SaliencyMask({n: m for n, m in list(mask.masks.items())[1:]}, mask.groups, "vision"),
     ValueError, "does not fit this model"),
    (lambda mask: saliency.SaliencyMask({n: m[:1] for n, m in mask.masks.items()}, mask.groups, "vision"),
     ValueError, "a bool tensor of the weight's shape"),
    (lambda mask: saliency.SaliencyMask({n: m.float() for n, m in mask.masks.items()}, mask.groups, "vision"),
     ValueError, "a bool tensor of the weight's shape"),
])
def test_a_bad_mask_is_refused_before_any_weight_changes(vlm, bench, before, change, error, words):
    mask = saliency.compute_saliency(vlm, bench, RATIO, "vision")
    with pytest.raises(error, match=words):
        _run(vlm, bench, preset="vision", mask=change(mask))
    with pytest.raises(ValueError, match="masked=False"):
        _run(vlm, bench, preset="vision", masked=False, mask=mask)
    assert all(torch.equal(before[n], p) for n, p in vlm.model.named_parameters())
