"""Run a chapter's experiment on the learner's function: :func:`use` plugs it in where the package calls
its own, for one ``with`` block, once its checker passes.

A method chapter's ●●● exercise rebuilds a function the package itself calls in the middle of a method
(GA_Diff's loss, MANU's selection, the RMisU edit, …). Its checker is decorated with
:func:`plugs_into`, naming that call site: ``"mini_unlearn.methods.gradient:ga_diff_loss"`` is the
global ``ga_diff_loss`` of the module that calls it. Then::

    with mu.checks.use(ga_diff_loss, mu.checks.check_ga_diff_loss):
        result = mu.unlearn(vlm, bench, method="ga_diff", ...)

runs the checker quietly: when it passes, the package calls the learner's function for the length of
the block (one line says so); when it fails (the stub, or a slip), nothing is swapped and one line says
that the block runs the package's own function (the check cell above it has already said why). The solution edition passes, so its committed outputs
are those of the learner's code; since a passing function matches the package's on the checker's cases,
and the solution is written with the package's operations, a learner who passes sees the same numbers.
"""
from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable, Iterator


FELL_BACK = "✗ your"        # how the note starts when the block runs the package's own function (course.py
                             # exercises --run looks for it)


def plugs_into(target: str) -> Callable:
    """Decorator: the checker's exercise replaces ``target`` (``"package.module:name"``, the global the
    package looks up at its call site) when a chapter runs it through :func:`use`."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"target must read 'package.module:name'; got {target!r}")

    def attach(checker: Callable) -> Callable:
        checker.plug = target
        return checker
    return attach


def call_site(checker: Callable) -> tuple[object, str]:
    """The module and global name a checker's exercise replaces (see :func:`plugs_into`)."""
    target = getattr(checker, "plug", None)
    if target is None:
        raise ValueError(f"{getattr(checker, '__name__', checker)!r} names no call site: its exercise is "
                         "not one an experiment runs on (decorate the checker with @plugs_into(...))")
    module, _, name = target.partition(":")
    return importlib.import_module(module), name


def passes(fn: Callable, checker: Callable) -> str | None:
    """None when ``checker(fn)`` passes; otherwise the first line of why not. Prints nothing."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            checker(fn)
    except Exception as failed:  # noqa: BLE001 (any failure of the learner's code means: not yet)
        first = str(failed).strip().split("\n")[0]
        return f"{type(failed).__name__}: {first}" if first else type(failed).__name__
    return None


@contextlib.contextmanager
def use(fn: Callable, checker: Callable) -> Iterator[Callable]:
    """Within the block, the package calls ``fn`` where it calls its own function, if ``checker(fn)``
    passes; otherwise the package's own, with a one-line note. Yields the function in use."""
    if not callable(fn):
        raise TypeError(f"fn must be the function you wrote; got {type(fn).__name__}")
    module, name = call_site(checker)
    own = getattr(module, name)
    learner = getattr(fn, "__name__", "function")
    # one short line either way (the book's column is 85 characters); the check cell above said why
    if passes(fn, checker) is not None:
        print(f"{FELL_BACK} {learner} does not pass its check yet: this block runs mini_unlearn's own.")
        yield own
        return
    print(f"▶ this block runs your {learner} where mini_unlearn calls its own.")
    setattr(module, name, fn)
    try:
        yield fn
    finally:
        setattr(module, name, own)
