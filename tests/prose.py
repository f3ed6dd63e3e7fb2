"""Every number a chapter's prose states is printed or asserted by a cell of the same chapter.

The rule (CONTRIBUTING.md): a figure in a chapter's markdown (a decimal such as 0.83, a
percentage such as 3.9 %, a number in scientific notation such as 3e-5, or a count with a unit such as
80 steps or 15.5 min) must appear, written the same way, in an output or in the code of that chapter,
so a reader can see where it comes from and a re-run that changes it fails nbval or an assert. A
cross-chapter claim is asserted by a cell that reads the shipped results or models.

Two kinds of figure are exempt, and say why where they stand:

- a figure from a paper or its code: its paragraph (or table row) cites the paper (a ``{cite}`` or
  ``{cite:p}`` role, "In the paper {cite:p}`liu2025manu` …") or links the source (arxiv.org,
  github.com, doi.org);
- a figure that is a definition, not a measurement: listed in an HTML comment in the same cell,
  `<!-- not measured: 0.5 (the paper's weight) -->` (invisible in Jupyter and in the book).

The pages in book/ follow the same rule with every chapter's outputs as their evidence.

Run it on a notebook or page to list the figures that break the rule:

    .venv/bin/python tests/prose.py notebooks/05_manu.ipynb book/intro.md
"""

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
BOOK_PAGES = sorted((ROOT / "book").rglob("*.md"))

UNITS = (r"steps?|min|minutes?|s|seconds?|ms|h|hours?|GiB|GB|MiB|MB|KiB|people|persons?|profiles?|questions?"
         r"|neurons?|weights?|parameters?|params|tokens?|layers?|epochs?|cells?|tests?|rows?|×")
NUMBER = re.compile(
    r"(?<![\w.§/#-])"                        # not inside a word, a version, a section (§6.5) or a path
    r"(?P<num>\d{1,3}(?:,\d{3})+|\d+)"       # 1,082 or 1082
    r"(?P<frac>\.\d+)?"
    r"(?P<exp>e-?\d+)?"
    r"(?P<tail>\s?%|\s?(?:" + UNITS + r")\b)?"
    r"(?!\d|\.\d)"                           # not followed by more digits (a version 2.13.0)
)
CITED = re.compile(r"arxiv\.org|github\.com|doi\.org|\{cite(?::\w+)?\}`", re.IGNORECASE)   # a link or a {cite} role
EXEMPT = re.compile(r"<!--\s*not measured:(.*?)-->", re.DOTALL)
URL_OR_TAG = re.compile(r"\]\([^)]*\)|https?://\S+|<[^>]+>|\{[a-z]+(?::[a-z]+)?\}`[^`]*`|^\s*\(\S+\)=\s*$|\[\^?\w+\]", re.MULTILINE)
CODE_FENCE = re.compile(r"^```(?!\{math\}).*?^```", re.MULTILINE | re.DOTALL)   # shell commands, not claims
# names, not figures: "Exercise 5.1", "§6.2", "Python 3.10", and an exercise's time estimate
NOT_FIGURES = re.compile(r"^#+\s*[\d.]+\s|[Ee]xercises?\s+\d+(?:\.\d+)?|§\s?[\d.–-]+|Python\s+\d+\.\d+"
                         r"|^\*Difficulty:.*$", re.MULTILINE)


def _plain(number):
    return number.replace(",", "")


def figures(text):
    """The figures a markdown text states: decimals, percentages, scientific notation, counts with units.

    Plain integers without a unit (chapter 05, layer 2, three exercises) are structure, not figures.
    """
    found = []
    for m in NUMBER.finditer(text):
        if m["frac"] or m["exp"] or m["tail"]:
            found.append(m)
    return found


def _numbers_in(text):
    """Every number written in a text, as it is written (commas dropped), for looking a figure up."""
    return {_plain(m.group(0)) for m in re.finditer(r"(?<![\d.])\d[\d,]*(?:\.\d+)?(?:e-?\d+)?", text)}


def evidence_of(nb):
    """What a chapter shows: every code cell's source and every text output."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            for mime in ("text/plain", "text/markdown", "text/latex"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
    return "\n".join(parts)


def _shown(m, numbers, evidence):
    num = _plain(m["num"]) + (m["frac"] or "") + (m["exp"] or "")
    if num in numbers:
        return True
    if m["tail"] and m["tail"].strip() == "%":   # 2 % may be printed as 0.02 (or 0.020)
        value = float(num) / 100
        return any(_same(value, n) for n in numbers if n.startswith("0.") or n == "0")
    if m["exp"]:                                  # 3e-5 may be written 3e-05 or 0.00003
        return any(_same(float(num), n) for n in numbers)
    return False


def _same(value, written):
    try:
        return abs(float(written) - value) <= 1e-12 + 1e-9 * abs(value)
    except ValueError:
        return False


def paragraphs(markdown):
    """Blank-line separated blocks; a table is one block a row (each row cites its own source)."""
    for block in re.split(r"\n\s*\n", markdown):
        if block.lstrip().startswith("|"):
            yield from block.splitlines()
        else:
            yield block


def unsupported(markdown_cells, evidence):
    """(cell index, figure, context) for each figure in the prose that the evidence does not show."""
    numbers = _numbers_in(evidence)
    problems = []
    for i, source in markdown_cells:
        exempt = {_plain(x) for comment in EXEMPT.findall(source) for x in _numbers_in(comment)}
        text = EXEMPT.sub("", source)
        for block in paragraphs(CODE_FENCE.sub("", text)):
            if CITED.search(block):
                continue
            cleaned = NOT_FIGURES.sub("", URL_OR_TAG.sub(" ", block))
            for m in figures(cleaned):
                num = _plain(m["num"]) + (m["frac"] or "") + (m["exp"] or "")
                if num in exempt or _shown(m, numbers, evidence):
                    continue
                line = next((ln for ln in cleaned.splitlines() if m.group(0) in ln), cleaned)
                problems.append((i, m.group(0).strip(), line.strip()[:160]))
    return problems


def check_notebook(path):
    nb = nbformat.read(path, as_version=4)
    cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    return unsupported(cells, evidence_of(nb))


def all_chapters_evidence():
    return "\n".join(evidence_of(nbformat.read(p, as_version=4)) for p in CHAPTERS)


def check_page(path, evidence=None):
    evidence = all_chapters_evidence() if evidence is None else evidence
    return unsupported([(0, Path(path).read_text())], evidence)


def main(paths):
    evidence = None
    count = 0
    for path in paths or [*CHAPTERS, *BOOK_PAGES]:
        path = Path(path)
        if path.suffix == ".ipynb":
            problems = check_notebook(path)
        else:
            evidence = all_chapters_evidence() if evidence is None else evidence
            problems = check_page(path, evidence)
        for cell, figure, line in problems:
            print(f"{path.name} cell {cell}: {figure!r} is not printed or asserted: {line}")
        count += len(problems)
    print(f"{count} unsupported figure(s)")
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
