"""The chapters as nbgrader assignments: release them to a class, autograde what comes back.

A teacher's course directory is nbgrader's::

    COURSE/nbgrader_config.py                        written here (timeouts, the stub)
    COURSE/source/<chapter>/<chapter>.ipynb          the solution edition, with nbgrader's cell metadata
    COURSE/release/<chapter>/<chapter>.ipynb         what the students get (``nbgrader generate_assignment``)
    COURSE/submitted/<student>/<chapter>/…           what a student hands in
    COURSE/autograded/<student>/<chapter>/…          executed and graded (``nbgrader autograde``)
    COURSE/gradebook.db                              the scores

:func:`assignment_source` marks each exercise of a chapter (:mod:`mini_unlearn.course.exercises`): the
exercise cell becomes an nbgrader *solution* cell (its ``### BEGIN SOLUTION`` region is replaced by
the stub in the release), and the cell that calls its checker becomes a read-only *autograded test*
worth as many points as the exercise has ● of difficulty. A checker raises ``AssertionError`` on a
wrong answer, so nbgrader gives that cell's points only to an answer that matches the package.

From a shell (the ``classroom`` extra installs nbgrader)::

    mini-unlearn classroom release COURSE [CHAPTER ...]            # every chapter by default
    mini-unlearn classroom autograde COURSE CHAPTER NOTEBOOK --student NAME
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .exercises import chapter_notebooks, find_exercises

SCHEMA_VERSION = 3
CONFIG = '''\
# nbgrader configuration for the mini_unlearn chapters (written by mini_unlearn.course.classroom).
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.Execute.timeout = 900            # a chapter runs in at most 3 minutes on 2 CPU cores
c.Execute.allow_errors = True      # a failing check costs its points, not the rest of the notebook
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
'''
DIFFICULTY = re.compile(r"Difficulty:\s*([●○ ]+)")


class ClassroomError(RuntimeError):
    """nbgrader failed, or a course directory is not what a command expects."""


@dataclass(frozen=True)
class Grade:
    """One student's score on one chapter."""
    chapter: str
    student: str
    score: float
    max_score: float

    def __str__(self) -> str:
        return f"{self.student} on {self.chapter}: {self.score:g} / {self.max_score:g}"


def chapter_name(path: str | Path) -> str:
    """The assignment name of a chapter notebook: its file name without ``.ipynb``."""
    return Path(path).stem


def points_of(nb, exercise_cell: int) -> int:
    """The points of an exercise: the ● of the ``Difficulty:`` line in the markdown above it (1 if none)."""
    for cell in reversed(nb.cells[:exercise_cell]):
        if cell.cell_type == "markdown":
            found = DIFFICULTY.search(cell.source)
            return max(1, found.group(1).count("●")) if found else 1
    return 1


EXERCISE_TITLE = re.compile(r"^#+\s*(Exercise[^\n]*)", re.MULTILINE)


def exercise_title(nb, exercise_cell: int) -> str:
    """The ``Exercise N.k — title`` heading of the markdown above an exercise ("" if none)."""
    for cell in reversed(nb.cells[:exercise_cell]):
        if cell.cell_type == "markdown":
            found = EXERCISE_TITLE.search(cell.source)
            if found:
                return found.group(1).strip()
    return ""


def exercise_table(notebooks_dir: str | Path = "notebooks") -> list[dict]:
    """One row per exercise of every chapter: chapter, title, checker, points, and for the ●●● exercises the
    package function the chapter's experiment then runs as the learner's (``runs``; what a teacher plans with)."""
    import nbformat

    from . import checks

    rows = []
    for path in chapter_notebooks(notebooks_dir):
        nb = nbformat.read(path, as_version=4)
        for ex in find_exercises(nb, path.name):
            plug = getattr(getattr(checks, ex.checker, None), "plug", None)
            rows.append({"chapter": chapter_name(path), "title": exercise_title(nb, ex.cell),
                         "checker": ex.checker, "points": points_of(nb, ex.cell),
                         "runs": plug.replace(":", ".").removeprefix("mini_unlearn.") if plug else ""})
    return rows


def exercise_table_markdown(notebooks_dir: str | Path = "notebooks") -> str:
    """:func:`exercise_table` as the Markdown table the book's teaching page shows."""
    lines = ["| Chapter | Exercise | Checker | Points | The chapter then runs it as |", "|---|---|---|---|---|"]
    for row in exercise_table(notebooks_dir):
        title = row["title"].replace("|", "\\|")
        runs = f"`{row['runs']}`" if row["runs"] else ""
        lines.append(f"| {row['chapter']} | {title} | `mu.checks.{row['checker']}` | {row['points']} | {runs} |")
    return "\n".join(lines) + "\n"


def assignment_source(nb, name: str = "notebook"):
    """A copy of a chapter notebook with nbgrader's metadata on its exercises and their checks."""
    nb = copy.deepcopy(nb)
    for ex in find_exercises(nb, name):
        check = next(i for i in range(ex.cell + 1, len(nb.cells)) if nb.cells[i].cell_type == "code")
        task = ex.checker.removeprefix("check_")
        nb.cells[ex.cell].metadata["nbgrader"] = {
            "grade": False, "solution": True, "locked": False, "grade_id": f"{task}-answer",
            "schema_version": SCHEMA_VERSION}
        nb.cells[check].metadata["nbgrader"] = {
            "grade": True, "solution": False, "locked": True, "grade_id": ex.checker,
            "points": points_of(nb, ex.cell), "schema_version": SCHEMA_VERSION}
    return nb


def _scripts_on_path() -> dict:
    """The environment with this Python's scripts folder first on PATH: nbgrader runs ``alembic`` from PATH."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def _nbgrader(course: Path, *args: str) -> None:
    command = [sys.executable, "-m", "nbgrader", *args, "--force"]
    done = subprocess.run(command, cwd=course, capture_output=True, text=True, check=False, env=_scripts_on_path())
    if done.returncode != 0:
        raise ClassroomError(f"`nbgrader {' '.join(args)}` failed in {course} (exit {done.returncode}):\n"
                             f"{done.stdout[-2000:]}{done.stderr[-4000:]}")


def _course_dir(course: str | Path) -> Path:
    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course)))
    return course


def release(course: str | Path, chapters=None, notebooks_dir: str | Path = "notebooks") -> list[Path]:
    """Release chapters as nbgrader assignments into ``course``; return the student notebooks.

    ``chapters``: chapter notebooks or names (``"05_manu"``, ``"05"``); all chapters by default.
    """
    import nbformat

    course = _course_dir(course)
    released = []
    for path in select_chapters(chapters, notebooks_dir):
        name = chapter_name(path)
        source = course / "source" / name / path.name
        source.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(assignment_source(nbformat.read(path, as_version=4), path.name), source)
        _nbgrader(course, "generate_assignment", name)
        released.append(course / "release" / name / path.name)
    return released


def select_chapters(chapters, notebooks_dir: str | Path = "notebooks") -> list[Path]:
    """Chapter notebooks by path or by name (``"05_manu"``, ``"05"``); every chapter if ``chapters`` is None."""
    every = chapter_notebooks(notebooks_dir)
    if not every:
        raise ClassroomError(f"no chapter notebooks (NN_name.ipynb) in {Path(notebooks_dir).resolve()}")
    if chapters is None:
        return every
    if isinstance(chapters, (str, Path)):
        chapters = [chapters]
    chosen = []
    for wanted in chapters:
        stem = chapter_name(wanted)
        found = [p for p in every if p.stem == stem or p.stem.split("_")[0] == stem]
        if len(found) != 1:
            raise ClassroomError(f"chapters: no single chapter named {wanted!r}; the chapters are "
                                 f"{[p.stem for p in every]}")
        chosen += found
    return chosen


def autograde(course: str | Path, chapter: str, submitted: str | Path, student: str) -> Grade:
    """Autograde a student's copy of a released chapter; return the score nbgrader's gradebook holds."""
    from nbgrader.api import Gradebook

    course = Path(course).resolve()
    released = sorted((course / "release" / chapter).glob("*.ipynb"))
    if not released:
        raise ClassroomError(f"chapter: {chapter!r} was not released in {course} "
                             f"(run `mini-unlearn classroom release {course} {chapter}` first)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", student):
        raise ClassroomError(f"student: expected letters, digits, '.', '_' or '-', got {student!r}")
    course = _course_dir(course)
    target = course / "submitted" / student / chapter / released[0].name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(submitted, target)
    _nbgrader(course, "autograde", chapter, "--student", student)
    saved_path = os.environ.get("PATH")
    os.environ["PATH"] = _scripts_on_path()["PATH"]   # opening the gradebook runs alembic too
    try:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
            submission = gradebook.find_submission(chapter, student)
            return Grade(chapter, student, float(submission.score), float(submission.max_score))
    finally:
        if saved_path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved_path
