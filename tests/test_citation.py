"""The course can be cited: CITATION.cff is valid, agrees with pyproject.toml and the README, and names
the papers the book's bibliography cites; every citation in the book has its entry in the bibliography."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tools import tool_path

ROOT = Path(__file__).resolve().parents[1]
CFF = ROOT / "CITATION.cff"
BIB = ROOT / "book" / "references.bib"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# The benchmark and the three papers the course implements: CITATION.cff's references cite each.
CORE_KEYS = ("liu2025mllmubench", "liu2025manu", "huo2025mmunlearner", "li2026mipeditor")
ROLE = re.compile(r"\{cite(?::\w+)?\}`([^`]*)`")
ARXIV = re.compile(r"arxiv\.org/abs/(\d{4}\.\d{4,5})")


@pytest.fixture(scope="module")
def cff():
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with the book extra) reads CITATION.cff")
    return yaml.safe_load(CFF.read_text())


@pytest.fixture(scope="module")
def bib():
    database = pytest.importorskip("pybtex.database", reason="pybtex (installed with the book extra) reads the .bib")
    return database.parse_file(str(BIB)).entries


def _plain(title):
    """A title without BibTeX's braces and escapes, and with single spaces, for comparing."""
    return " ".join(title.replace("{", "").replace("}", "").replace("\\", "").split())


def cited_keys():
    """Every key a {cite} role names in the chapters' markdown and the book's pages."""
    texts = [p.read_text() for p in sorted((ROOT / "book").rglob("*.md"))]
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts += ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return {key.strip() for text in texts for keys in ROLE.findall(text) for key in keys.split(",")}


def test_citation_cff_is_valid_by_cffconvert():
    done = subprocess.run([str(tool_path("cffconvert")), "--validate", "-i", str(CFF)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"cffconvert --validate failed:\n{done.stdout}{done.stderr}"


def test_citation_cff_has_the_package_version_and_licences(cff):
    assert str(cff["version"]) == PROJECT["version"], "CITATION.cff's version is not pyproject.toml's"
    assert set(cff["license"]) == set(PROJECT["license"].split(" AND ")), (
        f"CITATION.cff's licences {cff['license']} are not pyproject.toml's {PROJECT['license']!r}")


def test_citation_cff_cites_the_benchmark_and_the_three_papers_as_the_bibliography_does(cff, bib):
    cff_refs = {ARXIV.search(ref["url"])[1]: ref for ref in cff["references"]}
    for key in CORE_KEYS:
        entry = bib[key]
        arxiv = entry.fields["eprint"]
        assert arxiv in cff_refs, f"CITATION.cff's references lack {key} (arXiv:{arxiv})"
        ref = cff_refs[arxiv]
        assert _plain(ref["title"]) == _plain(entry.fields["title"]), f"{key}: the titles differ"
        assert str(ref["year"]) == entry.fields["year"], f"{key}: the years differ"
        assert [a["family-names"] for a in ref["authors"]] == [p.last_names[0] for p in entry.persons["author"]], (
            f"{key}: the authors differ")
    assert len(cff_refs) == len(CORE_KEYS), "CITATION.cff cites a work the check does not know"


def test_every_citation_in_the_book_has_an_entry_and_every_entry_is_cited(bib):
    cited = cited_keys()
    assert set(CORE_KEYS) <= cited, f"the book never cites {sorted(set(CORE_KEYS) - cited)}"
    assert not cited - set(bib), f"cited but not in book/references.bib: {sorted(cited - set(bib))}"
    assert not set(bib) - cited, f"in book/references.bib but never cited: {sorted(set(bib) - cited)}"


def test_the_readme_bibtex_entry_agrees_with_citation_cff(cff):
    readme = (ROOT / "README.md").read_text()
    entry = re.search(r"```bibtex\n(@software\{.*?\n\})\n```", readme, re.DOTALL)
    assert entry, "the README has no ```bibtex block with a @software entry"
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?$", entry[1], re.MULTILINE))
    assert fields["version"] == str(cff["version"])
    assert fields["url"] == cff["repository-code"]
    assert fields["year"] == str(cff["date-released"])[:4]
    assert _plain(fields["title"]) == _plain(cff["title"])
    assert _plain(fields["author"]) == cff["authors"][0]["name"]
