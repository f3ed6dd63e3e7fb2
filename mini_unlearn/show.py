"""Show the package's real code in a notebook, as plain text that nbval compares."""

import inspect
import textwrap


def show_source(obj):
    """Print the source of a function, class or module of the package.

    Notebooks call `mu.show_source(mu.bench.make_benchmark)` instead of carrying a copy of the
    code, so what a chapter shows is what the package runs, and a stale output fails nbval.
    """
    print(textwrap.dedent(inspect.getsource(obj)).rstrip("\n"))
