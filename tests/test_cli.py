"""The `mini-unlearn` command (chapter 10): run, tune, compare, report — and every bad input refused
with a one-line error before anything is loaded or written. One test re-runs a committed cell of the
leaderboard with the command and gets the committed row back."""
import dataclasses
import functools
import json
import re
import shlex
import shutil
import tomllib
from pathlib import Path

import pytest

import mini_unlearn as mu
from mini_unlearn.cli import main, split_values
from mini_unlearn.results.records import MARKER

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "mini_unlearn" / "data" / "results" / "leaderboard"
CELL = "manu__default__ratio0.05__seed0.json"


def fails(capsys, argv, message):
    assert main(argv) != 0
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "tune", "compare", "report", "exercises", "sample", "export-mllmu",
                                     "retrain"])
def test_every_subcommand_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    assert "Usage: mini-unlearn " + command in capsys.readouterr().out


def test_several_values_follow_one_option():
    assert split_values(["0.05", "0.10,0.15"], float, "--ratios") == [0.05, 0.10, 0.15]
    from click.testing import CliRunner

    from mini_unlearn import cli
    seen = {}
    cli.main_group.add_command(cli.click.Command("echo-plan", callback=lambda **k: seen.update(k), params=[
        cli.Several(["--ratios"]), cli.Several(["--seeds"]), cli.click.Option(["--out"])]))
    try:
        result = CliRunner().invoke(cli.main_group, ["echo-plan", "--ratios", "0.05", "0.1", "--seeds", "0", "1", "2",
                                                     "--out", "x"])
    finally:
        cli.main_group.commands.pop("echo-plan")
    assert result.exit_code == 0, result.output
    assert seen == {"ratios": ("0.05", "0.1"), "seeds": ("0", "1", "2"), "out": "x"}


def test_bad_input_is_refused_before_anything_loads(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(mu.models, "vanilla", lambda *a, **k: pytest.fail("loaded a model for a bad command"))
    out = str(tmp_path / "out")
    fails(capsys, ["run", "--method", "forgetful", "--out", out], "unknown method 'forgetful'")
    fails(capsys, ["compare", "--methods", "ga", "forgetful", "--out", out], "unknown method 'forgetful'")
    fails(capsys, ["run", "--method", "ga", "--set", "alpha=0.1", "--out", out], "has no hyperparameter 'alpha'")
    fails(capsys, ["run", "--method", "manu", "--set", "alpha=2", "--out", out], "alpha")
    fails(capsys, ["run", "--method", "ga", "--ratio", "1.5", "--out", out], "ratio must lie strictly between 0 and 1")
    fails(capsys, ["compare", "--ratios", "0.05", "0", "--out", out], "ratio must lie strictly between 0 and 1")
    fails(capsys, ["compare", "--seeds", "zero", "--out", out], "'zero' is not a valid int")
    fails(capsys, ["compare", "--retrain-seeds", "one", "--out", out], "'one' is not a valid int")
    fails(capsys, ["compare", "--no-default", "--out", out], "--no-default needs --tuned")
    (tmp_path / "tuned.json").write_text("{}")
    fails(capsys, ["compare", "--tuned", str(tmp_path / "tuned.json"), "--out", out], "has no 'methods' table")
    fails(capsys, ["run", "--method", "ga", "--bench", "hub:llava", "--out", out], "expected 'course' or 'mllmu:PATH'")
    (tmp_path / "existing").mkdir()
    fails(capsys, ["run", "--method", "ga", "--save", str(tmp_path / "existing"), "--out", out], "only written to a new folder")
    fails(capsys, ["report", str(tmp_path)], "not a mini_unlearn results folder")
    assert not (tmp_path / "out").exists()


def test_an_unreadable_model_folder_is_named(capsys, tmp_path):
    out = str(tmp_path / "out")
    fails(capsys, ["run", "--method", "ga", "--model", str(tmp_path / "nowhere"), "--out", out], "no such checkpoint folder")
    (tmp_path / "empty").mkdir()
    fails(capsys, ["run", "--method", "ga", "--model", str(tmp_path / "empty"), "--out", out], "cannot load a model")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_with_other_results_is_refused(capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    fails(capsys, ["run", "--method", "manu", "--out", str(tmp_path / "mine")], "is not a mini_unlearn results folder")
    other = tmp_path / "other"
    shutil.copytree(COMMITTED, other, ignore=shutil.ignore_patterns("runs", "*.csv", "report"))
    marker = json.loads((other / MARKER).read_text())
    marker["identity"]["model"] = {"name": "someone-else", "key": "0"}
    (other / MARKER).write_text(json.dumps(marker))
    fails(capsys, ["run", "--method", "manu", "--out", str(other)], "holds results of another model or benchmark")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_command_reproduces_a_committed_cell_and_resumes(capsys, tmp_path, monkeypatch):
    out = tmp_path / "results"
    assert main(["run", "--method", "manu", "--ratio", "0.05", "--seed", "0", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in (CELL, "vanilla__reference__ratio0.05__seed0.json", "retain_only__reference__ratio0.05__seed0.json"):
        mine, committed = (json.loads((folder / "runs" / name).read_text()) for folder in (out, COMMITTED))
        assert mine["scores"] == committed["scores"], name        # the committed row, to the 6th decimal
        assert mine["config"] == committed["config"] and mine["identity"] == committed["identity"]
    from mini_unlearn.results import sweep
    for module, name in ((mu.results, "anchor_cell"), (mu.results, "run_cell"), (sweep, "anchor_cell"),
                         (sweep, "run_cell")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a finished cell ran again"))
    assert main(["run", "--method", "manu", "--out", str(out)]) == 0
    assert "already in" in capsys.readouterr().out
    assert main(["compare", "--methods", "manu", "--ratios", "0.05", "--seeds", "0", "--out", str(out)]) == 0
    assert "3 cells" in capsys.readouterr().out                     # read back, not recomputed
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "report.md").is_file() and (out / "report" / "pareto-0.05.png").is_file()


def test_tune_reproduces_the_committed_settings_and_resumes(capsys, tmp_path, monkeypatch):
    from mini_unlearn.results import tuning
    committed = COMMITTED.parent / "tuning"
    from mini_unlearn.methods import base
    two = dataclasses.replace(base.get("manu"), grid={"alpha": tuning.GRIDS["manu"]["alpha"][:2]})   # two of six
    monkeypatch.setitem(base._REGISTRY, "manu", two)
    out = tmp_path / "tuning"
    assert main(["tune", "--methods", "manu", "--out", str(out)]) == 0
    assert "manu: {'alpha'" in capsys.readouterr().out
    for index in (0, 1):
        name = f"manu__candidate{index}__ratio0.05__seed0.json"
        mine, theirs = (json.loads((folder / "runs" / name).read_text()) for folder in (out, committed))
        assert mine["scores"] == theirs["scores"] and mine["overrides"] == theirs["overrides"], name
    chosen = json.loads((out / "tuned.json").read_text())["methods"]["manu"]
    assert chosen in tuning.candidates("manu")
    monkeypatch.setattr(tuning, "_run_candidate", lambda *a, **k: pytest.fail("a finished setting ran again"))
    assert main(["tune", "--methods", "manu", "--out", str(out)]) == 0
    assert json.loads((out / "tuned.json").read_text())["methods"]["manu"] == chosen


def test_model_planted_is_the_planted_model_and_its_reference_the_retain_only_model_at_its_ratio(capsys):
    from mini_unlearn.cli import load_inputs, retain_only_for
    from mini_unlearn.models.planting import planted_key
    assert main(["compare", "--help"]) == 0
    assert "'planted'" in capsys.readouterr().out
    vlm, bench = load_inputs("planted", "tiny", "course", "cpu")
    assert vlm.card["cache_key"] == planted_key(bench) and vlm.card["cache_key"]["kind"] == "planted"
    assert mu.models.planted_neurons(vlm)                               # the ground truth rides along
    never = retain_only_for(vlm, bench, None, "cpu", [0.05])
    assert never is not None
    reference = never(0.05)
    assert reference.card["cache_key"] == mu.models.retain_only_key(bench, 0.05) == vlm.card["cache_key"]["base"]


@pytest.mark.parametrize("argv, option", [
    (["compare", "--methods", "manu", "--ratios", "0.05", "0.10"], "--ratios"),
    (["run", "--method", "manu", "--ratio", "0.15"], "--ratio"),
])
def test_the_planted_model_refuses_another_ratio_before_anything_runs(capsys, tmp_path, monkeypatch, argv, option):
    from mini_unlearn.results import sweep
    for module, name in ((mu.results, "anchor_cell"), (mu.results, "run_cell"), (sweep, "anchor_cell"),
                         (sweep, "run_cell"), (mu.models, "retain_only")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("ran something for a refused ratio"))
    out = tmp_path / "out"
    assert main([*argv, "--model", "planted", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"Invalid value for {option}" in error and "ratio 0.05 only" in error and f"{option} 0.05" in error
    assert not out.exists()


def test_a_model_without_a_reference_gets_a_report_and_the_command_that_adds_one(capsys, tmp_path, monkeypatch,
                                                                                  bench, make_vlm):
    """A researcher's checkpoint (here an untrained tiny model, as `--model` would load it) and no retain-only
    model: `report` gives what needs none and says how to add it; the command it prints records the anchor
    and reads the finished cell back, and the next report has the closure columns."""
    from mini_unlearn import cli
    from mini_unlearn.results import running
    vlm, other = make_vlm(bench), make_vlm(bench, seed=1)
    monkeypatch.setattr(cli, "load_inputs", lambda *args: (vlm, bench))
    monkeypatch.setattr(running, "evaluate", functools.partial(running.evaluate, max_new_tokens=3))   # untrained: short
    out = tmp_path / "mine"
    assert main(["run", "--method", "ga", "--set", "steps=1", "--set", "batch_size=2", "--ratio", "0.25",
                 "--out", str(out)]) == 0
    assert "no retain-only model (--reference)" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "no retain-only model at ratio 0.25" in capsys.readouterr().out
    text = (out / "report" / "report.md").read_text()
    assert "## Changes against the vanilla model" in text and "| closure (weakest) |" not in text
    command = text.split("```bash\n")[1].split("```")[0].replace("\\\n", " ").splitlines()
    argv = shlex.split(command[0])
    assert argv[:4] == ["mini-unlearn", "run", "--model", "YOUR_MODEL"] and command[1] == f"mini-unlearn report {out}"

    monkeypatch.setattr(cli, "retain_only_for", lambda *args: (lambda ratio: other))      # --reference loads it
    monkeypatch.setattr(mu.results, "run_cell", lambda *a, **k: pytest.fail("a finished cell ran again"))
    assert main(argv[1:]) == 0
    assert "ga__custom__ratio0.25__seed0: already in" in capsys.readouterr().out
    assert (out / "runs" / "retain_only__reference__ratio0.25__seed0.json").is_file()
    assert main(["report", str(out)]) == 0
    assert "no retain-only model" not in capsys.readouterr().out
    text = (out / "report" / "report.md").read_text()
    assert "| closure (weakest) |" in text and "Left out" not in text and (out / "report" / "pareto-0.25.png").is_file()


def test_report_on_committed_cells_without_their_reference(capsys, tmp_path):
    out = tmp_path / "mine"
    shutil.copytree(COMMITTED, out, ignore=shutil.ignore_patterns("runs", "*.csv", "report"))
    (out / "runs").mkdir()
    for name in (CELL, "vanilla__reference__ratio0.05__seed0.json"):
        shutil.copy(COMMITTED / "runs" / name, out / "runs" / name)
    assert main(["report", str(out)]) == 0
    assert "no retain-only model at ratio 0.05" in capsys.readouterr().out
    cells = mu.results.cell_table(mu.results.load(COMMITTED)).set_index(["method", "setting", "ratio", "seed"])
    manu = cells.loc[("manu", "default", 0.05, 0)]
    row = "| 0.05 | manu | default |"
    line = next(line for line in (out / "report" / "report.md").read_text().splitlines()
                if line.startswith(row) and "±" in line)
    assert f"{manu['retain_drop']:.1f} ± 0.0 | {manu['utility_drop']:.1f} ± 0.0 |" in line    # the committed points lost


# ---- one version number ----------------------------------------------------------------------------------
def test_the_version_is_pyprojects_and_the_command_prints_it(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert mu.__version__ == version
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"mini-unlearn {version}\n"
    literal = re.compile(r"[\"']" + re.escape(version) + r"[\"']")
    copies = [str(p.relative_to(ROOT)) for p in (ROOT / "mini_unlearn").rglob("*.py") if literal.search(p.read_text())]
    assert copies == []                                        # written down once: in pyproject.toml


def test_a_source_tree_that_was_never_installed_reads_its_pyproject(tmp_path, monkeypatch):
    from importlib.metadata import PackageNotFoundError

    from mini_unlearn import _version

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(_version, "version", not_installed)
    assert _version.package_version() == mu.__version__         # this checkout's pyproject.toml
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[build-system]\nrequires = []\n\n[project]\nname = "mini_unlearn"\nversion = "2.3.4"\n\n'
                         '[tool.other]\nversion = "9"\n')
    monkeypatch.setattr(_version, "PYPROJECT", pyproject)
    assert _version.package_version() == "2.3.4"
    pyproject.write_text('[project]\nname = "someone_else"\nversion = "2.3.4"\n')
    assert _version.package_version() == _version.UNKNOWN == "0+unknown"
    monkeypatch.setattr(_version, "PYPROJECT", tmp_path / "nowhere.toml")
    assert _version.package_version() == "0+unknown"
