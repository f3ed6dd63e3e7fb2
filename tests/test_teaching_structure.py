"""What every chapter does for a learner besides its exercises: it asks for a prediction before an
experiment, hides an exercise's answer behind a click, and ends with open questions."""
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from mini_unlearn.course.exercises import find_exercises

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
by_name = pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)

PREDICT = ":::{admonition} Predict, then run"
QUESTIONS = re.compile(r"^## Questions\s*$", re.MULTILINE)
NUMBERED = re.compile(r"^(\d+)\. ", re.MULTILINE)
WORKED = re.compile(r"^# A worked answer to question (\d+)", re.MULTILINE)
SHOW_SOURCE = re.compile(r"\bshow_source\((?P<args>[^\n]*)\)")


def predictions(cells):
    """Indices of the markdown cells that ask for a prediction and are followed by a code cell."""
    return [i for i, cell in enumerate(cells[:-1])
            if cell.cell_type == "markdown" and PREDICT in cell.source and cells[i + 1].cell_type == "code"]


def questions(cells):
    """(index of the ``## Questions`` cell, how many numbered questions it asks), or None."""
    found = [i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and QUESTIONS.search(cell.source)]
    if len(found) != 1:
        return None
    section = cells[found[0]].source[QUESTIONS.search(cells[found[0]].source).end():]
    return found[0], len(NUMBERED.findall(section))


def open_answers(cells, exercises):
    """Indices of cells that print an exercise's answer (show_source between its check and the next
    markdown cell) without ``collapsed=True``."""
    wrong = []
    for ex in exercises:
        after = next(i for i in range(ex.cell + 1, len(cells)) if cells[i].cell_type == "code")
        for i in range(after + 1, len(cells)):
            if cells[i].cell_type == "markdown":
                break
            calls = SHOW_SOURCE.findall(cells[i].source)
            if any("collapsed=True" not in args for args in calls):
                wrong.append(i)
    return wrong


@by_name
def test_each_chapter_asks_for_a_prediction_before_an_experiment(path):
    cells = nbformat.read(path, as_version=4).cells
    assert predictions(cells), (f"{path.name}: no markdown cell with `{PREDICT}` right before the code cell "
                                "of an experiment")


@by_name
def test_each_chapter_ends_with_two_to_four_questions(path):
    cells = nbformat.read(path, as_version=4).cells
    found = questions(cells)
    assert found is not None, f"{path.name}: one markdown cell with a `## Questions` heading, please"
    at, asked = found
    assert 2 <= asked <= 4, f"{path.name}: `## Questions` asks {asked} numbered questions; 2 to 4"
    exercises = find_exercises(nbformat.read(path, as_version=4), path.name)
    assert all(ex.cell < at for ex in exercises), f"{path.name}: the questions come after the exercises"
    headings = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert headings[-1] > at, f"{path.name}: the questions come just before the closing section, not after it"
    for i, cell in enumerate(cells):
        worked = WORKED.search(cell.source) if cell.cell_type == "code" else None
        if worked:
            assert i > at and 1 <= int(worked.group(1)) <= asked, f"{path.name}, cell {i}: answers no question"
            assert "hide-cell" in cell.metadata.get("tags", []), (
                f"{path.name}, cell {i}: a worked answer is tagged hide-cell (the book collapses it)")


@by_name
def test_an_exercise_answer_shown_by_the_package_is_collapsed(path):
    nb = nbformat.read(path, as_version=4)
    wrong = open_answers(nb.cells, find_exercises(nb, path.name))
    assert not wrong, (f"{path.name}: cells {wrong} show an exercise's answer open right after its check; "
                       "pass collapsed=True to mu.show_source")


def test_the_structure_checks_see_what_is_missing():
    exercise = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    cells = [new_markdown_cell(f"{PREDICT}\n:class: tip\nGuess.\n:::"), new_code_cell("run()"),
             new_code_cell(exercise), new_code_cell("mu.checks.check_f(f)"),
             new_code_cell("mu.show_source(mu.f)"),
             new_markdown_cell("## Questions\n\n1. One.\n2. Two.\n"), new_markdown_cell("## The end")]
    nb = nbformat.v4.new_notebook(cells=cells)
    assert predictions(cells) == [0] and questions(cells) == (5, 2)
    assert open_answers(cells, find_exercises(nb)) == [4]
    cells[4].source = "mu.show_source(mu.f, collapsed=True)"
    assert open_answers(cells, find_exercises(nb)) == []
    assert predictions(cells[1:]) == [] and questions(cells[:5]) is None
