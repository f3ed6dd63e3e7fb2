"""Plain-text summaries that fit the book's code column.

A rendered chapter shows about 85 characters of a printed line before it scrolls sideways, so the
package's one-line summaries (``VLM(...)``, ``Benchmark(...)``, ``Results(...)``, configs) wrap there.
"""

import textwrap

COLUMN = 85   # characters of a printed line the book shows without scrolling


def fit(text: str, width: int = COLUMN) -> str:
    """Wrap each line of ``text`` longer than ``width`` at spaces, continuing it 4 spaces further in.

    Lines that fit are kept as they are, so tables and short summaries print unchanged.
    """
    lines = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")))
        lines += textwrap.wrap(line, width, initial_indent="", subsequent_indent=indent + "    ",
                               break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)
