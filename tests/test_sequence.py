"""Requests that keep coming (chapter 12): ``mu.unlearn_sequence``, the request view of a benchmark, the
``run --rounds`` command, exercise 12.2's checker and the committed sequences. Tiny untrained models, one step a
round, short generations."""
import functools
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods import sequence as sequencing
from mini_unlearn.methods.sequence import request_rounds


RATIO = 0.5                                   # 3 forget people of 6
SHORT = {"max_new_tokens": 3}                 # an untrained model: generations cut short
COMMITTED = Path(__file__).resolve().parent.parent / "mini_unlearn" / "data" / "results" / "sequential"


@pytest.fixture(scope="module")
def bench():
    return mu.bench.make_benchmark(n_profiles=6, seed=0, n_utility=1)


@pytest.fixture(scope="module")
def vlm(bench, make_vlm):
    return make_vlm(bench)


def weights(vlm):
    return {name: value.detach().clone() for name, value in vlm.model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- exercise 12.2: the rounds ------------------------------------------------------------------------------
def test_request_rounds_cuts_the_forget_order_into_contiguous_near_equal_requests():
    ids = ["017", "028", "019", "026", "038", "009", "004"]
    assert request_rounds(ids, 3) == [["017", "028", "019"], ["026", "038"], ["009", "004"]]
    assert request_rounds(ids[:6], 3) == [["017", "028"], ["019", "026"], ["038", "009"]]
    assert request_rounds(ids, 1) == [ids] and request_rounds(ids, 7) == [[i] for i in ids]
    for n in range(1, 12):
        for rounds in range(1, n + 1):
            cut = request_rounds(list(range(n)), rounds)
            sizes = [len(people) for people in cut]
            assert [i for people in cut for i in people] == list(range(n)) and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes)[::-1]
    with pytest.raises(ValueError, match="rounds must be at most the number of forget people, 7"):
        request_rounds(ids, 8)
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        request_rounds(ids, 0)
    with pytest.raises(TypeError, match="rounds must be a positive integer"):
        request_rounds(ids, True)
    with pytest.raises(TypeError, match="forget_ids must be a list"):
        request_rounds("017", 1)


def test_the_checker_passes_the_package_and_names_each_slip(capsys):
    from mini_unlearn.course.checks.ch12_lasting import check_request_rounds
    check_request_rounds(request_rounds)
    assert "✓ request_rounds matches" in capsys.readouterr().out
    assert len(check_request_rounds.slips) >= 2
    for slip in check_request_rounds.slips:
        with pytest.raises(AssertionError) as failed:
            check_request_rounds(slip.fn)
        assert slip.says in str(failed.value)


# ---- the view of one request ----------------------------------------------------------------------------------
def test_a_request_sees_its_people_to_forget_and_never_retains_the_forgotten(bench):
    everyone = [p.id for p in bench.profiles]
    first, second, third = bench.forget_ids(RATIO)
    view = bench.request([second], forgotten=[first], ratio=RATIO)
    assert view.split("forget", RATIO).ids == [second]
    assert view.split("retain", RATIO).ids == [i for i in everyone if i not in (first, second)]
    assert third in view.split("retain", RATIO).ids                    # not asked about yet: still kept
    assert view.split("utility", RATIO).ids == bench.split("utility", RATIO).ids
    assert view.split("holdout", RATIO).ids == [bench.holdout_profiles[0].id]     # one: as many as it forgets
    assert [p.id for p in view.profiles] == everyone and view.profile(first) == bench.profile(first)
    assert bench.split("retain", RATIO).ids == [i for i in everyone if i not in (first, second, third)]   # untouched
    assert bench.forgotten == () and view.name != bench.name
    for args, kwargs, message in [
            (["nobody"], {}, "forget_ids: 'nobody' is not one of the fictitious people"),
            ([bench.utility_profiles[0].id], {}, "is not one of the fictitious people"),
            ([], {}, "forget_ids is empty"),
            ([first, first], {}, "forget_ids names"),
            ([first], {"forgotten": [first]}, "forget_ids and forgotten share"),
            (everyone[:3], {"forgotten": everyone[3:]}, "nobody is left to retain"),
            ([first], {"ratio": 1.5}, "ratio must lie strictly between 0 and 1")]:
        with pytest.raises(ValueError, match=message):
            bench.request(args, **kwargs)
    with pytest.raises(TypeError, match="forget_ids must be a list of people IDs"):
        bench.request(first)
    with pytest.raises(TypeError, match="forgotten: each ID must be a string"):
        bench.request([first], forgotten=[1])


# ---- the sequence -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ran(bench, vlm):
    """GA_Diff in 3 rounds of one step, with every call of mu.unlearn recorded (its model and benchmark)."""
    calls = []
    real = sequencing.unlearn

    def spy(model, view, *args, **kwargs):
        calls.append((model, view))
        return real(model, view, *args, **kwargs)

    before = weights(vlm)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sequencing, "unlearn", spy)
        result = mu.unlearn_sequence(vlm, bench, "ga_diff", ratio=RATIO, rounds=3, progress=False, steps=1,
                                     batch_size=2, evaluation=SHORT)
    return result, calls, before


def test_each_round_unlearns_the_next_people_and_retains_nobody_forgotten_before(bench, ran):
    result, calls, _ = ran
    forget = bench.forget_ids(RATIO)
    assert result.requests == request_rounds(forget, 3) == [[forget[0]], [forget[1]], [forget[2]]]
    assert len(calls) == 3
    for number, (_, view) in enumerate(calls):
        earlier, now = [i for people in result.requests[:number] for i in people], result.requests[number]
        assert view.split("forget", RATIO).ids == now
        retain = view.split("retain", RATIO).ids
        assert not set(retain) & set(earlier + now)
        assert set(retain) == {p.id for p in bench.profiles} - set(earlier + now)
    kept = mu.methods.unlearning_sets(calls[2][1], RATIO, "both")[1]          # what round 3's retain terms train on
    assert kept and not {e.profile_id for e in kept} & {forget[0], forget[1]}


def test_round_r_plus_one_starts_from_round_rs_weights_and_the_input_is_untouched(vlm, ran):
    result, calls, before = ran
    assert calls[0][0] is vlm
    for number in (1, 2):
        assert calls[number][0] is result.rounds[number - 1].vlm
    assert result.vlm is result.rounds[-1].vlm
    assert same_weights(weights(vlm), before)                                  # the input never moved
    for earlier, later in zip([vlm] + [r.vlm for r in result.rounds], [r.vlm for r in result.rounds]):
        assert not same_weights(weights(earlier), weights(later))              # every round changed its input


def test_the_scores_after_each_round_are_tidy_and_follow_the_requests(bench, ran):
    result, _, _ = ran
    frame = result.to_frame()
    assert list(frame.columns) == ["round", "split", "modality", "task", "metric", "score", "n"]
    assert set(frame["task"]) == set(sequencing.SEQUENCE_TASKS) and set(frame["round"]) == {1, 2, 3}
    per_person = len(bench.split("forget", RATIO).select(task="cloze", modality="text")) // 3
    for number in (1, 2, 3):
        rows = frame[(frame["round"] == number) & (frame["task"] == "cloze") & (frame["modality"] == "text")]
        n = rows.set_index("split")["n"]
        assert n["forget"] == number * per_person                               # everyone forgotten so far
        assert n.get("pending", 0) == (3 - number) * per_person                 # the people still to come
        assert n["retain"] == 3 * per_person                                    # the same retain people every round
    assert list(result.costs["round"]) == [1, 2, 3] and list(result.costs["steps"]) == [1, 1, 1]
    assert list(result.costs["people"]) == [" ".join(people) for people in result.requests]
    assert (result.costs[["seconds_unlearn", "seconds_evaluate"]] >= 0).all().all()
    assert list(result.table("cloze").index) == [1, 2, 3] and "forget i+t" in repr(result)


def test_bad_rounds_are_refused_before_anything_runs(bench, vlm, monkeypatch):
    monkeypatch.setattr(sequencing, "unlearn", lambda *a, **k: pytest.fail("unlearned despite a bad argument"))
    monkeypatch.setattr(sequencing, "evaluate", lambda *a, **k: pytest.fail("evaluated despite a bad argument"))
    a, b, c = bench.forget_ids(RATIO)
    run = functools.partial(mu.unlearn_sequence, vlm, bench, "ga", RATIO, progress=False)
    for rounds, error, message in [
            (0, ValueError, r"rounds must be between 1 and the number of forget people at ratio=0.5 \(3 in"),
            (4, ValueError, r"\(3 in .*got 4"),
            ([[a], [b, a]], ValueError, f"person '{a}' would be unlearned twice, in round 1 and in round 2"),
            ([[a, b, a]], ValueError, f"person '{a}' would be unlearned twice, twice in round 1"),
            ([[a], ["nobody"]], ValueError, "round 2 names 'nobody', which is not one of the fictitious people"),
            ([[a], []], ValueError, "round 2 is empty"),
            ([], ValueError, "rounds is an empty list"),
            ([[p.id] for p in bench.profiles], ValueError, "nobody is left to retain"),
            ("3", TypeError, "rounds must be a number of requests"),
            (2.0, TypeError, "rounds must be a number of requests"),
            ([a, b], TypeError, "round 1 must be a list of people IDs"),
            ([[a], [7]], TypeError, "round 2 holds 7")]:
        with pytest.raises(error, match=message):
            run(rounds=rounds)
    with pytest.raises(TypeError, match="has no hyperparameter 'alpha'"):
        run(rounds=2, alpha=0.1)
    with pytest.raises(ValueError, match="ratio must lie strictly between 0 and 1"):
        mu.unlearn_sequence(vlm, bench, "ga", 0, 2)
    with pytest.raises(ValueError, match="evaluation: \\['splits'\\] cannot be set here"):
        run(rounds=2, evaluation={"splits": ("forget",)})
    with pytest.raises(ValueError, match="each of evaluation\\['tasks'\\] must be one of"):
        run(rounds=2, evaluation={"tasks": ("mcq",)})
    with pytest.raises(ValueError, match="reference='retain_only' trains the vanilla recipe"):
        mu.unlearn_sequence(vlm, bench, "npo", RATIO, 2, progress=False)       # an untrained model has no recipe
    with pytest.raises(ValueError, match=r"retain-only model at ratio=0.5 was trained on \['"):
        outsider = next(p.id for p in bench.profiles if p.id not in (a, b, c))
        mu.unlearn_sequence(vlm, bench, "npo", RATIO, [[a], [outsider]], progress=False)


def test_npos_retain_only_reference_is_found_once_and_serves_every_round(bench, vlm, make_vlm, monkeypatch):
    """The retain-only model at the ratio never saw any round's people: looked up once (not trained per round)
    on the whole benchmark, and passed to every round as reference=<VLM>."""
    reference = make_vlm(bench, seed=1)
    asked = []
    monkeypatch.setattr(sequencing, "npo_reference", lambda *args: asked.append(args) or reference)
    a, b, _ = bench.forget_ids(RATIO)
    result = mu.unlearn_sequence(vlm, bench, "npo", RATIO, [[a], [b]], progress=False, steps=1, batch_size=2,
                                 evaluation={"tasks": ("mcq_likelihood",)})
    assert len(asked) == 1 and asked[0][:4] == (vlm, bench, RATIO, "retain_only")
    assert [r.config.reference for r in result.rounds] == [reference, reference]


# ---- the command ------------------------------------------------------------------------------------------------
def test_run_rounds_records_the_last_model_and_the_scores_after_each_round(capsys, tmp_path, monkeypatch, make_vlm):
    from mini_unlearn import cli
    from mini_unlearn.results import running
    bench = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)       # 2 forget people at ratio 0.5
    vlm = make_vlm(bench)

    def inputs(model, preset, bench_spec, device, check=None):
        if check is not None:
            check(bench)
        return vlm, bench

    monkeypatch.setattr(cli, "load_inputs", inputs)
    one_task = ("mcq_likelihood",)                                          # an untrained model: one quick task
    monkeypatch.setattr(running, "evaluate", functools.partial(running.evaluate, tasks=one_task))
    monkeypatch.setattr(sequencing, "SEQUENCE_TASKS", one_task)
    out = tmp_path / "results"
    argv = ["run", "--method", "ga", "--set", "steps=1", "--set", "batch_size=2", "--ratio", "0.5", "--out", str(out)]
    assert cli.main([*argv, "--rounds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 rounds of 1, 1 people" in printed and "forget i+t" in printed
    assert "the scores after each of the 2 rounds" in printed
    record = json.loads((out / "runs" / "ga__custom-2rounds__ratio0.5__seed0.json").read_text())
    assert record["steps"] == 2 and {"unlearn", "rounds_evaluate", "evaluate", "total"} <= set(record["seconds"])
    assert {row["split"] for row in record["scores"]} == set(mu.results.EVALUATED_SPLITS)   # a cell like any other
    rounds = pd.read_csv(out / "sequences" / "ga__custom-2rounds__ratio0.5__seed0.csv", dtype={"people": str})
    assert sorted(set(rounds["round"])) == [1, 2] and set(rounds["steps"]) == {1}
    assert list(dict.fromkeys(rounds["people"])) == [" ".join(p) for p in request_rounds(bench.forget_ids(RATIO), 2)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["ga__custom-2rounds__ratio0.5__seed0.json",
                                                                "vanilla__reference__ratio0.5__seed0.json"]


def test_run_refuses_bad_rounds_before_the_model_loads(capsys, tmp_path, monkeypatch):
    from mini_unlearn.cli import main
    monkeypatch.setattr(mu.models, "vanilla", lambda *a, **k: pytest.fail("loaded a model for bad --rounds"))
    out = tmp_path / "out"
    for rounds, message in (("0", "at least 1 request; got 0"), ("-2", "got -2"), ("three", "is not a valid integer"),
                            ("3", "3 rounds but ratio 0.05 forgets 2 people")):
        assert main(["run", "--method", "ga", "--rounds", rounds, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert "--rounds" in error and message in error, error
    assert not out.exists()


# ---- the committed sequences of chapter 12 -----------------------------------------------------------------------
def test_the_committed_sequences_are_every_method_tuned_on_the_course_benchmark():
    from mini_unlearn.models.cache import benchmark_fingerprint
    from mini_unlearn.release import COURSE_BENCHMARK, course_benchmark
    from mini_unlearn.results import sequential
    assert sequential.COURSE_BENCHMARK == COURSE_BENCHMARK
    course = course_benchmark()
    settings = json.loads((COMMITTED / "settings.json").read_text())
    assert settings["benchmark"]["fingerprint"] == benchmark_fingerprint(course)
    assert settings["requests"] == request_rounds(course.forget_ids(sequential.RATIO), sequential.ROUNDS)
    assert (settings["ratio"], settings["rounds"]) == (sequential.RATIO, sequential.ROUNDS)
    tuned = mu.results.read_tuned(mu.results.course_results("tuning"))
    assert sorted(settings["methods"]) == sorted(mu.methods.available())
    assert {m: about["overrides"] for m, about in settings["methods"].items()} == tuned
    scores = pd.read_csv(COMMITTED / "scores.csv")
    costs = pd.read_csv(COMMITTED / "costs.csv", dtype={"people": str})
    assert tuple(scores.columns) == sequential.SCORE_COLUMNS and tuple(costs.columns) == sequential.COST_COLUMNS
    assert set(scores["method"]) == set(mu.methods.available()) | set(sequential.ANCHORS)
    assert set(costs["method"]) == set(mu.methods.available())
    assert list(costs[costs["method"] == "ga"]["people"]) == [" ".join(p) for p in settings["requests"]]
    counts = scores.groupby(["method", "round"]).size()
    assert set(counts.index.get_level_values("round")) == {1, 2, 3} and scores["score"].between(0, 1).all()


def test_the_committed_sequences_reproduce():
    """MANU (training-free, deterministic): round 1 of the committed sequence, computed again (cloze)."""
    from mini_unlearn.release import course_benchmark
    from mini_unlearn.results import sequential
    course = course_benchmark()
    settings = json.loads((COMMITTED / "settings.json").read_text())
    first = settings["requests"][0]
    everyone = [i for people in settings["requests"] for i in people]
    model = mu.models.vanilla(course, device="cpu")
    mu.seed_everything(sequential.SEED)                 # as sequential_results: the seed and its 2 threads
    result = mu.unlearn(model, course.request(first, ratio=sequential.RATIO), "manu", sequential.RATIO,
                        progress=False, **settings["methods"]["manu"]["overrides"])     # round 1 of the sequence
    report = mu.evaluate(result.vlm, course.request(everyone, ratio=sequential.RATIO), sequential.RATIO,
                         splits=("forget", "retain", "utility"), tasks=("cloze",), progress=False)
    mine = sequencing.round_scores(report, first, everyone[len(first):])    # the later rounds' people: pending
    scores = pd.read_csv(COMMITTED / "scores.csv")
    committed = scores[(scores["method"] == "manu") & (scores["round"] == 1) & (scores["task"] == "cloze")]
    merged = mine.merge(committed, on=["split", "modality", "task", "metric"], suffixes=("", "_committed"))
    assert len(merged) == len(committed) == len(mine) == 8                # 4 splits × 2 modalities
    assert (merged["score"].round(6) == merged["score_committed"]).all() and (merged["n"] == merged["n_committed"]).all()
