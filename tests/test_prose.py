"""The book says only what it shows: figures in prose are printed or asserted, code fits the page,
and nothing in the repository points at a file outside it."""

import subprocess
from pathlib import Path

import nbformat
import pytest

import prose
from mini_unlearn.text import COLUMN   # what a code cell shows in the book before it scrolls

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", prose.CHAPTERS, ids=lambda p: p.name)
def test_every_figure_in_a_chapter_is_printed_or_asserted_there(path):
    problems = prose.check_notebook(path)
    assert not problems, "\n".join(f"cell {c}: {fig!r} in: {line}" for c, fig, line in problems)


@pytest.fixture(scope="module")
def evidence():
    return prose.all_chapters_evidence()


@pytest.mark.parametrize("path", prose.BOOK_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_figure_on_a_book_page_is_printed_by_a_chapter_or_cited(path, evidence):
    problems = prose.check_page(path, evidence)
    assert not problems, "\n".join(f"{fig!r} in: {line}" for _, fig, line in problems)


def test_the_prose_check_catches_a_figure_nobody_printed():
    cells = [(0, "GA forgets: the forget cloze falls to 0.17 after 80 steps and keeps 3.9 % of weights.")]
    found = [fig for _, fig, _ in prose.unsupported(cells, "print(0.17)\n0.17")]
    assert found == ["80 steps", "3.9 %"]
    assert not prose.unsupported(cells, "0.17  80  changed 3.9% of weights")


def test_a_percentage_may_be_printed_as_a_fraction_and_a_rate_in_any_notation():
    cells = [(0, "MANU prunes α = 2 % of neurons at lr 3e-5.")]
    assert not prose.unsupported(cells, "mu.unlearn(vlm, alpha=0.02, lr=3e-05)")
    assert [f for _, f, _ in prose.unsupported(cells, "alpha=0.2, lr=3e-4")] == ["2 %", "3e-5"]


def test_cited_figures_and_stated_definitions_are_exempt():
    cited = "In the paper ([arXiv:2502.15910](https://arxiv.org/abs/2502.15910)) forget falls 51.7 → 41.25."
    defined = "<!-- not measured: 0.5 (the paper's weight) -->\nBoth terms weigh 0.5."
    by_role = "In the paper {cite:p}`liu2025manu`, forget falls 51.7 → 41.25."
    assert not prose.unsupported([(0, cited), (1, defined), (2, by_role)], "")
    uncited = "In the paper forget falls 51.7 → 41.25."
    assert [f for _, f, _ in prose.unsupported([(0, uncited)], "")] == ["51.7", "41.25"]


def test_names_versions_and_commands_are_not_figures():
    text = ("## Exercise 5.1 — the RMS importance\n\n*Difficulty: ● ○ ○ · about 10 minutes*\n\n"
            "Python 3.10 or newer, torch 2.13.0 (§6.2).\n\n```bash\nmini-unlearn compare --ratios 0.05\n```")
    assert not prose.unsupported([(0, text)], "")


def _long_lines(text):
    return [line for line in text.splitlines() if len(line) > COLUMN]


def printed_text(cell):
    """What a code cell prints as text the book shows as such (a table with an HTML view is not)."""
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            yield out.text
        elif out.output_type in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/plain" in data and not ({"text/html", "image/png"} & set(data)):
                yield data["text/plain"]


@pytest.mark.parametrize("path", prose.CHAPTERS, ids=lambda p: p.name)
def test_code_and_printed_lines_fit_the_book_column(path):
    """`mu.show_source` is exempt: it shows the package's code as the package writes it."""
    wide = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        wide += [(i, "code", line) for line in _long_lines(cell.source)]
        if "show_source(" not in cell.source:
            wide += [(i, "printed", line) for text in printed_text(cell) for line in _long_lines(text)]
    assert not wide, f"{len(wide)} line(s) wider than {COLUMN} characters:\n" + "\n".join(
        f"cell {i} ({kind}, {len(line)}): {line}" for i, kind, line in wide[:15])


# -- the repository stands on its own ------------------------------------------------------------

# Files outside the repository that a page, a docstring or a comment must not send a reader to.
OUTSIDE = ["shared/", "reference/", "implementation-" + "notes", "feasibility" + ".md", "design" + ".md",
           "the issue that"]


def tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in names.splitlines():
        path = ROOT / name
        if path.suffix in {".safetensors", ".png", ".jpg", ".parquet", ".db"} or not path.is_file():
            continue
        try:
            yield path, path.read_text()
        except UnicodeDecodeError:
            continue


def test_nothing_in_the_repository_points_at_a_file_outside_it():
    found = [f"{path.relative_to(ROOT)}: {needle!r}"
             for path, text in tracked_text_files() if path != Path(__file__)   # the list itself
             for needle in OUTSIDE if needle in text]
    assert not found, "\n".join(found)
