"""Printed summaries wrap at the book's column; lines that fit print unchanged."""

import mini_unlearn as mu
from mini_unlearn.models.train import TrainConfig
from mini_unlearn.text import COLUMN, fit


def test_a_long_line_wraps_at_spaces_with_a_hanging_indent():
    line = "Summary(" + ", ".join(f"name{i}=value{i}" for i in range(20)) + ")"
    wrapped = fit(line).split("\n")
    assert len(wrapped) > 1 and all(len(part) <= COLUMN for part in wrapped)
    assert all(part.startswith("    ") for part in wrapped[1:])
    assert " ".join(part.strip() for part in wrapped) == line


def test_lines_that_fit_and_indented_lines_keep_their_shape():
    table = "method  forget  retain\nga        0.25    0.98"
    assert fit(table) == table
    wrapped = fit("  " + "word " * 30).split("\n")
    assert wrapped[1].startswith("      ") and all(len(part) <= COLUMN for part in wrapped)


def test_the_package_summaries_fit_the_column():
    bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
    for shown in (repr(bench), repr(bench.split("forget", ratio=0.05)), repr(TrainConfig(lr=3e-4))):
        assert all(len(line) <= COLUMN for line in shown.split("\n")), shown
