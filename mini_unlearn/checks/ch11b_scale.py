"""Chapter 11b · bigger models, more processes: the exercises' checkers."""
from __future__ import annotations

import math
from collections.abc import Callable

from .compare import Case, compare

__all__ = ["check_row_slice", "check_process_loss"]


def _row_cases() -> list[Case]:
    """Batches that do and do not divide evenly among the processes, each process in turn."""
    return [(f"{n} rows, process {r} of {processes}", (n, processes, r))
            for n, processes in ((8, 2), (8, 3), (7, 4), (5, 5), (64, 3)) for r in range(processes)]


def check_row_slice(fn: Callable) -> None:
    """Chapter 11b: ``fn(n_rows, processes, rank)`` → the ``slice`` of rows process ``rank`` computes:
    contiguous, every row exactly once over the processes, shares at most one row apart."""
    from ..distributed import row_slice

    def covered(n, processes):
        rows = [i for r in range(processes) for i in range(n)[fn(n, processes, r)]]
        if rows != list(range(n)):
            raise AssertionError(f"row_slice over {processes} processes covers rows {rows} of a {n}-row batch: "
                                 "each row must be computed by exactly one process, in order")
    for n, processes in ((8, 3), (7, 4), (64, 3)):
        try:
            covered(n, processes)
        except NotImplementedError:
            raise AssertionError("row_slice is not implemented yet (it raised NotImplementedError)") from None
    compare("row_slice", fn, row_slice, _row_cases())


def _process_loss_cases() -> list[Case]:
    """Per-process sums of token losses and the whole batch's token count (uneven shares)."""
    return [("2 processes, 30 tokens in all", (12.5, 30, 2)), ("3 processes, 7 tokens in all", (4.0, 7, 3)),
            ("1 process", (9.0, 4, 1)), ("4 processes, 100 tokens", (0.75, 100, 4))]


def check_process_loss(fn: Callable) -> None:
    """Chapter 11b: ``fn(total, count_all, processes)`` → the loss one process backpropagates so that
    DDP's average over the processes is the whole batch's mean (``total``: this process's sum)."""
    from ..distributed import process_loss
    shares = ((3.0, 4), (9.5, 11), (0.5, 1))          # three processes' (sum, count): uneven counts
    count_all, mean = sum(c for _, c in shares), sum(t for t, _ in shares) / sum(c for _, c in shares)
    try:
        averaged = sum(float(fn(t, count_all, len(shares))) for t, _ in shares) / len(shares)
    except NotImplementedError:
        raise AssertionError("process_loss is not implemented yet (it raised NotImplementedError)") from None
    if not math.isclose(averaged, mean, rel_tol=1e-12):
        raise AssertionError(f"DDP averages the processes' losses (gradients): with yours that average is "
                             f"{averaged:.6g}, the whole batch's mean is {mean:.6g}. Each process must divide by "
                             "the whole batch's count, and the average divides by the processes again")
    compare("process_loss", lambda *a: float(fn(*a)), process_loss, _process_loss_cases(), atol=1e-12)
