"""The book renders its formulas without a network: MathJax is served from the book itself.

The book is built as `python3 course.py book --no-execute` and the book workflow builds it, with course.py's
BOOK_BUILD_ARGS (every page; a warning fails the build; no execution: the chapters are committed
executed), into a temporary folder. Every page with math must load MathJax from ``_static/``, and in
headless Chromium (Debian's ``chromium``; the test is skipped without it), on a network-less ``file://``
page, every formula of chapter 05 must come out typeset (a ``mjx-container`` each) with no raw ``\\(``
TeX left.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import course_py

ROOT = Path(__file__).resolve().parents[1]
MATH_PAGE = "notebooks/05_manu.html"   # a chapter full of formulas, inline and display
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MATH_SPAN = re.compile(r'<(?:span|div) class="math notranslate nohighlight">')


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    course = course_py()
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(jupyter_book), *course.BOOK_BUILD_ARGS, "--path-output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / course.BOOK_HTML


def test_course_py_builds_the_book_with_the_same_arguments(monkeypatch, tmp_path):
    """`course.py book --no-execute` runs jupyter-book with BOOK_BUILD_ARGS, the list the fixture uses."""
    import argparse

    course = course_py()
    ran = []
    monkeypatch.setattr(course, "ensure_venv", lambda: None)
    monkeypatch.setattr(course, "run", lambda cmd: ran.append([str(c) for c in cmd]))
    monkeypatch.setattr(course, "ROOT", tmp_path)
    (tmp_path / course.BOOK_HTML).mkdir(parents=True)
    (tmp_path / course.BOOK_HTML / "index.html").write_text("<html></html>")
    course.cmd_book(argparse.Namespace(no_execute=True), [])
    assert ran == [[str(course.VENV / "bin" / "jupyter-book"), *course.BOOK_BUILD_ARGS]]
    assert course.BOOK_BUILD_ARGS == ["build", ".", "--all", "-W", "--keep-going"]


def test_every_page_with_math_loads_mathjax_from_the_book(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    pages = [p for p in built_book.rglob("*.html") if MATH_SPAN.search(p.read_text(encoding="utf-8"))]
    assert len(pages) >= 8, f"only {len(pages)} pages with math: is dollarmath still on?"
    for page in pages:
        scripts = re.findall(r'<script[^>]*src="([^"]*(?:mathjax|MathJax)[^"]*)"', page.read_text(encoding="utf-8"))
        assert scripts, f"{page.relative_to(built_book)} has math but loads no MathJax"
        for src in scripts:
            assert "://" not in src and (page.parent / src).resolve().is_file(), \
                f"{page.relative_to(built_book)} loads MathJax from {src}, not from the book's _static"


def test_formulas_are_typeset_offline_in_headless_chromium(built_book, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    page = built_book / MATH_PAGE
    expected = len(MATH_SPAN.findall(page.read_text(encoding="utf-8")))
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    dom = done.stdout
    assert "</html>" in dom, f"chromium returned no page (exit {done.returncode}): {done.stderr[-2000:]}"
    typeset = dom.count("<mjx-container")
    assert expected >= 20 and typeset >= expected, f"{typeset} of {expected} formulas typeset"
    assert "\\(" not in re.sub(r"<pre.*?</pre>", "", dom, flags=re.DOTALL), "raw TeX left on the page"
