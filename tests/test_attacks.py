"""mini_unlearn.attacks (chapter 09, first part): membership scores on constructed token statistics, MIA AUC
near 1 for a model that memorised the people and near 0.5 for one that never saw them, the truth ratio, and
the KS test on identical and shifted samples."""
import numpy as np
import pytest

import mini_unlearn as mu
from mini_unlearn.attacks import forget_quality, membership
from mini_unlearn.attacks.membership import TokenStats
from mini_unlearn.models import VLM


def stats(log_probs, mu_=None, sigma=None, text="Dunmere."):
    log_probs = np.asarray(log_probs, dtype=float)
    mu_ = np.zeros_like(log_probs) if mu_ is None else np.asarray(mu_, dtype=float)
    sigma = np.ones_like(log_probs) if sigma is None else np.asarray(sigma, dtype=float)
    return TokenStats(log_probs, mu_, sigma, text)


def test_each_score_on_a_constructed_answer():
    s = stats([-0.1, -2.0, -0.3, -4.0, -0.2], mu_=[-1.0] * 5, sigma=[2.0] * 5)
    scores = membership.membership_scores(s, k=0.4)
    assert scores["loss"] == pytest.approx(-6.6 / 5)
    assert scores["zlib"] == pytest.approx(-(6.6 / 5) / membership.zlib_bytes("Dunmere."))
    # Min-K% and Min-K%++ leave out the last token (-0.2): int(0.4 · 4) = 1, the lowest of the other 4
    assert scores["min_k"] == pytest.approx(-4.0)
    assert scores["min_k++"] == pytest.approx((-4.0 + 1) / 2)
    assert "reference" not in scores
    ref = membership.membership_scores(s, reference=stats([-1.0] * 5))["reference"]
    assert ref == pytest.approx(-6.6 / 5 + 1.0)


def test_min_k_keeps_at_least_one_token_and_refuses_a_bad_k():
    assert membership.lowest_mean(np.array([-3.0, -1.0]), 0.01) == -3.0
    for k in (0, 1.5, True):
        with pytest.raises(ValueError, match="k must be a fraction"):
            membership.require_k(k)


@pytest.fixture(scope="module")
def course():
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    forget, unseen = mu.attacks.forget_vs_holdout(bench, 0.05)       # holdout people: nobody trained on them
    return bench, forget, unseen


def test_the_two_sides_are_the_forget_and_the_holdout_people(course):
    bench, forget, unseen = course
    assert {e.profile_id for e in forget} == set(bench.forget_ids(0.05))
    assert {e.profile_id for e in unseen} == set(bench.split("holdout", 0.05).ids)
    assert len(forget) == len(unseen) and {e.task for e in forget + unseen} == {"pair"}
    with pytest.raises(ValueError, match="only 6 holdout people"):
        mu.attacks.forget_vs_holdout(bench, 0.2)


def test_mia_auc_is_near_one_on_a_model_that_memorised_them_and_near_half_on_one_that_never_saw_them(course):
    bench, forget, unseen = course
    names = membership.people_names(bench)
    vanilla = mu.models.vanilla(bench, preset="tiny", seed=0, progress=False)
    retain_only = mu.models.retain_only(bench, 0.05, preset="tiny", seed=0, progress=False)
    seen = mu.attacks.mia_auc(vanilla, forget, unseen, names=names).set_index(["attack", "modality"])["auc"]
    never = mu.attacks.mia_auc(retain_only, forget, unseen, names=names).set_index(["attack", "modality"])["auc"]
    for attack in ("loss", "zlib", "min_k", "min_k++"):
        assert seen[(attack, "all")] > 0.9, attack
    # the model that never saw either group is at chance in each modality, names left out or scored: the
    # holdout names are made of the forget people's name parts, so the tokenizer splits both alike
    confounded = mu.attacks.mia_auc(retain_only, forget, unseen).set_index(["attack", "modality"])["auc"]
    for aucs in (never, confounded):
        for modality in ("image+text", "text"):
            mean = np.mean([aucs[(attack, modality)] for attack in ("loss", "zlib", "min_k", "min_k++")])
            assert abs(mean - 0.5) <= 0.1, (modality, mean)
    with_ref = mu.attacks.mia_auc(vanilla, forget, unseen, reference=retain_only, names=names)
    with_ref = with_ref.set_index(["attack", "modality"])
    assert with_ref.loc[("reference", "all"), "auc"] > 0.8                 # measured 0.86
    assert set(with_ref.index.get_level_values("modality")) == {"image+text", "text", "all"}


def test_name_mask_leaves_out_exactly_the_name_tokens(course, make_vlm):
    bench, _, _ = course
    tokenizer = make_vlm(bench).tokenizer
    name = bench.profiles[0].name
    text = f"{name} was born in Dunmere. I met {name} there."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    keep = membership.name_mask(tokenizer, ids, name)
    kept = tokenizer.decode([i for i, k in zip(ids, keep) if k])
    dropped = tokenizer.decode([i for i, k in zip(ids, keep) if not k])
    assert kept.replace(" ", "") == " was born in Dunmere. I met  there.".replace(" ", "")
    assert dropped.replace(" ", "") == (name + name).replace(" ", "")
    assert membership.name_mask(tokenizer, ids, "Nobody Here").all()


def test_privleak_refuses_what_it_cannot_divide_by():
    with pytest.raises(ValueError, match="reference_auc must be below 1"):
        membership.privleak(0.9, 1.0)
    for bad in ((1.2, 0.5), (0.9, -0.1), (True, 0.5)):
        with pytest.raises(ValueError, match="must be an AUC in"):
            membership.privleak(*bad)


def test_bad_input_to_the_attacks_is_refused(course, make_vlm):
    bench, forget, unseen = course
    vanilla = mu.models.vanilla(bench, preset="tiny", seed=0, progress=False)
    with pytest.raises(ValueError, match="members is empty"):
        mu.attacks.mia_auc(vanilla, [], unseen)
    other = VLM.tiny("qwen2_vl", bench)
    with pytest.raises(ValueError, match="same architecture"):
        mu.attacks.mia_auc(vanilla, forget[:2], unseen[:2], reference=other)
    small = make_vlm(mu.bench.make_benchmark(n_profiles=4, seed=3))     # LLaVA, another tokenizer
    with pytest.raises(ValueError, match="tokenizer differs"):
        mu.attacks.mia_auc(vanilla, forget[:2], unseen[:2], reference=small)


def test_the_truth_ratio_is_small_where_the_model_knows_and_the_ks_test_reads_distributions(course):
    bench, _, _ = course
    vanilla = mu.models.vanilla(bench, preset="tiny", seed=0, progress=False)
    retain_only = mu.models.retain_only(bench, 0.05, preset="tiny", seed=0, progress=False)
    questions = bench.split("forget", 0.05).questions
    known, unknown = forget_quality.truth_ratios(vanilla, bench, questions), forget_quality.truth_ratios(
        retain_only, bench, questions)
    assert len(known) == sum(q.task == "mcq" for q in questions)
    assert np.median(known) < 0.5 and np.median(unknown) > 0.8     # vanilla 0.33, retain-only 1.25 (measured)
    rng = np.random.default_rng(0)
    sample = rng.normal(size=200)
    assert forget_quality.ks_test(sample, sample)[1] > 0.99
    assert forget_quality.ks_test(sample, sample + 1.0)[1] < 1e-6
    table = forget_quality.forget_quality(vanilla, retain_only, bench, 0.05)
    assert set(table["modality"]) == {"image+text", "text"} and (table["forget_quality"] < 0.05).all()
    assert (forget_quality.forget_quality(retain_only, retain_only, bench, 0.05)["forget_quality"] == 1.0).all()
    with pytest.raises(ValueError, match="no MCQ"):
        forget_quality.truth_ratios(vanilla, bench, [q for q in questions if q.task == "gen"])
    with pytest.raises(ValueError, match="two non-empty samples"):
        forget_quality.ks_test([], sample)


def test_option_scores_agree_with_mcq_by_likelihood(course):
    bench, _, _ = course
    vanilla = mu.models.vanilla(bench, preset="tiny", seed=0, progress=False)
    retain_only = mu.models.retain_only(bench, 0.05, preset="tiny", seed=0, progress=False)
    mcqs = [q for q in bench.split("forget", 0.05).questions if q.task == "mcq"]
    known = forget_quality.option_scores(vanilla, bench, mcqs)
    assert known["correct_wins"].all() and (known["correct"] > known["wrong_mean"]).all()
    unknown = forget_quality.option_scores(retain_only, bench, mcqs)
    report = mu.evaluate(retain_only, bench, 0.05, splits=("forget",), tasks=("mcq_likelihood",), progress=False)
    for modality, group in unknown.groupby("modality"):
        assert group["correct_wins"].mean() == pytest.approx(report.score("forget", modality, "mcq_likelihood"))
    assert list(unknown["question_id"]) == [q.id for q in mcqs]
    assert (unknown["best_wrong"] >= unknown["wrong_mean"]).all()
    text = [q for q in mcqs if q.modality == "text"][:4]
    everything = mu.evaluation.option_log_likelihoods(retain_only, text, "sum", [bench.option_sentences(q) for q in text])
    rows = unknown.set_index("question_id").loc[[q.id for q in text]]
    np.testing.assert_allclose(rows["correct"] + 3 * rows["wrong_mean"], everything.double().sum(dim=1).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.10, 0.15])
def test_a_model_that_never_saw_them_is_at_chance_at_the_larger_ratios_too(ratio):
    # each ratio's holdout names are made of that ratio's forget people's name parts (measured means 0.43–0.57)
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    forget, unseen = mu.attacks.forget_vs_holdout(bench, ratio)
    retain_only = mu.models.retain_only(bench, ratio, preset="tiny", seed=0, progress=False)
    aucs = mu.attacks.mia_auc(retain_only, forget, unseen, names=membership.people_names(bench))
    means = aucs[aucs["modality"] != "all"].groupby("modality")["auc"].mean()
    assert ((means - 0.5).abs() <= 0.1).all(), means.to_dict()
