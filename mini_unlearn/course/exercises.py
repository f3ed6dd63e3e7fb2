"""Exercise editions of the chapter notebooks, generated from the solution editions.

The committed chapter notebook (`notebooks/NN_name.ipynb`) is the solution edition, executed. Its
exercise edition (`notebooks/exercises/NN_name.ipynb`) is generated from it: every answer becomes a
stub and every output is cleared. Regenerate with `mini-unlearn exercises` (or
`python3 course.py exercises`); a test fails when a committed exercise edition is stale.

The convention of an exercise
-----------------------------
1. A markdown cell says what to build, how hard it is, how long it should take, and gives hints.
2. The exercise cell defines ONE function. Its answer lies between nbgrader's markers::

       def forget_mask(labels, forget_ids):
           ### BEGIN SOLUTION
           return torch.isin(labels, forget_ids)
           ### END SOLUTION

   In the exercise edition the region becomes, at the marker's indentation::

       def forget_mask(labels, forget_ids):
           # YOUR CODE HERE
           raise NotImplementedError()

3. The NEXT code cell checks it: `mu.checks.check_forget_mask(forget_mask)`. A checker compares the
   function with the package on small seeded cases, raises AssertionError on a wrong answer and
   prints one fixed success line otherwise.
4. The exercise cell and its check cell run on their own after `import mini_unlearn as mu`: the
   exercise cell imports what it uses. The tests run each pair in a fresh namespace, with the
   solution (the checker must pass) and with the stub (the checker must raise).

Because the markers are nbgrader's, a teacher can also run `nbgrader generate_assignment` on the
solution edition.

A learner who skips an exercise can still run the chapter: in the exercise edition only the check cells
fail, and a method chapter's experiment that runs on the learner's function (`mu.checks.use`) runs on the
package's instead. `python3 course.py exercises --run` executes the exercise editions, stubs and all,
and reports any other failure (:func:`edition_problems`).
"""

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from .checks.plug import FELL_BACK

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
CHECK_CALL = re.compile(r"\bchecks\.(check_\w+)\s*\(")
USE_CALL = re.compile(r"\bchecks\.use\s*\(")


class MarkerError(ValueError):
    """A code cell whose solution markers do not pair up."""


def strip_solutions(source, where="cell"):
    """Replace every marked solution region of a cell's source by the stub."""
    out, begin_line = [], None
    for n, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line is not None:
                raise MarkerError(f"{where}: line {n} opens '{BEGIN}' again before the "
                                  f"'{END}' of line {begin_line}")
            begin_line = n
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + stub for stub in STUB]
        elif marker == END:
            if begin_line is None:
                raise MarkerError(f"{where}: line {n} has '{END}' without a '{BEGIN}' before it")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise MarkerError(f"{where}: '{BEGIN}' on line {begin_line} has no '{END}'")
    return "\n".join(out)


def has_solution(source):
    return any(line.strip() == BEGIN for line in source.split("\n"))


@dataclass
class Exercise:
    """One exercise of a notebook: the cell with the answer and the cell that checks it."""
    notebook: str
    cell: int            # index of the exercise cell in nb.cells
    solution: str        # source of the exercise cell, answer included
    stub: str            # the same cell as the exercise edition has it
    check: str           # source of the next code cell, which calls mu.checks.check_<name>(fn)
    checker: str         # "check_<name>"


def find_exercises(nb, name="notebook"):
    """The exercises of a notebook, in order. Raises MarkerError if one breaks the convention."""
    cells = nb.cells
    exercises = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not has_solution(cell.source):
            continue
        where = f"{name}, cell {i}"
        stub = strip_solutions(cell.source, where)
        nxt = next((c for c in cells[i + 1:] if c.cell_type == "code"), None)
        found = CHECK_CALL.search(nxt.source) if nxt is not None else None
        if found is None:
            raise MarkerError(f"{where}: the next code cell must call mu.checks.check_<name>(fn)")
        exercises.append(Exercise(name, i, cell.source, stub, nxt.source, found.group(1)))
    return exercises


def exercise_edition(nb, name="notebook"):
    """A copy of a solution-edition notebook with stubs for answers and no outputs."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source, f"{name}, cell {i}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def generate_exercise_notebook(src, dst):
    """Write the exercise edition of the notebook `src` to `dst`."""
    import nbformat

    src, dst = Path(src), Path(dst)
    nb = nbformat.read(src, as_version=4)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(exercise_edition(nb, src.name), dst)


def chapter_notebooks(notebooks_dir):
    return sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))


def generate_all(notebooks_dir="notebooks", check=False):
    """Regenerate `<notebooks_dir>/exercises/` from every chapter notebook.

    Returns the exercise editions that changed (written, or with check=True only listed),
    including editions whose chapter no longer exists (removed, or listed).
    """
    import tempfile

    notebooks_dir = Path(notebooks_dir)
    out_dir = notebooks_dir / "exercises"
    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in chapter_notebooks(notebooks_dir):
            fresh, dst = Path(tmp) / src.name, out_dir / src.name
            generate_exercise_notebook(src, fresh)
            if not dst.exists() or dst.read_bytes() != fresh.read_bytes():
                changed.append(dst)
                if not check:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(fresh.read_bytes())
    chapters = {src.name for src in chapter_notebooks(notebooks_dir)}
    for orphan in sorted(out_dir.glob("*.ipynb")):
        if orphan.name not in chapters:
            changed.append(orphan)
            if not check:
                orphan.unlink()
    return changed


def _errors(cell) -> list[str]:
    return [output.get("ename", "") for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def edition_problems(nb, name: str = "notebook") -> list[str]:
    """What went wrong in an exercise edition executed with its stubs (``allow_errors``): [] when only the
    check cells failed (AssertionError or NotImplementedError, as a stub makes them), and every cell that
    runs an experiment on a learner's function (``mu.checks.use``) said it ran the package's instead.
    A cell tagged ``raises-exception`` (a chapter showing an error on purpose) may fail."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = _errors(cell)
        is_check = CHECK_CALL.search(cell.source) is not None and not USE_CALL.search(cell.source)
        allowed = ({"AssertionError", "NotImplementedError"} if is_check else set())
        if "raises-exception" in cell.metadata.get("tags", []):
            allowed = set(errors)
        for error in errors:
            if error not in allowed:
                problems.append(f"{name}, cell {i}: {error} in a cell that must run without the learner's answers")
        if USE_CALL.search(cell.source) and not errors and FELL_BACK not in _text(cell):
            problems.append(f"{name}, cell {i}: runs on a learner's function, but did not fall back to the "
                            "package's when the stub failed its check")
    return problems


def run_edition(path, cwd, timeout: int = 900) -> list[str]:
    """Execute the exercise edition at ``path`` (not written back) in ``cwd``; :func:`edition_problems`."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=True, record_timing=False,
                   store_widget_state=False, resources={"metadata": {"path": str(cwd)}}).execute()
    return edition_problems(nb, Path(path).name)


def main(argv: list[str]) -> int:
    """``main([EDITION, CWD])``: :func:`run_edition`, its problems printed; 1 if any (course.py exercises --run)."""
    found = run_edition(argv[0], argv[1])
    print("\n".join(found) or f"{Path(argv[0]).name}: every cell but the checks ran; the experiments fell back")
    return 1 if found else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
