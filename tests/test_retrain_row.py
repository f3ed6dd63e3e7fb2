"""The retrain row (chapter 13): the retain-only recipe at another training seed, scored like an unlearned model,
and the target read against it."""
import pytest

import mini_unlearn as mu
from mini_unlearn.release import RETRAIN_SEEDS, course_model_keys, retrain_name
from mini_unlearn.results import REFERENCE, RETRAIN, ResultsFolder, sweep
from mini_unlearn.results.records import RunRecord

ME = {"model": {"name": "m"}, "benchmark": {"name": "b"}}


def rows(forget, retain=1.0):
    return [{"split": split, "modality": modality, "task": "cloze", "metric": "accuracy", "score": value, "n": 4}
            for split, value in (("forget", forget), ("retain", retain), ("utility", 1.0))
            for modality in ("image+text", "text")]


def audit(membership, probe):
    return [{"attack": "membership", "metric": "AUC loss", "modality": modality, "value": membership,
             "direction": "down"} for modality in ("image+text", "text")] + [
            {"attack": "linear probe", "metric": "what: the forget MCQ's letter", "modality": modality, "value": probe,
             "direction": "down"} for modality in ("image+text", "text")] + [
            {"attack": "recall probes", "metric": "as trained: cloze", "modality": modality, "value": membership,
             "direction": "down"} for modality in ("image+text", "text")]


def record(method, setting, forget, *, seed=0, retain=1.0, attacks=None) -> RunRecord:
    return RunRecord(method, setting, 0.05, seed, {}, {}, rows(forget, retain), {"total": 1.0}, {"hardware": "cpu"},
                     ME, audit=attacks or [])


@pytest.fixture
def board(tmp_path):
    folder = ResultsFolder(tmp_path / "r", ME)
    folder.write(record("vanilla", REFERENCE, 1.0, attacks=audit(1.0, 1.0)))
    folder.write(record("retain_only", REFERENCE, 0.0, attacks=audit(0.4, 0.25)))
    folder.write(record(RETRAIN, REFERENCE, 0.2, seed=1, attacks=audit(0.5, 0.3)))       # closes 0.8, 0.1 from never
    folder.write(record("ga", "default", 0.1, attacks=audit(0.45, 0.2)))      # closer than the retrain everywhere
    folder.write(record("npo", "default", 0.1, retain=0.9, attacks=audit(0.45, 0.2)))   # loses 10 points (mean of 5)
    folder.write(record("rmu", "default", 0.5, attacks=audit(0.0, 0.9)))      # half closed, far on every attack
    return mu.results.load(tmp_path / "r")


def test_the_retrain_row_is_scored_like_an_unlearned_model_and_never_wins(board):
    cells = mu.results.cell_table(board).set_index("method")
    assert cells.loc[RETRAIN, "closure"] == pytest.approx(0.8) and cells.loc[RETRAIN, "setting"] == REFERENCE
    assert cells.loc[RETRAIN, "seed"] == 1 and cells.loc[RETRAIN, "own_goal"] == "forget_both"
    assert RETRAIN not in set(mu.results.best(board)["method"])


def test_the_target_is_read_against_the_retrain_row(board):
    target = mu.results.against_retraining(board).set_index("method")
    assert target.loc["ga", "retrain closure"] == pytest.approx(0.8) and target.loc["ga", "closure"] == pytest.approx(0.9)
    assert target.loc["ga", "scores"] and target.loc["ga", "attacks"] == "6/6" and target.loc["ga", "meets"]
    assert not target.loc["npo", "scores"] and not target.loc["npo", "meets"]          # 5 points lost on retain
    assert not target.loc["rmu", "scores"] and target.loc["rmu", "attacks"] == "0/6"
    assert "membership / AUC loss / text" in target.loc["rmu", "outside"]
    assert not target.loc["rmu", "removed"]


def test_an_attack_is_within_the_spread_only_as_close_as_the_retrain(board, tmp_path):
    folder = ResultsFolder(tmp_path / "closer", ME)
    for kept in board.records:
        folder.write(kept)
    folder.write(record("ga", "tuned", 0.1, attacks=audit(0.55, 0.2)))         # 0.15 from never: the retrain is 0.1
    target = mu.results.against_retraining(mu.results.load(tmp_path / "closer")).set_index(["method", "setting"])
    assert target.loc[("ga", "tuned"), "attacks"] == "2/6" and not target.loc[("ga", "tuned"), "meets"]


def test_the_sweep_records_each_retrain_seed_beside_the_anchors(make_vlm, tmp_path):
    bench = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)
    vlm, never, again = make_vlm(bench), make_vlm(bench, seed=1), make_vlm(bench, seed=2)
    found = sweep.compare(vlm, bench, tmp_path / "s", ["manu"], [0.25], [0], {"default": None},
                          reference=lambda ratio: never, retrains={2: lambda ratio: again},
                          evaluation={"max_new_tokens": 3}, progress=False)
    retrain = next(r for r in found if r.method == RETRAIN)
    assert (retrain.setting, retrain.seed, retrain.ratio) == (REFERENCE, 2, 0.25)
    assert retrain.scores != next(r for r in found if r.method == "retain_only").scores
    with pytest.raises(ValueError, match="retrains"):
        sweep.compare(vlm, bench, tmp_path / "t", ["manu"], [0.25], [0], {"default": None}, retrains={2: lambda r: again})


def test_the_course_ships_a_retrained_model_at_every_ratio():
    keys = course_model_keys()
    for seed in RETRAIN_SEEDS:
        for ratio in mu.release.COURSE_RATIOS:
            key = keys[retrain_name(ratio, seed)]
            assert key["seed"] == seed and key == mu.models.retain_only_key(mu.release.course_benchmark(), ratio,
                                                                             seed=seed)
            assert mu.models.shipped.find_shipped(key) is not None


def test_a_view_of_some_methods_keeps_their_anchors(board):
    papers = board.of(["ga", "rmu"])
    assert sorted({r.method for r in papers.records}) == ["ga", "retain_only", "rmu", "vanilla"]
    assert len(board.records) == 6 and papers.path == board.path


def test_the_retrain_row_never_wins_the_best_setting_even_when_it_closes_most(board):
    only = board.of(["rmu", RETRAIN])
    assert mu.results.best(only)["method"].tolist() == ["rmu"]       # the retrain (0.8) closes more than rmu (0.5)


def test_the_mean_closure_must_reach_the_retrains_too(tmp_path):
    def scored(image, text):
        return [{"split": "forget", "modality": m, "task": "cloze", "metric": "accuracy", "score": v, "n": 4}
                for m, v in (("image+text", image), ("text", text))] + rows(1.0)[2:]

    folder = ResultsFolder(tmp_path / "r", ME)
    folder.write(record("vanilla", REFERENCE, 1.0))
    folder.write(record("retain_only", REFERENCE, 0.5))
    folder.write(RunRecord(RETRAIN, REFERENCE, 0.05, 1, {}, {}, scored(0.6, 0.2), {"total": 1.0}, {}, ME))
    folder.write(RunRecord("ga", "default", 0.05, 0, {}, {}, scored(0.6, 0.6), {"total": 1.0}, {}, ME))
    target = mu.results.against_retraining(mu.results.load(tmp_path / "r")).set_index("method")
    # the same weakest cell (0.8), but the retrain's other cell goes past a stranger (capped at 1): mean 0.9
    assert target.loc["ga", "closure"] == pytest.approx(target.loc["ga", "retrain closure"]) == pytest.approx(0.8)
    assert target.loc["ga", "closure_mean"] == pytest.approx(0.8)
    assert target.loc["ga", "retrain mean"] == pytest.approx(0.9)
    assert not target.loc["ga", "scores"]


def test_retrains_asks_for_the_retain_only_recipe_at_each_seed(monkeypatch):
    from mini_unlearn.models import cache

    asked = []
    monkeypatch.setattr(cache, "retain_only", lambda bench, ratio, preset, seed, **options: asked.append(
        (bench, ratio, preset, seed, options)) or f"model{seed}@{ratio}")
    made = mu.models.retrains("bench", [1, "2"], "small", device="cpu", progress=False)
    assert sorted(made) == [1, 2]                                            # built lazily: nothing trained yet
    assert asked == []
    assert [made[1](0.1), made[2](0.15)] == ["model1@0.1", "model2@0.15"]
    assert asked == [("bench", 0.1, "small", 1, {"device": "cpu", "progress": False}),
                     ("bench", 0.15, "small", 2, {"device": "cpu", "progress": False})]
