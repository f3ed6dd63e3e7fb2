"""mini_unlearn.results (chapter 10): records on disk and back, the yardstick, the tuning rule, the sweep
(resumable) and the report, on a small benchmark with untrained models."""
import json
import math
import shutil

import pandas as pd
import pytest

import mini_unlearn as mu
from mini_unlearn.results import records, running, scoring, settings, sweep, tuning
from mini_unlearn.results.records import REFERENCE, Cell, ResultsFolder, RunRecord

RATIO = 0.25
QUICK = {"ga": {"steps": 2, "batch_size": 2}, "manu": {"batch_size": 4}}
SHORT = {"max_new_tokens": 3}       # an untrained model talks until the limit: keep generation short here


@pytest.fixture(scope="module")
def small(make_vlm):
    """Four people (one forgotten at 25 %), an untrained model and another as the "never saw them" anchor."""
    bench = mu.bench.make_benchmark(n_profiles=4, seed=0, n_utility=1)
    return bench, make_vlm(bench), make_vlm(bench, seed=1)


@pytest.fixture(scope="module")
def swept(small, tmp_path_factory):
    bench, vlm, other = small
    out = tmp_path_factory.mktemp("results") / "sweep"
    found = sweep.compare(vlm, bench, out, ["ga", "manu"], [RATIO], [0, 1], {"quick": QUICK},
                          reference=lambda ratio: other, evaluation=SHORT, progress=False)
    return out, found


def record(**changes) -> RunRecord:
    fields = dict(method="ga", setting="default", ratio=0.05, seed=0, overrides={"lr": 1e-4}, config={"lr": 1e-4},
                  scores=[{"split": "forget", "modality": "text", "task": "cloze", "metric": "accuracy", "score": 0.5,
                           "n": 4}], seconds={"total": 1.0}, environment={"hardware": "cpu"},
                  identity={"model": {"name": "m"}, "benchmark": {"name": "b"}}, steps=3)
    return RunRecord(**{**fields, **changes})


# ---- records ---------------------------------------------------------------------------------------------
def test_a_record_round_trips_through_its_folder(tmp_path):
    folder = ResultsFolder(tmp_path / "r", {"model": {"name": "m"}, "benchmark": {"name": "b"}})
    written = record(audit=[{"attack": "membership", "metric": "AUC loss", "modality": "text", "value": 0.7,
                             "direction": "down"}])
    path = folder.write(written)
    assert path.name == "ga__default__ratio0.05__seed0.json" and folder.done(written.cell)
    loaded = mu.results.load(tmp_path / "r")
    assert loaded.records == [written]
    assert loaded.scores.iloc[0].to_dict() == {"method": "ga", "setting": "default", "ratio": 0.05, "seed": 0,
                                               **written.scores[0]}
    assert loaded.audits.loc[0, "value"] == 0.7
    assert loaded.runs.loc[0, "overrides"] == '{"lr": 0.0001}'
    assert pd.read_csv(tmp_path / "r" / "scores.csv")["score"].tolist() == [0.5]


def test_a_folder_refuses_other_results_and_other_files(tmp_path):
    me = {"model": {"name": "m"}, "benchmark": {"name": "b"}}
    ResultsFolder(tmp_path / "r", me)
    with pytest.raises(ValueError, match="holds results of another model or benchmark"):
        ResultsFolder(tmp_path / "r", {"model": {"name": "other"}, "benchmark": {"name": "b"}})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="not empty and is not a mini_unlearn results folder"):
        ResultsFolder(tmp_path / "notes", me)
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "mine"
    with pytest.raises(ValueError, match="another model or benchmark than this folder"):
        ResultsFolder(tmp_path / "r", me).write(record(identity={"model": {"name": "x"}, "benchmark": {"name": "b"}}))
    with pytest.raises(FileNotFoundError, match="not a mini_unlearn results folder"):
        mu.results.load(tmp_path / "notes")


# ---- settings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("40", 40), ("true", True), ("None", None), ("both", "both"),
                                         ("vision,language", ("vision", "language")), ("0.2", 0.2)])
def test_set_values_are_read_as_python_values(text, value):
    assert settings.parse_value(text) == value and type(settings.parse_value(text)) is type(value)


def test_set_refuses_an_unknown_name_a_bad_value_and_text_without_equals():
    assert settings.parse_overrides("manu", ["alpha=0.1", "variant=released"]) == {"alpha": 0.1, "variant": "released"}
    with pytest.raises(TypeError, match="has no hyperparameter 'alfa'"):
        settings.parse_overrides("manu", ["alfa=0.1"])
    with pytest.raises(ValueError, match="alpha"):
        settings.parse_overrides("manu", ["alpha=1.5"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        settings.parse_overrides("manu", ["alpha"])


# ---- the yardstick ---------------------------------------------------------------------------------------
MODALITY = {"image": "image+text", "text": "text"}


def scores(**values) -> pd.Series:
    """Cloze scores as main_scores gives them: ``forget_image=0.2`` → (forget, image+text, cloze) 0.2."""
    index = [(split, MODALITY[modality], "cloze") for split, modality in (key.split("_") for key in values)]
    return pd.Series(list(values.values()), index=pd.MultiIndex.from_tuples(index))


def test_progress_reads_the_gap_closed_and_the_points_lost():
    vanilla = scores(forget_image=1.0, forget_text=1.0, retain_image=1.0, retain_text=0.9, utility_image=0.8,
                     utility_text=0.8)
    never = scores(forget_image=0.2, forget_text=0.0)
    model = scores(forget_image=0.2, forget_text=0.5, retain_image=0.9, retain_text=0.9, utility_image=0.8,
                   utility_text=0.7)
    got = scoring.progress(model, vanilla, never, tasks=("cloze",))
    assert got["closures"] == {"image+text cloze": 1.0, "text cloze": 0.5}
    assert got["closure"] == 0.5                                   # the weakest cell, not the mean
    assert got["closure_mean"] == pytest.approx(0.75)
    past = scoring.progress(scores(forget_image=0.0, forget_text=0.5), vanilla, never, kept=(), tasks=("cloze",))
    assert past["closures"]["image+text cloze"] == pytest.approx(1.25)   # past a stranger: over-unlearning...
    assert past["closure_mean"] == pytest.approx(0.75)                   # ...which earns nothing in the mean
    assert got["retain_drop"] == pytest.approx(5.0) and got["utility_drop"] == pytest.approx(5.0)
    assert not got["meets_target"]
    visual = scoring.progress(model, vanilla, never, goal="forget_visual", tasks=("cloze",))
    assert visual["closures"] == {"image+text cloze": 1.0} and visual["forget_kept_drop"] == pytest.approx(50.0)
    done = scoring.progress(scores(forget_image=0.25, forget_text=0.05, retain_image=0.97, retain_text=0.88,
                                   utility_image=0.8, utility_text=0.8), vanilla, never, tasks=("cloze",))
    assert done["closure"] == pytest.approx(0.9375) and done["meets_target"]
    with pytest.raises(ValueError, match="goal must be one of"):
        scoring.progress(model, vanilla, never, goal="forget_all")


def test_a_task_where_the_anchors_agree_is_left_out_not_divided_by_zero():
    vanilla, never = scores(forget_image=0.3, forget_text=1.0), scores(forget_image=0.28, forget_text=0.0)
    got = scoring.progress(scores(forget_image=0.3, forget_text=0.4), vanilla, never, kept=(), tasks=("cloze",))
    assert math.isnan(got["closures"]["image+text cloze"]) and got["closure"] == pytest.approx(0.6)


# ---- the tuning rule -------------------------------------------------------------------------------------
def rows(*triples):
    return [{"closure": c, "closure_mean": m, "worst_drop": d} for c, m, d in triples]


def test_the_rule_keeps_the_retain_people_first_then_forgets_most():
    assert tuning.choose(rows((1.0, 1.0, 30.0), (0.4, 0.4, 1.0), (0.7, 0.7, 4.0), (0.7, 0.7, 2.0))) == 3
    assert tuning.choose(rows((0.0, 0.1, 0.5), (0.0, 0.4, 3.0), (0.0, 0.0, 0.0))) == 1   # weakest tied: the mean
    assert tuning.choose(rows((1.0, 1.0, 30.0), (0.9, 0.9, 8.0))) == 1
    assert tuning.choose(rows((float("nan"), float("nan"), 0.0), (0.1, 0.1, 0.0))) == 1
    with pytest.raises(ValueError, match="rows is empty"):
        tuning.choose([])


def test_every_method_gets_the_same_budget():
    assert set(tuning.GRIDS) == set(mu.methods.available())
    assert {len(tuning.candidates(m)) for m in tuning.GRIDS} == {6}
    for method in tuning.GRIDS:
        for overrides in tuning.candidates(method):
            settings.require_overrides(method, {**overrides, **tuning.WHILE_TUNING.get(method, {})})


def test_the_validation_people_are_never_a_reported_forget_person():
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    valid = tuning.validation_benchmark(bench)
    reported = {pid for r in tuning.REPORTED_RATIOS for pid in bench.forget_ids(r)}
    people = valid.forget_ids(tuning.VALIDATION_RATIO)
    assert len(people) == len(bench.forget_ids(tuning.VALIDATION_RATIO)) and not set(people) & reported
    assert people == [p for p in bench.forget_order if p not in reported][:len(people)]
    assert sorted(valid.forget_order) == sorted(p.id for p in bench.profiles)
    validation = tuning.Validation.of(bench)
    assert {q.profile_id for q in validation.retain}.isdisjoint(reported | set(people))
    assert len({q.profile_id for q in validation.retain}) == tuning.RETAIN_PEOPLE
    assert {q.profile_id for q in validation.holdout} == set(bench.holdout_ids(0.15))
    with pytest.raises(ValueError, match="people outside the reported forget sets"):
        tuning.validation_benchmark(mu.bench.make_benchmark(n_profiles=12, seed=0))


# ---- the sweep -------------------------------------------------------------------------------------------
def test_the_plan_refuses_bad_input_before_anything_runs():
    with pytest.raises(ValueError, match="unknown method"):
        sweep.plan(["ga", "forgetful"], [0.05], [0], {"default": None})
    with pytest.raises(ValueError, match="ratio must lie strictly between 0 and 1"):
        sweep.plan(["ga"], [0.05, 1.0], [0], {"default": None})
    with pytest.raises(ValueError, match="seeds is empty"):
        sweep.plan(["ga"], [0.05], [], {"default": None})
    with pytest.raises(TypeError, match="has no hyperparameter"):
        sweep.plan(["ga"], [0.05], [0], {"tuned": {"ga": {"alpha": 0.1}}})
    with pytest.raises(ValueError, match="names the anchors"):
        sweep.plan(["ga"], [0.05], [0], {REFERENCE: None})
    cells = sweep.plan(["ga", "manu"], [0.05, 0.1], [0, 1], {"default": None, "tuned": {"manu": {"alpha": 0.1}}})
    assert len(cells) == 2 * (2 * 2 + 2)                       # ga has no tuned entry: skipped there
    assert cells[0] == (Cell("ga", "default", 0.05, 0), {})


def test_the_sweep_records_anchors_and_every_cell(small, swept):
    bench, vlm, _ = small
    out, found = swept
    loaded = mu.results.load(out)
    assert len(found) == len(loaded.records) == 2 + 2 * 2
    assert {(r.method, r.setting) for r in loaded.records} == {("vanilla", REFERENCE), ("retain_only", REFERENCE),
                                                                ("ga", "quick"), ("manu", "quick")}
    ga = loaded.record("ga", "quick", RATIO, 1)
    assert ga.overrides == {"steps": 2, "batch_size": 2} and ga.config["seed"] == 1 and ga.steps == 2
    assert loaded.record("manu", "quick", RATIO, 1).config.get("seed") is None     # MANU has no seed
    assert ga.identity == running.identity(vlm, bench, SHORT) and ga.environment["torch"] == __import__("torch").__version__
    assert {row["split"] for row in ga.scores} == set(running.EVALUATED_SPLITS)
    again = mu.evaluate(mu.unlearn(vlm, bench, "ga", RATIO, progress=False, seed=1, **QUICK["ga"]).vlm, bench,
                        ratio=RATIO, progress=False, **SHORT)
    assert running.score_rows(again) == ga.scores                  # the record is the run, reproduced


def test_a_stopped_sweep_resumes_without_recomputing(small, swept, monkeypatch, tmp_path):
    bench, vlm, other = small
    out, found = swept
    monkeypatch.setattr(sweep, "run_cell", lambda *a, **k: pytest.fail("a finished cell ran again"))
    monkeypatch.setattr(sweep, "anchor_cell", lambda *a, **k: pytest.fail("a finished anchor ran again"))
    again = sweep.compare(vlm, bench, out, ["ga", "manu"], [RATIO], [0, 1], {"quick": QUICK},
                          reference=lambda ratio: other, evaluation=SHORT, progress=False)
    assert again == found
    out = tmp_path / "copy"                       # the other tests read the module's folder as it was
    shutil.copytree(swept[0], out)
    ran = []
    monkeypatch.setattr(sweep, "run_cell", lambda vlm, bench, cell, overrides, **k: ran.append(cell) or
                        (records.RunRecord(**{**json.loads(found[-1].to_json()), "method": cell.method, "seed": cell.seed}), None))
    sweep.compare(vlm, bench, out, ["ga", "manu"], [RATIO], [0, 1, 2], {"quick": QUICK},
                  reference=lambda ratio: other, evaluation=SHORT, progress=False)
    with pytest.raises(ValueError, match="holds results of another model or benchmark"):   # other evaluation options
        sweep.compare(vlm, bench, out, ["ga"], [RATIO], [0], {"quick": QUICK}, reference=lambda ratio: other,
                      progress=False)
    assert ran == [Cell("ga", "quick", RATIO, 2), Cell("manu", "quick", RATIO, 2)]   # only the new seed


def test_the_leaderboard_reads_each_cell_against_its_anchors(swept):
    out, _ = swept
    results = mu.results.load(out)
    cells = mu.results.cell_table(results)
    assert len(cells) == 4
    row = cells[(cells["method"] == "ga") & (cells["seed"] == 0)].iloc[0]
    vanilla = scoring.main_scores(results.record("vanilla", REFERENCE, RATIO).scores)
    never = scoring.main_scores(results.record("retain_only", REFERENCE, RATIO).scores)
    expected = scoring.progress(scoring.main_scores(results.record("ga", "quick", RATIO, 0).scores), vanilla, never)
    assert row["closure"] == expected["closure"] or (math.isnan(row["closure"]) and math.isnan(expected["closure"]))
    assert row["retain_drop"] == pytest.approx(expected["retain_drop"])
    board = mu.results.leaderboard(results)
    assert board[("seeds", "n")].tolist() == [2, 2]
    ga = cells[cells["method"] == "ga"]["retain_drop"]
    assert board.loc[(RATIO, "ga", "quick"), ("retain_drop", "mean")] == pytest.approx(ga.mean())
    assert board.loc[(RATIO, "ga", "quick"), ("retain_drop", "std")] == pytest.approx(ga.std())


def test_the_report_writes_markdown_html_and_a_plot_per_ratio(swept, tmp_path):
    out, _ = swept
    written = mu.results.write_report(mu.results.load(out), tmp_path / "report")
    assert sorted(p.name for p in written) == ["pareto-0.25.png", "report.html", "report.md"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| ratio | method | setting | closure (weakest) | mean closure |" in text and "ga" in text and "manu" in text
    assert "## Best per ratio" in text and "Left out" not in text and "## Changes" not in text    # both anchors
    assert (tmp_path / "report" / "pareto-0.25.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table" in (tmp_path / "report" / "report.html").read_text()


def test_a_leaderboard_without_anchors_says_so(tmp_path):
    folder = ResultsFolder(tmp_path / "r", {"model": {"name": "m"}, "benchmark": {"name": "b"}})
    folder.write(record())
    with pytest.raises(ValueError, match="lack an anchor"):
        mu.results.cell_table(mu.results.load(tmp_path / "r"))


# ---- a folder without a retain-only model (a researcher's own checkpoint) --------------------------------
def test_a_folder_without_a_reference_gets_the_scores_the_changes_and_what_was_left_out(swept, tmp_path):
    out = tmp_path / "mine"
    shutil.copytree(swept[0], out)
    (out / "runs" / f"retain_only__{REFERENCE}__ratio{RATIO:g}__seed0.json").unlink()
    mine, full = mu.results.load(out), mu.results.load(swept[0])
    assert mu.results.missing_references(mine) == [RATIO] and mu.results.anchored_ratios(mine) == []
    assert mu.results.missing_references(full) == [] and mu.results.anchored_ratios(full) == [RATIO]
    with pytest.raises(ValueError, match="lack an anchor.*--reference"):
        mu.results.cell_table(mine)
    changes = mu.results.change_table(mine).set_index(["method", "seed"])
    ga = changes.loc[("ga", 0)]
    vanilla = scoring.main_scores(mine.record("vanilla", REFERENCE, RATIO).scores)
    got = scoring.main_scores(mine.record("ga", "quick", RATIO, 0).scores)
    fell = (vanilla - got).xs(("forget", "image+text"), level=("split", "modality"))
    assert ga["forget image+text"] == pytest.approx(100 * fell.mean())
    forget = (vanilla - got).xs("forget", level="split")
    assert ga["forget_weakest"] == pytest.approx(100 * forget.min())
    cells = mu.results.cell_table(full).set_index(["method", "seed"])          # the leaderboard's points lost
    assert changes[["retain_drop", "utility_drop"]].to_numpy() == pytest.approx(
        cells.loc[changes.index, ["retain_drop", "utility_drop"]].to_numpy())
    scores = mu.results.score_table(mine)
    assert list(scores["method"][:1]) == ["vanilla"] and len(scores) == 1 + 4
    assert scores.iloc[0]["retain"] == pytest.approx(100 * vanilla.xs("retain", level="split").mean())

    written = mu.results.write_report(mine, tmp_path / "report")
    assert sorted(p.name for p in written) == ["report.html", "report.md"]            # no Pareto: it reads closures
    text = (tmp_path / "report" / "report.md").read_text()
    for part in ("## Scores (no reference needed; ratio 0.25)", "## Changes against the vanilla model",
                 "| ratio | method | setting | forget, portrait | forget, name | weakest forget task |",
                 "## Left out: what needs a reference", "closure (weakest), mean closure", "Pareto plot",
                 "audit's verdict", f"--method ga --setting quick --ratio 0.25 --seed 0 --out {out}",
                 "retain_only_people(bench, ratio)", "--reference retain-only-0.25"):
        assert part in text, part
    assert "## Leaderboard" not in text and "| closure (weakest) |" not in text
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h2>Left out: what needs a reference</h2>" in page and "<code>--reference</code>" in page


def test_a_folder_with_a_reference_at_one_ratio_keeps_its_leaderboard_there(tmp_path):
    def rows(forget):
        return [{"split": split, "modality": modality, "task": "cloze", "metric": "accuracy", "score": value, "n": 4}
                for split, value in (("forget", forget), ("retain", 1.0), ("utility", 1.0), ("test", forget))
                for modality in ("image+text", "text")]

    me = {"model": {"name": "m", "path": "/models/mine"}, "benchmark": {"name": "b"}}
    folder = ResultsFolder(tmp_path / "r", me)
    for ratio in (0.05, 0.1):
        folder.write(record(method="vanilla", setting=REFERENCE, ratio=ratio, scores=rows(1.0), identity=me))
        folder.write(record(ratio=ratio, scores=rows(0.25), identity=me))
    folder.write(record(method="retain_only", setting=REFERENCE, ratio=0.05, scores=rows(0.0), identity=me))
    results = mu.results.load(tmp_path / "r")
    titles = [title for title, _ in mu.results.report_sections(results)]
    assert titles == ["Leaderboard", "Best per ratio", "Scores (no reference needed; ratio 0.1)",
                      "Changes against the vanilla model", "Left out: what needs a reference"]
    written = mu.results.write_report(results, tmp_path / "report")
    assert sorted(p.name for p in written) == ["pareto-0.05.png", "report.html", "report.md"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| 0.05 | ga | default | 0.75 ± 0.00 |" in text                    # the gap closed, where it can be read
    assert "| 0.1 | ga | default | 75.0 ± 0.0 | 75.0 ± 0.0 | 75.0 ± 0.0 | 75.0 ± 0.0 | 0.0 ± 0.0 |" in text
    assert "| 0.1 | ga | default | 0.75" not in text
    assert "--model /models/mine --reference retain-only-0.1" in text and "ratio0.05__seed0.json" not in text


def test_the_audit_is_read_against_the_vanilla_model_without_a_reference(tmp_path):
    def audit(auc, probe):
        return [{"attack": "membership", "metric": "AUC loss", "modality": "text", "value": auc, "direction": "down"},
                {"attack": "linear probe", "metric": "who: forget vs retain", "modality": "text", "value": probe,
                 "direction": "up"}]

    folder = ResultsFolder(tmp_path / "r", {"model": {"name": "m"}, "benchmark": {"name": "b"}})
    folder.write(record(method="vanilla", setting=REFERENCE, audit=audit(1.0, 0.5)))
    folder.write(record(audit=audit(0.5, 0.4)))
    changes = mu.results.audit_changes(mu.results.load(tmp_path / "r")).set_index("attack")
    assert changes.loc["membership", ["value", "vanilla", "change"]].tolist() == [0.5, 1.0, -0.5]
    assert changes.loc["membership", "forgetting_way"] and not changes.loc["linear probe", "forgetting_way"]
    sections = dict(mu.results.report_sections(mu.results.load(tmp_path / "r")))
    table = sections["Audit against the vanilla model (ratio 0.05)"][1][1]
    assert table.columns.tolist() == ["attack", "metric", "asked", "direction", "vanilla", "ga (default, seed 0)"]
    assert table.iloc[0].tolist() == ["membership", "AUC loss", "name", "down", 1.0, 0.5]


def test_records_carry_the_package_version(monkeypatch):
    assert mu.results.environment()["mini_unlearn"] == mu.__version__
    monkeypatch.setattr(mu._version, "VERSION", "9.9.9")
    assert mu.results.environment()["mini_unlearn"] == "9.9.9"          # read from the attribute, not looked up again


def test_an_anchor_cell_is_not_an_unlearning_run(small):
    bench, vlm, _ = small
    with pytest.raises(ValueError, match="is an anchor"):
        running.run_cell(vlm, bench, Cell("vanilla", REFERENCE, RATIO))
    with pytest.raises(ValueError, match="anchor must be one of"):
        running.anchor_cell("gold", vlm, vlm, bench, RATIO)


# ---- chapter 10's exercises ------------------------------------------------------------------------------
def test_the_gap_checker_passes_the_answer_and_fails_the_usual_slips():
    from mini_unlearn.attacks.auditing import gap_closed
    mu.checks.check_gap_closed(gap_closed)
    slips = {"the share left, not closed": lambda v, a, b: (v - b) / (a - b) if abs(b - a) >= 0.05 else float("nan"),
             "the sign flipped": lambda v, a, b: (a - v) / (b - a) if abs(b - a) >= 0.05 else float("nan"),
             "no floor (divides a tiny gap)": lambda v, a, b: (a - v) / (a - b),
             "capped at 1": lambda v, a, b: min(1.0, (a - v) / (a - b)) if abs(b - a) >= 0.05 else float("nan")}
    for slip in slips.values():
        with pytest.raises(AssertionError, match="gap_closed differs"):
            mu.checks.check_gap_closed(slip)


def test_the_rule_checker_passes_the_answer_and_fails_the_usual_slips():
    mu.checks.check_choose(tuning.choose)
    slips = {"the most forgetting, whatever it costs": lambda rows: max(range(len(rows)), key=lambda i: rows[i]["closure"]),
             "the fewest points lost": lambda rows: min(range(len(rows)), key=lambda i: rows[i]["worst_drop"]),
             "strictly under 5 points": lambda rows: tuning.choose([{**r, "worst_drop": r["worst_drop"] + 1e-9 * (
                 r["worst_drop"] == 5)} for r in rows]),
             "no tie-break on the mean": lambda rows: tuning.choose([{**r, "closure_mean": 0.0} for r in rows])}
    for slip in slips.values():
        with pytest.raises(AssertionError, match="choose differs"):
            mu.checks.check_choose(slip)


def test_the_leaderboard_spread_is_the_standard_deviation_over_seeds(tmp_path):
    def rows(forget, retain):
        return [{"split": split, "modality": modality, "task": "cloze", "metric": "accuracy", "score": value, "n": 4}
                for split, value in (("forget", forget), ("retain", retain), ("utility", 1.0))
                for modality in ("image+text", "text")]

    folder = ResultsFolder(tmp_path / "r", {"model": {"name": "m"}, "benchmark": {"name": "b"}})
    folder.write(record(method="vanilla", setting=REFERENCE, scores=rows(1.0, 1.0)))
    folder.write(record(method="retain_only", setting=REFERENCE, scores=rows(0.0, 1.0)))
    for seed, retain in enumerate((0.9, 0.8, 0.7)):
        folder.write(record(seed=seed, scores=rows(0.5, retain)))
    board = mu.results.leaderboard(mu.results.load(tmp_path / "r"))
    row = board.loc[(0.05, "ga", "default")]
    assert row[("retain_drop", "mean")] == pytest.approx(20.0) and row[("retain_drop", "std")] == pytest.approx(10.0)
    assert row[("closure", "mean")] == pytest.approx(0.5) and row[("seeds", "n")] == 3
    assert mu.results.mean_spread(board, "retain_drop", digits=1).iloc[0] == "20.0 ± 10.0"
