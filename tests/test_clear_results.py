"""Every method on CLEAR, recorded (mini_unlearn.results.clear): the runner, its board, the committed run."""
import json

import pandas as pd
import pytest

import mini_unlearn as mu
from mini_unlearn.bench import make_clear
from mini_unlearn.results import clear as clear_results

@pytest.fixture(scope="module")
def tiny_clear():
    return make_clear(n_profiles=10, seed=0, n_images=1, n_perturbed=2, n_real_faces=1, n_real_world=1)


def test_a_run_writes_every_method_and_the_anchors_at_every_ratio(tiny_clear, make_vlm, tmp_path):
    vlm, gold = make_vlm(tiny_clear), make_vlm(tiny_clear, seed=1)
    scores = clear_results.clear_results(vlm, tiny_clear, tmp_path, references={0.1: gold}, methods=["ga"],
                                         tuned={"ga": {"steps": 1}}, ratios=(0.1,), progress=False)
    assert set(scores["method"]) == {"ga", *clear_results.ANCHORS} and set(scores["ratio"]) == {0.1}
    written = pd.read_csv(tmp_path / "scores.csv")
    assert tuple(written.columns) == clear_results.SCORE_COLUMNS and len(written) == len(scores)
    costs = pd.read_csv(tmp_path / "costs.csv")
    assert tuple(costs.columns) == clear_results.COST_COLUMNS and list(costs["steps"]) == [1]
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["methods"]["ga"]["overrides"] == {"steps": 1} and settings["ratios"] == [0.1]
    table = clear_results.board(scores, 0.1)
    assert list(table.index) == ["vanilla", "retain_only", "ga"]
    assert set(table.columns) <= set(clear_results.BOARD.values()) and "FQ i+t" in table.columns
    fq = scores[(scores["method"] == "retain_only") & (scores["task"] == "forget_quality")]
    assert (fq["score"] == 1.0).all()              # the reference against itself: the same distribution
    with pytest.raises(ValueError, match="ratio=0.05: no scores"):
        clear_results.board(scores, 0.05)


@pytest.mark.parametrize("change, message", [
    ({"references": {}}, r"references: no retain-only model for ratios \[0.1\]"),
    ({"references": "vanilla"}, "references: a retain-only model never saw the forget people"),
    ({"ratios": ()}, "ratios is empty"),
    ({"ratios": (1.5,)}, "ratio"),
    ({"methods": ["nope"]}, "nope"),
])
def test_bad_arguments_are_refused_before_anything_runs(tiny_clear, make_vlm, tmp_path, change, message,
                                                        count_training):
    vlm = make_vlm(tiny_clear)
    arguments = {"references": {0.1: make_vlm(tiny_clear, seed=1)}, "methods": ["ga"], "ratios": (0.1,)}
    arguments.update(change)
    if arguments["references"] == "vanilla":
        arguments["references"] = {0.1: vlm}
    with pytest.raises(ValueError, match=message):
        clear_results.clear_results(vlm, tiny_clear, tmp_path / "out", progress=False, **arguments)
    assert not (tmp_path / "out").exists() and count_training == []


def test_the_committed_board_is_every_method_tuned_on_the_course_clear():
    from mini_unlearn.models.cache import benchmark_fingerprint
    from mini_unlearn.release import COURSE_BENCHMARK, course_clear
    assert clear_results.COURSE_BENCHMARK == COURSE_BENCHMARK
    scores, costs, settings = clear_results.read()
    assert settings["benchmark"]["fingerprint"] == benchmark_fingerprint(course_clear())
    assert settings["ratios"] == list(clear_results.RATIOS)
    tuned = mu.results.read_tuned(mu.results.course_results("tuning"))
    assert sorted(settings["methods"]) == sorted(mu.methods.available())
    assert {m: about["overrides"] for m, about in settings["methods"].items()} == tuned
    assert set(scores["method"]) == set(mu.methods.available()) | set(clear_results.ANCHORS)
    assert set(costs["method"]) == set(mu.methods.available())
    for ratio in clear_results.RATIOS:
        table = clear_results.board(scores, ratio)
        assert list(table.columns) == list(clear_results.BOARD.values()) and table.notna().all().all()


def test_a_report_against_a_reference_gets_forget_quality_and_is_checked(tiny_clear, make_vlm):
    ask = {"splits": ("forget",), "tasks": ("truth_ratio",), "progress": False}
    report = mu.evaluate(make_vlm(tiny_clear), tiny_clear, 0.1, **ask)
    assert report.forget_quality is None
    itself = report.against(report)
    assert (itself.forget_quality["forget_quality"] == 1.0).all() and report.forget_quality is None
    other = mu.evaluate(make_vlm(tiny_clear, seed=1), tiny_clear, 0.1, **ask)
    assert report.against(other).forget_quality["forget_quality"].tolist() == \
        mu.evaluation.clear.forget_quality_frame(report, other)["forget_quality"].tolist()
    with pytest.raises(TypeError, match="reference must be a ClearReport"):
        report.against(other.details)
    with pytest.raises(ValueError, match="ratio=0.2, not ratio=0.1"):
        report.against(mu.evaluate(make_vlm(tiny_clear), tiny_clear, 0.2, **ask))


def test_the_committed_board_reproduces():
    """MANU (training-free, deterministic) on the course CLEAR at 5 %, its forget rows computed again."""
    from mini_unlearn.release import course_clear
    from mini_unlearn.results.running import seeded
    clear = course_clear()
    scores, _, settings = clear_results.read()
    vlm = mu.models.vanilla(clear, device="cpu")
    gold = mu.models.retain_only(clear, 0.05, device="cpu")
    mu.seed_everything(clear_results.SEED)
    overrides = settings["methods"]["manu"]["overrides"]
    result = mu.unlearn(vlm, clear, "manu", 0.05, progress=False,
                        **seeded("manu", overrides, clear_results.SEED))
    tasks = ("rougeL_recall", "truth_ratio", "name_mcq_likelihood")
    report = mu.evaluate(result.vlm, clear, 0.05, splits=("forget",), tasks=tasks, reference=gold, progress=False)
    mine = clear_results.report_rows(report, "manu", "tuned", 0.05)
    committed = scores[(scores["method"] == "manu") & (scores["ratio"] == 0.05)]
    merged = mine.merge(committed, on=["split", "modality", "task", "metric"], suffixes=("", "_committed"))
    assert len(merged) == len(mine) == 9     # 2 modalities × (ROUGE-L, ROUGE-1, truth ratio, FQ); the name MCQ: i+t
    assert (merged["score"].round(6) == merged["score_committed"]).all(), merged


def test_the_committed_mmunlearner_forms_hold_the_committed_tuned_row():
    """benchmarks/clear_mmunlearner.py's file: the four forms beside the retain-only model, its tuned form the
    committed board's MMUnlearner row (the same run, seeded alike)."""
    forms = pd.read_csv(mu.results.course_results(clear_results.FOLDER) / "mmunlearner_forms.csv")
    assert tuple(forms.columns) == clear_results.SCORE_COLUMNS
    table = clear_results.board(forms, 0.05)
    assert list(table.index) == ["retain_only", "tuned", "default", "tuned, no retain", "tuned, unmasked"]
    scores, _, _ = clear_results.read()
    committed = clear_results.board(scores, 0.05)
    assert table.loc["tuned"].round(6).equals(committed.loc["mmunlearner"].round(6))
    assert table.loc["retain_only"].round(6).equals(committed.loc["retain_only"].round(6))
