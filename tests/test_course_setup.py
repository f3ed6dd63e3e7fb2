"""The two-command setup stays what the README promises."""

import re
from pathlib import Path

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
