"""mini_unlearn.methods: the gradient family's losses on hand-made tensors, the registry, and short real runs."""
import math

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods import losses
from mini_unlearn.text import COLUMN

# -- losses on hand-made tensors -------------------------------------------------------------------


def test_sequence_log_probs_sums_scored_tokens_only():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = torch.tensor([[0, 1, -100]])
    assert losses.sequence_log_probs(logits, labels).item() == pytest.approx(math.log(0.5) + math.log(0.8))


def test_token_cross_entropy_is_the_mean_over_scored_tokens():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.2, 0.8], [0.5, 0.5]]]))
    labels = torch.tensor([[0, 1], [1, -100]])
    expected = -(math.log(0.5) + math.log(0.1) + math.log(0.8)) / 3
    assert losses.token_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_ga_loss_has_the_opposite_sign_and_gradient_of_the_ce():
    ce = torch.tensor(2.5, requires_grad=True)
    loss = losses.ga_loss(ce)
    loss.backward()
    assert loss.item() == -2.5 and ce.grad.item() == -1.0


@pytest.mark.parametrize("beta", [0.1, 0.4, 2.0])
def test_npo_equals_2_log2_over_beta_when_model_equals_reference(beta):
    log_p = torch.tensor([-3.0, -7.5, -1.25])
    assert losses.npo_loss(log_p, log_p.clone(), beta).item() == pytest.approx(2 * math.log(2) / beta, rel=1e-6)


def test_npo_tends_to_ga_on_log_likelihood_as_beta_goes_to_zero():
    # in float64: the constant (2/β)·log 2 is ~1.4e4, and what is checked is the 0.25 beside it
    log_p, ref = torch.tensor([-2.0, -5.0], dtype=torch.float64), torch.tensor([-3.0, -4.5], dtype=torch.float64)
    beta = 1e-4
    beyond_the_constant = losses.npo_loss(log_p, ref, beta).item() - 2 * math.log(2) / beta
    assert beyond_the_constant == pytest.approx((log_p - ref).mean().item(), rel=1e-3)     # +0.25, not -0.25


def test_npo_vanishes_once_the_model_finds_the_data_far_less_likely_than_the_reference():
    ref = torch.tensor([-2.0])
    far, near = losses.npo_loss(torch.tensor([-200.0]), ref), losses.npo_loss(torch.tensor([-2.5]), ref)
    assert far.item() < 1e-6 < near.item()
    # and its gradient (the weight on the sequence) fades too, unlike GA's constant 1
    log_p = torch.tensor([-200.0], requires_grad=True)
    losses.npo_loss(log_p, ref).backward()
    assert 0 < log_p.grad.item() < 1e-6


def test_npo_released_variant_uses_batch_mean_ce():
    ce, ref_ce = torch.tensor(1.5), torch.tensor(1.0)
    expected = -(2 / 0.4) * torch.nn.functional.logsigmoid(torch.tensor(0.4 * 0.5)).item()
    assert losses.npo_loss_released(ce, ref_ce, 0.4).item() == pytest.approx(expected, rel=1e-6)


def test_npo_rejects_a_non_positive_beta():
    with pytest.raises(ValueError, match="beta"):
        losses.npo_loss(torch.zeros(1), torch.zeros(1), 0.0)


def test_kl_to_reference_is_zero_for_equal_and_positive_for_different_logits():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 3, 5), torch.tensor([[1, 2, -100], [0, -100, -100]])
    assert losses.kl_to_reference(logits, logits.clone(), labels).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 3, 5)
    p, q = torch.softmax(other, -1), torch.softmax(logits, -1)   # KL(ref || model), averaged over 3 scored positions
    expected = sum((p[b, t] * (p[b, t] / q[b, t]).log()).sum() for b, t in [(0, 0), (0, 1), (1, 0)]) / 3
    assert losses.kl_to_reference(logits, other, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_kl_released_reduction_sums_the_positions_and_divides_by_the_batch():
    torch.manual_seed(0)
    logits, other, labels = torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.tensor([[1, 2, -100], [0, -100, -100]])
    token = losses.kl_to_reference(logits, other, labels)
    # three scored positions in a batch of two: batchmean = sum / 2, the token mean = sum / 3
    assert losses.kl_to_reference(logits, other, labels, reduction="released").item() == pytest.approx(
        token.item() * 3 / 2, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        losses.kl_to_reference(logits, other, labels, reduction="mean")


# -- the registry ----------------------------------------------------------------------------------

def test_available_lists_the_gradient_family():
    assert mu.methods.available()[:4] == ["ga", "ga_diff", "kl_min", "npo"]
    assert set(mu.methods.describe().index) >= {"ga", "ga_diff", "kl_min", "npo"}


def test_configs_carry_the_papers_npo_defaults():
    config = mu.methods.make_config("npo")
    assert config.beta == 0.4 and config.reference == "retain_only" and config.variant == "paper"


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=8, seed=0, n_utility=1)


@pytest.fixture(scope="module")
def vlm(bench, make_vlm):
    return make_vlm(bench, card={"preset": "tiny", "seed": 0, "benchmark": "not-this-one"})


@pytest.mark.parametrize("method, options, error, words", [
    ("gradient_descent", {}, ValueError, "unknown method 'gradient_descent'"),
    ("ga", {"learning_rate": 1e-4}, TypeError, "no hyperparameter 'learning_rate'"),
    ("ga", {"lr": -1e-4}, ValueError, "lr"),
    ("ga", {"steps": 0}, ValueError, "steps"),
    ("ga_diff", {"forget_on": "audio"}, ValueError, "forget_on"),
    ("kl_min", {"train": "decoder"}, ValueError, "train"),
    ("npo", {"beta": 0}, ValueError, "beta"),
    ("npo", {"reference": "gold"}, ValueError, "reference"),
    ("npo", {"variant": "tofu"}, ValueError, "variant"),
    ("ga", {"seed": 1.5}, TypeError, "seed must be an integer"),
    ("mmunlearner", {"masked": "yes"}, TypeError, "masked must be True or False"),
])
def test_bad_input_is_refused_before_any_weight_changes(vlm, bench, method, options, error, words):
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    with pytest.raises(error, match=words):
        mu.unlearn(vlm, bench, method=method, ratio=0.25, progress=False, **options)
    assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items())


def test_bad_ratio_and_npo_without_a_known_recipe_are_refused(vlm, bench):
    with pytest.raises(ValueError, match="ratio"):
        mu.unlearn(vlm, bench, method="ga", ratio=1.5, progress=False)
    with pytest.raises(ValueError, match="reference='initial'"):
        mu.unlearn(vlm, bench, method="npo", ratio=0.25, progress=False)   # card names another benchmark


def test_unlearning_sets_pick_the_forget_modality_and_never_overlap(bench):
    for forget_on, modalities in (("image+text", {"image+text"}), ("text", {"text"}),
                                  ("both", {"image+text", "text"})):
        forget, retain = mu.methods.unlearning_sets(bench, 0.25, forget_on)
        assert {e.modality for e in forget} == modalities
        assert {e.profile_id for e in forget} == set(bench.forget_ids(0.25))
        assert not {e.profile_id for e in forget} & {e.profile_id for e in retain}
        assert {e.task for e in forget + retain} == {"pair"}


def test_sequence_labels_score_every_non_pad_token_but_the_first(vlm, bench):
    from mini_unlearn.models.train_data import IGNORE_INDEX
    forget, _ = mu.methods.unlearning_sets(bench, 0.25, "both")
    batch = next(mu.methods.data.example_batches(vlm.processor, forget, 4, __import__("random").Random(0)))
    assert mu.methods.data.scored_on(batch, "answer") is batch
    labels = mu.methods.data.scored_on(batch, "sequence")["labels"]
    real = batch["attention_mask"].bool()
    for row in range(len(labels)):
        scored = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        attended = real[row].nonzero().flatten().tolist()
        assert scored == attended[1:]                        # every real token but the first (nothing predicts it)
        assert torch.equal(labels[row, scored], batch["input_ids"][row, scored])
        answer = (batch["labels"][row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert set(answer) < set(scored)                     # the answer is scored either way, the prompt only here
    image_token = vlm.model.config.image_token_id
    assert (labels == image_token).any() and not (batch["labels"] == image_token).any()
    with pytest.raises(ValueError, match="loss_on"):
        mu.methods.make_config("ga", loss_on="prompt")


def test_loss_on_sequence_reaches_the_logged_loss(vlm, bench, loop_batches):
    from mini_unlearn.methods.data import sequence_labels
    from mini_unlearn.models.train import answer_loss
    [(first, _)] = loop_batches(vlm, bench)
    with torch.no_grad():
        expected = {"answer": answer_loss(vlm.model, first).item(),
                    "sequence": answer_loss(vlm.model, sequence_labels(first)).item()}
    assert abs(expected["answer"] - expected["sequence"]) > 0.01
    for loss_on, value in expected.items():
        logged = mu.unlearn(vlm, bench, "ga", ratio=0.25, steps=1, batch_size=4, loss_on=loss_on, progress=False)
        assert logged.log.losses[0]["forget_ce"] == pytest.approx(value, rel=1e-4), loss_on


def test_kl_min_reduction_reaches_the_logged_kl(vlm, bench, loop_batches):
    from mini_unlearn.models.train_data import IGNORE_INDEX
    runs = {reduction: mu.unlearn(vlm, bench, "kl_min", ratio=0.25, steps=2, batch_size=4, lr=1e-3,
                                  kl_reduction=reduction, progress=False).log.losses
            for reduction in ("token", "released")}
    # at step 1 the model is the reference (KL 0 and no KL gradient), so both runs take the same first
    # step and meet the same second retain batch: their KLs differ by #scored tokens / batch size
    second = loop_batches(vlm, bench, steps=2)[1][1]
    scored = int((second["labels"] != IGNORE_INDEX).sum())
    assert runs["token"][0]["kl"] == runs["released"][0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert runs["token"][1]["kl"] > 0
    assert runs["released"][1]["kl"] == pytest.approx(runs["token"][1]["kl"] * scored / 4, rel=1e-3)


# -- short real runs ---------------------------------------------------------------------------------

def _run(vlm, bench, method, **options):
    options = {"steps": 2, "batch_size": 4, "lr": 1e-3, **options}
    return mu.unlearn(vlm, bench, method=method, ratio=0.25, progress=False, **options)


@pytest.mark.parametrize("method, extra", [("ga", {}), ("ga_diff", {}), ("kl_min", {}),
                                           ("npo", {"reference": "initial"}),
                                           ("npo", {"reference": "initial", "variant": "released",
                                                    "retain_weight": 1.0})])
def test_each_baseline_returns_a_new_model_and_leaves_the_input_untouched(vlm, bench, method, extra):
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    result = _run(vlm, bench, method, **extra)
    assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items()), "the input model changed"
    assert result.vlm.model is not vlm.model
    assert len(result.to_frame()) == 2 and "loss" in result.to_frame()
    assert result.touched["changed"].sum() > 0
    assert result.vlm.card["unlearned"]["method"] == method
    assert method in repr(result)


def test_ga_ascends_the_forget_loss(vlm, bench):
    result = _run(vlm, bench, "ga", steps=6, batch_size=8, lr=3e-3)
    frame = result.to_frame()
    assert frame["forget_ce"].iloc[-1] > frame["forget_ce"].iloc[0]


def test_ga_diff_loss_is_ascent_on_forget_plus_weighted_descent_on_retain(vlm, bench, loop_batches):
    from mini_unlearn.models.train import answer_loss
    [(forget_batch, retain_batch)] = loop_batches(vlm, bench)
    with torch.no_grad():
        forget_ce, retain_ce = answer_loss(vlm.model, forget_batch).item(), answer_loss(vlm.model, retain_batch).item()
    row = _run(vlm, bench, "ga_diff", steps=1, retain_weight=0.5).log.losses[0]
    assert row["forget_ce"] == pytest.approx(forget_ce, rel=1e-4)
    assert row["retain_ce"] == pytest.approx(retain_ce, rel=1e-4)        # the retain people's batch, not the forget one
    assert row["loss"] == pytest.approx(-forget_ce + 0.5 * retain_ce, rel=1e-4)


def test_kl_min_loss_holds_all_three_terms(vlm, bench, loop_batches):
    from mini_unlearn.models.train import answer_loss
    [(_, retain_batch)] = loop_batches(vlm, bench)
    with torch.no_grad():
        retain_ce = answer_loss(vlm.model, retain_batch).item()
    rows = _run(vlm, bench, "kl_min", steps=3, kl_weight=3.0).log.losses
    assert rows[0]["retain_ce"] == pytest.approx(retain_ce, rel=1e-4) and rows[0]["kl"] == pytest.approx(0, abs=1e-6)
    for row in rows[1:]:               # once the model has moved, the KL to the input model is on, weighted by 3
        assert row["kl"] > 1e-4
        assert row["loss"] == pytest.approx(-row["forget_ce"] + row["retain_ce"] + 3.0 * row["kl"], rel=1e-4)


def test_npo_compares_with_its_reference_not_with_the_model_itself(vlm, bench, make_vlm, loop_batches):
    from mini_unlearn.models.train import answer_logits, sequence_log_probs
    [(forget_batch, _)] = loop_batches(vlm, bench)
    reference = make_vlm(bench, seed=1)                       # another model: the log-ratio is not zero
    with torch.no_grad():
        logits, labels = answer_logits(vlm.model, forget_batch)
        ref_logits, _ = answer_logits(reference.model, forget_batch)
        expected = losses.npo_loss(sequence_log_probs(logits, labels), sequence_log_probs(ref_logits, labels), 0.4)
    rows = _run(vlm, bench, "npo", steps=1, reference=reference).log.losses
    assert rows[0]["npo"] == pytest.approx(expected.item(), rel=1e-4)
    assert abs(expected.item() - 2 * math.log(2) / 0.4) > 1e-2
    # reference="initial": equal at the first step, and no longer once the model has moved
    rows = _run(vlm, bench, "npo", steps=3, reference="initial").log.losses
    assert rows[0]["npo"] == pytest.approx(2 * math.log(2) / 0.4, rel=1e-5)
    assert abs(rows[-1]["npo"] - 2 * math.log(2) / 0.4) > 1e-4


def test_text_only_forgetting_never_touches_the_vision_side(vlm, bench):
    parts = _run(vlm, bench, "ga", forget_on="text").touched_by_part()
    assert parts.loc["vision", "entries_changed"] == 0 and parts.loc["projector", "entries_changed"] == 0
    assert parts.loc["language", "entries_changed"] > 0


def test_the_printed_result_shows_shares_that_a_few_entries_do_not_move():
    from mini_unlearn.methods.base import share_text
    # one entry more or less (another CPU's kernels) prints the same; nothing and a few stay apart
    assert share_text(150399, 150528) == share_text(150400, 150528) == "99.9%"
    assert share_text(131071, 131072) == share_text(131072, 131072) == "100.0%"
    assert share_text(0, 131072) == "0" and share_text(3, 131072) == "<0.1%" and share_text(968, 24832) == "3.9%"


def test_the_result_prints_the_share_changed_per_part(vlm, bench):
    result = _run(vlm, bench, "ga", forget_on="text")
    parts = result.touched_by_part()
    shown = repr(result).splitlines()
    assert any("share_changed" in line for line in shown) and "entries_changed" not in repr(result)
    assert all(len(line) <= COLUMN for line in shown)     # the settings line wraps at the book's column
    vision = next(line for line in shown if line.startswith("vision"))
    language = next(line for line in shown if line.startswith("language"))
    assert vision.split()[-1] == "0"
    assert language.split()[-1] == f"{parts.loc['language', 'entries_changed'] / parts.loc['language', 'entries']:.1%}"


def test_train_language_only_freezes_the_vision_side_even_with_images(vlm, bench):
    parts = _run(vlm, bench, "ga_diff", train="language").touched_by_part()
    assert parts.loc["vision", "entries_changed"] == 0 and parts.loc["projector", "entries_changed"] == 0
    assert parts.loc["language", "entries_changed"] > 0
    assert all(p.requires_grad for p in vlm.model.parameters())
    parts = _run(vlm, bench, "ga", train="vision").touched_by_part()
    assert parts.loc["language", "entries_changed"] == 0 and parts.loc["lm_head", "entries_changed"] == 0
    assert parts.loc["vision", "entries_changed"] > 0


def test_same_seed_same_result(vlm, bench):
    first, second = _run(vlm, bench, "ga_diff", seed=3), _run(vlm, bench, "ga_diff", seed=3)
    assert first.log.losses == second.log.losses
    assert all(torch.equal(a, b) for a, b in zip(first.vlm.model.parameters(), second.vlm.model.parameters()))


def test_the_monitor_is_probed_before_between_and_after(vlm, bench):
    monitor = mu.methods.split_monitor(vlm, bench, 0.25, retain_people=2)
    result = _run(vlm, bench, "ga", steps=4, monitor=monitor, probe_every=2)
    frame = result.log.probe_frame()
    assert list(frame.index) == [0, 2, 4]
    assert set(frame.columns) == {"forget/image+text", "forget/text", "retain/image+text", "retain/text"}
