"""CLEAR's own metrics (mini_unlearn.evaluation.clear): each against a hand computation, the name MCQ's seeded
shuffle, forget quality and model utility, exercise 12.3's checker, and evaluate_clear on a tiny CLEAR benchmark."""
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.bench.clear import make_clear
from mini_unlearn.course.checks.ch12_lasting import check_truth_ratio_score
from mini_unlearn.evaluation import clear
from mini_unlearn.evaluation.clear import (CLEAR_TASKS, Ask, ClearReport, answer_losses, answer_probability,
                                           clear_forget_quality, clear_truth_ratios, mcq_choice, model_utility,
                                           name_options, rouge_recall, truth_ratio_score, truth_ratio_scores)
from mini_unlearn.models import chat, target
from mini_unlearn.models.prompts import render
from mini_unlearn.results.records import SCORE_COLUMNS


# -- the pure metrics -------------------------------------------------------------------------------
def test_rouge_l_recall_is_the_share_of_the_reference_given_back_not_f1():
    reference = "the cat sat on the mat"
    assert rouge_recall(reference, "the cat sat")["rougeL"] == pytest.approx(3 / 6)    # F1 would be 2/3
    assert rouge_recall(reference, "the cat sat on the mat and then slept")["rougeL"] == pytest.approx(1.0)
    assert rouge_recall(reference, "")["rougeL"] == 0.0
    assert mu.evaluation.rouge(reference, "the cat sat")["rougeL"] == pytest.approx(2 / 3)


def test_probability_is_per_token_and_normalised_against_the_perturbed_answers():
    gt = [0.5, 2.0]
    assert answer_probability(gt) == pytest.approx([math.exp(-0.5), math.exp(-2.0)])
    expected = [math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.0) + math.exp(-2.0)),
                math.exp(-2.0) / (math.exp(-2.0) + math.exp(-0.1))]
    assert answer_probability(gt, [[1.0, 2.0], [0.1]]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one sequence per item"):
        answer_probability(gt, [[1.0]])


def test_truth_ratio_per_item_and_as_clears_calculate_metrics_computes_it():
    paraphrased, perturbed = [1.0, 0.5], [[2.0, 3.0], [0.5, 1.5, 1.0]]
    assert clear_truth_ratios(paraphrased, perturbed) == pytest.approx([math.exp(1.5), math.exp(0.5)])
    # calculate_metrics.py: one mean of every perturbed loss of the set, (2 + 3 + 0.5 + 1.5 + 1) / 5 = 1.6
    assert clear_truth_ratios(paraphrased, perturbed, "released") == pytest.approx([math.exp(0.6), math.exp(1.1)])
    with pytest.raises(ValueError, match="variant"):
        clear_truth_ratios(paraphrased, perturbed, "tofu")


def test_truth_ratio_is_reported_as_min_on_forget_sets_and_floored_elsewhere():
    assert truth_ratio_scores([0.5, 2.0, 1.0], forget=True) == pytest.approx([0.5, 0.5, 1.0])
    assert truth_ratio_scores([0.5, 2.0, 4.0], forget=False) == pytest.approx([0.0, 0.5, 0.75])
    assert truth_ratio_score([0.5, 2.0, 4.0], forget=False) == pytest.approx(1.25 / 3)
    with pytest.raises(TypeError, match="forget"):
        truth_ratio_score([1.0], forget="forget")


def test_forget_quality_is_one_for_one_distribution_and_small_for_a_shifted_one():
    sample = np.random.default_rng(0).lognormal(size=60)
    assert clear_forget_quality(sample, sample) == pytest.approx(1.0)
    assert clear_forget_quality(sample, sample * 3) < 1e-6
    assert mu.attacks.forget_quality.ks_test is clear.ks_test      # one KS test for TOFU and CLEAR


def test_model_utility_is_the_harmonic_mean_and_zero_when_one_score_is():
    assert model_utility([0.5, 0.25, 1.0]) == pytest.approx(3 / (2 + 4 + 1))
    assert model_utility([0.9, 0.0, 0.8]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        model_utility([])


def test_the_name_mcq_puts_the_true_name_at_a_seeded_position_spread_over_the_letters():
    perturbed = ("Ada Quell", "Bo Trent", "Cy Marsh", "Dee Hollow")
    options, letter = name_options("Vela Thornbury", perturbed, key="p1/caption", seed=0)
    assert name_options("Vela Thornbury", perturbed, key="p1/caption", seed=0) == (options, letter)
    assert len(options) == 5 and options[ord(letter) - ord("A")] == "Vela Thornbury"
    assert tuple(o for o in options if o != "Vela Thornbury") == perturbed        # the wrong names keep their order
    letters = Counter(name_options("Vela Thornbury", perturbed, key=f"p{i}", seed=0)[1] for i in range(200))
    assert set(letters) == set("ABCDE") and max(letters.values()) < 0.35 * 200     # never always "F" (MIP-Editor)
    reseeded = [name_options("Vela Thornbury", perturbed, key=f"p{i}", seed=1)[1] for i in range(20)]
    assert reseeded != [name_options("Vela Thornbury", perturbed, key=f"p{i}", seed=0)[1] for i in range(20)]
    with pytest.raises(ValueError, match="also among perturbed_names"):
        name_options("Bo Trent", perturbed, key="x")


def test_a_reports_model_utility_is_the_harmonic_mean_of_its_non_forget_clear_scores():
    def rows(split, modality, task, scores):
        return [{"split": split, "modality": modality, "task": task, "question_id": f"{split}/{i}", "profile_id": "p",
                 "fact": "qa", "answer": "a", "prediction": None, "correct": None, "score": s, "rouge1": 0.0,
                 "raw": float("nan")} for i, s in enumerate(scores)]
    details = pd.DataFrame(rows("forget", "text", "prob", [0.01, 0.03]) + rows("retain", "text", "prob", [0.4, 0.6])
                           + rows("retain", "text", "truth_ratio", [0.25]) + rows("real_world", "image+text",
                                                                                   "rougeL_recall", [1.0, 0.0])
                           + rows("retain", "image+text", "name_mcq", [0.0]))   # MMUnlearner's, not CLEAR's
    report = ClearReport(details, {"ratio": 0.05})
    assert report.model_utility == pytest.approx(3 / (1 / 0.5 + 1 / 0.25 + 1 / 0.5))
    assert report.score("all", "all", "model_utility") == pytest.approx(report.model_utility)
    assert report.score("retain", "text", "prob") == pytest.approx(0.5)


@pytest.mark.parametrize("text, n, letter", [("B", 5, "B"), (" (e) Vela", 5, "E"), ("F", 5, None), ("", 5, None),
                                             ("d.", 4, "D"), ("The answer", 5, None)])
def test_the_mcq_letter_is_read_as_mmunlearner_reads_it(text, n, letter):
    assert mcq_choice(text, n) == letter


def test_the_truth_ratio_checker_passes_the_package_and_names_each_slip(capsys):
    check_truth_ratio_score(truth_ratio_score)
    assert "✓" in capsys.readouterr().out
    for slip in check_truth_ratio_score.slips:
        with pytest.raises(AssertionError) as failed:
            check_truth_ratio_score(slip.fn)
        assert slip.says in str(failed.value)

    def stub(ratios, forget):
        raise NotImplementedError
    with pytest.raises(AssertionError, match="not implemented"):
        check_truth_ratio_score(stub)


# -- on a model: a tiny CLEAR benchmark and an untrained tiny model ---------------------------------------
@pytest.fixture(scope="module")
def clear_bench():
    return make_clear(n_profiles=6, seed=0, n_images=2, n_perturbed=2, n_real_faces=2, n_real_world=2)


@pytest.fixture(scope="module")
def clear_vlm(clear_bench, make_vlm):
    return make_vlm(clear_bench)


@pytest.fixture(scope="module")
def report(clear_bench, clear_vlm, make_vlm):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return mu.evaluate(clear_vlm, clear_bench, 0.05, reference=make_vlm(clear_bench, seed=1),
                           max_new_tokens=6, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_evaluate_on_a_clear_benchmark_reports_every_clear_metric_in_range(report):
    assert isinstance(report, ClearReport)
    frame = report.to_frame()
    assert list(frame.columns) == list(SCORE_COLUMNS)
    assert frame["score"].between(0, 1).all() and frame["n"].gt(0).all()
    assert set(report.details["task"].astype(str)) == set(CLEAR_TASKS)
    cells = {(str(s), str(m)) for s, m in frame[["split", "modality"]].itertuples(index=False)}
    assert cells == {("forget", "image+text"), ("forget", "text"), ("retain", "image+text"), ("retain", "text"),
                     ("real_faces", "image+text"), ("real_world", "image+text"), ("all", "all")}
    for modality in ("image+text", "text"):
        assert 0 <= report.score("forget", modality, "forget_quality") <= 1
    assert report.score("all", "all", "model_utility") == pytest.approx(report.model_utility)
    utility = frame[(frame["split"] != "forget") & frame["task"].isin(clear.UTILITY_TASKS)
                    & (frame["metric"] != "rouge1_recall")]
    assert report.model_utility == pytest.approx(model_utility(utility["score"]))
    assert "forget quality" in repr(report) and "model utility" in repr(report)


def test_the_report_is_clears_formula_on_the_models_own_losses(report, clear_bench, clear_vlm):
    details = report.details

    def losses(item, answers):
        total, count = answer_losses(clear_vlm, [Ask(chat(item.question, item.image is not None), a, item.image)
                                                 for a in answers])
        return -total / count

    def row(split, task, i):
        return details[(details["split"] == split) & (details["task"] == task)
                       & (details["question_id"] == f"{split}/{i}")].iloc[0]

    items = clear_bench.clear_items("forget", 0.05)
    i = next(k for k, item in enumerate(items) if item.kind == "qa")
    item = items[i]
    gt, para, *wrong = losses(item, [item.answer, item.paraphrased, *item.perturbed])
    assert row("forget", "prob", i)["score"] == pytest.approx(math.exp(-gt), rel=1e-6)     # not normalised
    ratio = math.exp(np.mean(wrong) - para)
    assert row("forget", "truth_ratio", i)["score"] == pytest.approx(min(ratio, 1 / ratio), rel=1e-6)
    generated = row("forget", "rougeL_recall", i)
    assert generated["score"] == pytest.approx(rouge_recall(item.answer, generated["prediction"])["rougeL"])

    face = clear_bench.clear_items("real_faces", 0.05)[0]
    gt, *wrong = losses(face, [face.answer, *face.perturbed])
    normalised = math.exp(-gt) / (math.exp(-gt) + sum(math.exp(-w) for w in wrong))
    assert row("real_faces", "prob", 0)["score"] == pytest.approx(normalised, rel=1e-6)
    ratio = math.exp(np.mean(wrong) - gt)     # the real sets' "paraphrase" is the answer itself
    assert row("real_faces", "truth_ratio", 0)["score"] == pytest.approx(max(0.0, 1 - 1 / ratio), rel=1e-6, abs=1e-9)


def test_the_name_mcqs_right_letter_moves_from_item_to_item(report):
    mcq = report.details[report.details["task"] == "name_mcq"]
    assert len(mcq) >= 10 and mcq["answer"].nunique() >= 3
    assert (mcq["answer"] == report.details[report.details["task"] == "name_mcq_likelihood"]["answer"].values).all()


def test_answer_losses_do_not_depend_on_the_padding_of_a_batch(clear_bench, clear_vlm):
    item = clear_bench.clear_items("retain", 0.05, kind="caption")[0]
    prompt = chat(item.question, with_image=True)
    asks = [Ask(prompt, item.answer, item.image), Ask(prompt, item.name, item.image)]
    together, count = answer_losses(clear_vlm, asks)
    for ask, total, n in zip(asks, together, count):
        alone, n_alone = answer_losses(clear_vlm, [ask])
        assert n == n_alone[0] and total == pytest.approx(alone[0], rel=1e-4)
        rendered, answer = render(clear_vlm.processor, ask.prompt, target(ask.answer), closed=False)
        ids = clear_vlm.tokenizer([rendered + answer, rendered])["input_ids"]
        assert n == len(ids[0]) - len(ids[1])


def test_forget_quality_from_a_reference_report_is_the_same_as_from_its_model(report, clear_bench, make_vlm):
    reference = mu.evaluate(make_vlm(clear_bench, seed=1), clear_bench, 0.05, splits=("forget",),
                            tasks=("truth_ratio",), progress=False)
    frame = clear.forget_quality_frame(report, reference)
    assert frame["forget_quality"].tolist() == pytest.approx(report.forget_quality["forget_quality"].tolist())
    assert clear.forget_quality_frame(report, report)["forget_quality"].tolist() == pytest.approx([1.0, 1.0])


class Exploding:
    """Any use of it fails: the evaluation reached the model before it checked its arguments."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used ({name}) before the arguments were checked")

    def __call__(self, *args, **kwargs):
        raise AssertionError("the model was called before the arguments were checked")


class Untouchable:
    """A VLM stand-in whose model and processor explode when used: bad input must be refused before."""
    model = processor = tokenizer = Exploding()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"splits": ("forget", "test")}, ValueError, "unknown split names"),
    ({"tasks": ("gen",)}, ValueError, "unknown task names"),
    ({"variant": "tofu"}, ValueError, "variant"),
    ({"reference": "retain-only"}, TypeError, "reference must be"),
    ({"reference": Untouchable(), "splits": ("retain",)}, ValueError, "needs the 'forget' split"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
    ({"ratio": 1.5}, ValueError, "ratio"),
])
def test_bad_input_is_refused_before_the_model_runs(clear_bench, kwargs, error, match):
    kwargs = {"ratio": 0.05, **kwargs}
    with pytest.raises(error, match=match):
        clear.evaluate_clear(Untouchable(), clear_bench, progress=False, **kwargs)


def test_clear_options_on_a_benchmark_that_is_not_clear_are_refused():
    with pytest.raises(TypeError, match="only CLEAR's evaluation takes"):
        mu.evaluate(Untouchable(), mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1), 0.25,
                    variant="released")


def test_a_clear_benchmark_asked_for_mllmu_tasks_is_evaluated_as_any_benchmark(clear_bench, clear_vlm):
    report = mu.evaluate(clear_vlm, clear_bench, 0.05, splits=("forget",), tasks=("gen",), max_new_tokens=4,
                         progress=False)
    assert type(report) is mu.evaluation.Report and set(report.details["task"].astype(str)) == {"gen"}
