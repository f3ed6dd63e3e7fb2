"""The exercise mechanism: stubs are generated right, committed editions are fresh, and every
checker passes on its solution and fails on its stub."""

from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mini_unlearn.course import checks
from mini_unlearn.course.exercises import (MarkerError, exercise_edition, find_exercises, generate_all,
                                    generate_exercise_notebook, strip_solutions)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))

# -----------------------------------------------------------------------------
# the generator, on a synthetic notebook

EXERCISE = '''\
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    y = 2 * x
    return y
    ### END SOLUTION'''

STUB = '''\
def double(x):
    """Twice x."""
    # YOUR CODE HERE
    raise NotImplementedError()'''


def synthetic_notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        new_markdown_cell("## Exercise: double\n\n### BEGIN SOLUTION stays in markdown"),
        new_code_cell("import math", execution_count=1),
        new_code_cell(EXERCISE, execution_count=2),
        new_code_cell("assert double(2) == 4\nprint('ok')", execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="ok\n")]),
    ]
    nb.cells[1].metadata["tags"] = ["keep-me"]
    return nb


def test_strip_solutions_keeps_the_indentation_of_the_marker():
    assert strip_solutions(EXERCISE) == STUB
    top_level = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3"
    assert strip_solutions(top_level) == "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nc = 3"
    nested = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION"
    assert strip_solutions(nested).endswith(
        "\n        # YOUR CODE HERE\n        raise NotImplementedError()")


def test_strip_solutions_leaves_cells_without_markers_alone():
    source = "x = 1\n\n# a comment\nprint(x)\n"
    assert strip_solutions(source) == source


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "has no '### END SOLUTION'"),
    ("x = 1\n### END SOLUTION", "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "opens '### BEGIN SOLUTION' again"),
], ids=["unclosed", "unopened", "reopened"])
def test_unbalanced_markers_raise_a_clear_error(source, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(source, "nb.ipynb, cell 7")
    with pytest.raises(MarkerError, match="nb.ipynb, cell 7"):
        strip_solutions(source, "nb.ipynb, cell 7")


def test_exercise_edition_stubs_answers_and_clears_outputs():
    nb = synthetic_notebook()
    ex = exercise_edition(nb)
    assert ex.cells[2].source == STUB
    for cell in ex.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    # everything else is untouched, and the input notebook is not modified
    assert ex.cells[0] == nb.cells[0]
    assert ex.cells[1].source == "import math" and ex.cells[1].metadata["tags"] == ["keep-me"]
    assert ex.cells[3].source == nb.cells[3].source
    assert nb.cells[2].source == EXERCISE and nb.cells[3].outputs


def test_generate_exercise_notebook_writes_a_valid_notebook(tmp_path):
    src, dst = tmp_path / "01_x.ipynb", tmp_path / "exercises" / "01_x.ipynb"
    nbformat.write(synthetic_notebook(), src)
    generate_exercise_notebook(src, dst)
    nb = nbformat.read(dst, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[2].source == STUB
    assert nb.metadata.kernelspec.name == "python3"


def test_generate_all_writes_checks_and_removes_orphans(tmp_path):
    nbformat.write(synthetic_notebook(), tmp_path / "01_x.ipynb")
    nbformat.write(synthetic_notebook(), tmp_path / "notes.ipynb")  # not a chapter
    assert generate_all(tmp_path, check=True) == [tmp_path / "exercises" / "01_x.ipynb"]
    assert not (tmp_path / "exercises").exists()
    assert generate_all(tmp_path) == [tmp_path / "exercises" / "01_x.ipynb"]
    assert generate_all(tmp_path, check=True) == []
    nbformat.write(synthetic_notebook(), tmp_path / "exercises" / "02_gone.ipynb")
    assert generate_all(tmp_path, check=True) == [tmp_path / "exercises" / "02_gone.ipynb"]
    generate_all(tmp_path)
    assert sorted(p.name for p in (tmp_path / "exercises").iterdir()) == ["01_x.ipynb"]


def test_find_exercises_pairs_each_exercise_with_its_checker():
    nb = synthetic_notebook()
    nb.cells[3].source = "mu.checks.check_double(double)"
    [ex] = find_exercises(nb, "01_x.ipynb")
    assert (ex.cell, ex.checker, ex.stub) == (2, "check_double", STUB)
    nb.cells[3].source = "print(double(2))"
    with pytest.raises(MarkerError, match="must call mu.checks.check_"):
        find_exercises(nb, "01_x.ipynb")

# -----------------------------------------------------------------------------
# the committed notebooks

def test_committed_exercise_editions_are_up_to_date():
    stale = generate_all(NOTEBOOKS, check=True)
    assert not stale, (f"stale exercise editions: {[str(p.relative_to(ROOT)) for p in stale]}; "
                       "run `python3 course.py exercises`")


def chapter_exercises():
    return [ex for path in CHAPTERS
            for ex in find_exercises(nbformat.read(path, as_version=4), path.name)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_has_two_to_four_exercises(path):
    found = find_exercises(nbformat.read(path, as_version=4), path.name)
    assert 2 <= len(found) <= 4, (f"{path.name} has {len(found)} exercises (code cells with '### BEGIN SOLUTION'); "
                                  "a chapter has 2 to 4, from a warm-up to its key function")
    checkers = [ex.checker for ex in found]
    assert len(set(checkers)) == len(checkers), f"{path.name} checks one function twice: {checkers}"


class _NoIPython:
    """Stands in for get_ipython() when a cell used a magic: magics do nothing here."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def run_exercise(ex, source):
    """Run `import mini_unlearn as mu`, then `source` (the exercise cell), then its check cell."""
    namespace = {"__name__": "__main__", "get_ipython": _NoIPython}
    to_python = TransformerManager().transform_cell
    exec(compile("import mini_unlearn as mu", "<import>", "exec"), namespace)
    exec(compile(to_python(source), f"<{ex.notebook} cell {ex.cell}>", "exec"), namespace)
    exec(compile(to_python(ex.check), f"<{ex.notebook} check {ex.checker}>", "exec"), namespace)


@pytest.mark.parametrize("ex", chapter_exercises(), ids=lambda ex: f"{ex.notebook}:{ex.checker}")
def test_checker_passes_on_the_solution_and_fails_on_the_stub(ex, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)
    run_exercise(ex, ex.solution)
    with pytest.raises((AssertionError, NotImplementedError)):
        run_exercise(ex, ex.stub)


def test_every_checker_is_an_exercise_of_a_chapter():
    used = {ex.checker for ex in chapter_exercises()}
    assert set(checks.all_checkers()) == used, "checkers without an exercise, or exercises without a checker"


@pytest.mark.parametrize("name, checker", sorted(checks.all_checkers().items()), ids=lambda v: v if isinstance(v, str) else "")
def test_checker_names_each_usual_slip(name, checker, monkeypatch, capsys):
    """Each checker knows at least one usual wrong answer, fails on it, and says which mistake it is."""
    monkeypatch.chdir(NOTEBOOKS)
    known = getattr(checker, "slips", ())
    assert known, f"{name} lists no usual wrong answer (decorate it with @slips(Slip(fn, says), ...))"
    for slip in known:
        with pytest.raises(AssertionError) as failed:
            checker(slip.fn)
        assert slip.says in str(failed.value), (f"{name} failed on the slip {slip.fn.__name__} without saying so:\n"
                                                f"{failed.value}")
    assert "✓" not in capsys.readouterr().out


# -----------------------------------------------------------------------------
# the exercise editions run with their stubs (python3 course.py exercises --run)

def executed(source, outputs, tags=()):
    cell = new_code_cell(source, outputs=outputs)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def error(name):
    return new_output("error", ename=name, evalue="", traceback=[])


def test_an_edition_may_fail_only_in_its_checks_and_must_fall_back():
    from mini_unlearn.course.exercises import edition_problems
    fell_back = new_output("stream", name="stdout", text="✗ your f does not pass check_f yet (…); this block runs …\n")
    cells = [executed("mu.checks.check_f(f)", [error("AssertionError")]),
             executed("mu.checks.check_g(g)", [error("NotImplementedError")]),
             executed("mu.unlearn(vlm, method='gaa')", [error("ValueError")], tags=["raises-exception"]),
             executed("with mu.checks.use(f, mu.checks.check_f):\n    run()", [fell_back])]
    assert edition_problems(new_notebook(cells=cells), "x") == []
    broken = [executed("mu.checks.check_f(f)", [error("TypeError")]),     # the checker itself broke
              executed("print(f(2))", [error("NotImplementedError")]),   # a later cell uses the stub
              executed("with mu.checks.use(f, mu.checks.check_f):\n    run()", []),   # did not fall back
              executed("with mu.checks.use(f, mu.checks.check_f):\n    run()", [error("NotImplementedError")])]
    assert [p.split(":")[0] for p in edition_problems(new_notebook(cells=broken), "x")] == [
        "x, cell 0", "x, cell 1", "x, cell 2", "x, cell 3"]
