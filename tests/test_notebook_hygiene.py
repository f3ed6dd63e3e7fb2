"""The chapter notebooks are committed executed, in order, and carry no copy of the package.

nbval compares only cells that have stored outputs, so a notebook saved half-run would make strict
nbval silently lax: these tests catch that, and the other ways a notebook drifts from the package.
"""

import ast
import json
import importlib
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

import mini_unlearn
from mini_unlearn.course.exercises import STUB, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
by_name = pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def python_of(source):
    """A code cell's source as plain Python: IPython syntax (magics, !shell) converted."""
    return TransformerManager().transform_cell(source)


def public_names():
    """Every public name of mini_unlearn and of its subpackages."""
    names = {n for n in dir(mini_unlearn) if not n.startswith("_")}
    for info in pkgutil.walk_packages(mini_unlearn.__path__, "mini_unlearn."):
        if info.ispkg:
            sub = importlib.import_module(info.name)
            names |= {n for n in dir(sub) if not n.startswith("_")}
    return names


@by_name
def test_kernelspec_is_python3(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@by_name
def test_every_code_cell_was_executed_in_order(path):
    counts = [c.execution_count for c in code_cells(path) if c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), \
        f"execution counts {counts}: re-run the notebook top to bottom (python3 course.py execute)"


@by_name
def test_errors_only_in_cells_tagged_raises_exception(path):
    for i, cell in enumerate(code_cells(path)):
        tagged = "raises-exception" in cell.metadata.get("tags", [])
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if tagged:
            assert errors, f"code cell {i} is tagged raises-exception but raised nothing"
        else:
            assert not errors, f"code cell {i} raised {errors[0].ename}: {errors[0].evalue}"


MACHINE_SPECIFIC = re.compile(r"/(?:work|home|tmp|root|Users)/[^\s'\"]*|site-packages")


@by_name
def test_outputs_hold_no_machine_specific_paths(path):
    """A stored traceback or warning with this checkout's path differs on every other machine."""
    for i, cell in enumerate(code_cells(path)):
        found = MACHINE_SPECIFIC.search(json.dumps(cell.get("outputs", [])))
        assert not found, f"code cell {i} shows the machine-specific path {found.group()!r}"


@by_name
def test_notebook_asserts_what_it_teaches(path):
    trees = [ast.parse(python_of(c.source)) for c in code_cells(path)]
    assert any(isinstance(node, ast.Assert) for tree in trees for node in ast.walk(tree)), \
        f"{path.name} has no assert: check the qualitative result the chapter teaches"


@by_name
def test_no_copy_of_the_package_in_the_notebook(path):
    """No def/class of a public mini_unlearn name, except an exercise's own function (the def
    that holds a solution region; a checker compares it with the package)."""
    public = public_names()
    for i, cell in enumerate(code_cells(path)):
        source = python_of(strip_solutions(cell.source, f"{path.name}, cell {i}"))
        lines = source.split("\n")
        stub_lines = {n for n, line in enumerate(lines, start=1) if line.strip() == STUB[0]}
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            is_exercise = any(node.lineno <= n <= node.end_lineno for n in stub_lines)
            assert is_exercise or node.name not in public, (
                f"{path.name}, code cell {i} defines `{node.name}`, a public name of mini_unlearn: "
                "import it from the package (mu.show_source shows its code) instead of a copy")


def toc_files():
    """The files named in _toc.yml (root and every `file:` entry)."""
    toc = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)\s*$", toc, re.MULTILINE)


def test_toc_lists_existing_files_and_every_chapter():
    listed = toc_files()
    for entry in listed:
        candidates = [ROOT / entry] + [ROOT / (entry + ext) for ext in (".md", ".ipynb")]
        assert any(p.is_file() for p in candidates), f"_toc.yml names {entry}, which does not exist"
    for chapter in CHAPTERS:
        entry = chapter.relative_to(ROOT).with_suffix("").as_posix()
        assert entry in listed or entry + ".ipynb" in listed, f"{chapter.name} is not in _toc.yml"


NOT_CHECKED_TAGS = ("nbval-ignore-output", "nbval-skip")


def unexplained_unchecked_cells(cells):
    """Indices of code cells that nbval does not compare (tagged) and whose source gives no reason (a comment)."""
    return [i for i, cell in enumerate(cells)
            if cell.cell_type == "code" and set(cell.metadata.get("tags", [])) & set(NOT_CHECKED_TAGS)
            and "#" not in cell.source]


@by_name
def test_a_cell_nbval_does_not_compare_says_why(path):
    cells = nbformat.read(path, as_version=4).cells
    assert not unexplained_unchecked_cells(cells), (
        f"{path.name}: cells {unexplained_unchecked_cells(cells)} are tagged {NOT_CHECKED_TAGS} without a comment "
        "saying why their output cannot be compared")


def test_the_reason_check_sees_a_bare_tag():
    bare = nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["nbval-ignore-output"]})
    explained = nbformat.v4.new_code_cell("print(1)  # a timing", metadata={"tags": ["nbval-ignore-output"]})
    assert unexplained_unchecked_cells([bare, explained, nbformat.v4.new_code_cell("print(2)")]) == [0]
