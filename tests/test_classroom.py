"""nbgrader assignments from the chapters: the metadata, the checks on input, and the round trip
(release a chapter, hand in the solution → full marks, hand in the stub → zero)."""
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mini_unlearn.course import classroom
from mini_unlearn.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ROUND_TRIP = "01_benchmark"   # the quickest chapter to execute


def exercise_notebook():
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# A chapter"),
                new_code_cell("import mini_unlearn as mu"),
                new_markdown_cell("## Exercise 1.1\n\n*Difficulty: ● ● ○ · about 10 minutes*"),
                new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
                new_markdown_cell("Checked next."),
                new_code_cell("mu.checks.check_double(double)"),
                new_code_cell("def half(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION"),
                new_code_cell("mu.checks.check_half(half)")]
    return nb


def test_assignment_source_marks_answers_and_read_only_checks_with_points():
    nb = exercise_notebook()
    marked = classroom.assignment_source(nb, "x.ipynb")
    meta = [cell.metadata.get("nbgrader") for cell in marked.cells]
    assert meta[3] == {"grade": False, "solution": True, "locked": False, "grade_id": "double-answer",
                       "schema_version": 3}
    assert meta[5] == {"grade": True, "solution": False, "locked": True, "grade_id": "check_double",
                       "points": 2, "schema_version": 3}
    assert meta[7]["points"] == 1   # no Difficulty line above it: one point
    assert [i for i, m in enumerate(meta) if m] == [3, 5, 6, 7]
    assert "nbgrader" not in nb.cells[3].metadata   # the input is not modified


def test_chapters_are_chosen_by_name_or_number_and_bad_input_is_refused(tmp_path):
    assert [p.stem for p in classroom.select_chapters(["01", "05_manu"], NOTEBOOKS)] == ["01_benchmark", "05_manu"]
    assert len(classroom.select_chapters(None, NOTEBOOKS)) == len(list(NOTEBOOKS.glob("[0-9]*.ipynb")))
    with pytest.raises(classroom.ClassroomError, match=r"no single chapter named '99'.*01_benchmark"):
        classroom.select_chapters(["99"], NOTEBOOKS)
    with pytest.raises(classroom.ClassroomError, match="no chapter notebooks"):
        classroom.select_chapters(None, tmp_path)
    with pytest.raises(classroom.ClassroomError, match="'05_manu' was not released"):
        classroom.autograde(tmp_path, "05_manu", NOTEBOOKS / "05_manu.ipynb", "ann")
    (tmp_path / "release" / "05_manu").mkdir(parents=True)
    nbformat.write(new_notebook(), tmp_path / "release" / "05_manu" / "05_manu.ipynb")
    with pytest.raises(classroom.ClassroomError, match="student: expected letters"):
        classroom.autograde(tmp_path, "05_manu", NOTEBOOKS / "05_manu.ipynb", "../ann")


def filled_in(released: Path, solution: Path, out: Path) -> Path:
    """The released notebook with every answer cell written as the solution edition has it."""
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source
               for cell in classroom.assignment_source(nbformat.read(solution, as_version=4)).cells
               if cell.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(released, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert "raise NotImplementedError()" in cell.source and "BEGIN SOLUTION" not in cell.source
            cell.source = answers.pop(grade_id)
    assert not answers, f"answers the release lacks: {sorted(answers)}"
    nbformat.write(nb, out)
    return out


def test_a_released_chapter_autogrades_to_full_marks_for_the_solution_and_zero_for_the_stub(tmp_path, capsys):
    course = tmp_path / "course"
    assert main(["classroom", "release", str(course), ROUND_TRIP[:2], "--notebooks", str(NOTEBOOKS)]) == 0
    released = course / "release" / ROUND_TRIP / f"{ROUND_TRIP}.ipynb"
    assert f"released {released}" in capsys.readouterr().out
    answer = filled_in(released, NOTEBOOKS / f"{ROUND_TRIP}.ipynb", tmp_path / "answer.ipynb")
    assert main(["classroom", "autograde", str(course), ROUND_TRIP, str(answer), "--student", "ann"]) == 0
    grade = capsys.readouterr().out.strip()
    stub = classroom.autograde(course, ROUND_TRIP, released, "bob")
    points = sum(c.metadata["nbgrader"].get("points", 0) for c in nbformat.read(
        course / "source" / ROUND_TRIP / f"{ROUND_TRIP}.ipynb", as_version=4).cells if "nbgrader" in c.metadata)
    assert points >= 2
    assert grade == f"ann on {ROUND_TRIP}: {points} / {points}"
    assert (stub.score, stub.max_score) == (0, points)


def test_the_teaching_page_lists_every_exercise_with_its_checker_and_points(capsys):
    table = classroom.exercise_table_markdown(NOTEBOOKS)
    assert len(table.strip().splitlines()) == 2 + len(classroom.exercise_table(NOTEBOOKS))
    assert main(["classroom", "table", "--notebooks", str(NOTEBOOKS)]) == 0
    assert capsys.readouterr().out == table
    page = (ROOT / "book" / "teaching.md").read_text(encoding="utf-8")
    assert table in page, "book/teaching.md: paste the output of `mini-unlearn classroom table` into it"


def test_the_table_says_which_package_function_each_hard_exercise_becomes():
    from mini_unlearn.course import checks
    rows = classroom.exercise_table(NOTEBOOKS)
    hard = [row for row in rows if row["points"] == 3]
    assert len(hard) == 6 and all(row["runs"] for row in hard)
    for row in rows:
        plug = getattr(getattr(checks, row["checker"]), "plug", None)
        assert row["runs"] == (plug.replace(":", ".").removeprefix("mini_unlearn.") if plug else "")
    assert "| `methods.gradient.ga_diff_loss` |" in classroom.exercise_table_markdown(NOTEBOOKS)
