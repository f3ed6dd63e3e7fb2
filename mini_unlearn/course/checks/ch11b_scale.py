"""Chapter 11b · bigger models, more processes: the exercises' checkers."""
from __future__ import annotations

import math
from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, explain, slips, which_slip

__all__ = ["check_row_slice", "check_process_loss", "check_shard_rows"]


# ---------------------------------------------------------------------------------------------------
# Exercise 11b.1 · whose rows?

def _row_cases() -> list[Case]:
    """Batches that do and do not divide evenly among the processes, each process in turn."""
    return [(f"{n} rows, process {r} of {processes}", (n, processes, r))
            for n, processes in ((8, 2), (8, 3), (7, 4), (5, 5), (64, 3)) for r in range(processes)]


def _rows_floor_each(n_rows, processes, rank):
    share = n_rows // processes
    return slice(rank * share, (rank + 1) * share)


def _rows_last_takes_rest(n_rows, processes, rank):
    share = n_rows // processes
    return slice(rank * share, n_rows if rank == processes - 1 else (rank + 1) * share)


def _rows_ceil_first(n_rows, processes, rank):
    share = -(-n_rows // processes)
    return slice(min(rank * share, n_rows), min((rank + 1) * share, n_rows))


def _shares(f: Callable) -> Callable:
    """``(n_rows, processes)`` → the rows each process computes, from a ``row_slice`` function."""
    return lambda n, processes: [list(range(n)[f(n, processes, r)]) for r in range(processes)]


# (the order matters: on a process before the last, taking the remainder last looks like dropping it)
@slips(Slip(_rows_last_takes_rest, "the last process takes the whole remainder, so the shares can differ by more "
                                   "than one row (8 rows on 3 processes: 2, 2, 4): cut at n·r // N and n·(r+1) // N"),
       Slip(_rows_floor_each, "each process takes n_rows // processes rows, so the last n_rows % processes rows "
                              "are computed by nobody: cut at n·r // N and n·(r+1) // N instead"),
       Slip(_rows_ceil_first, "the shares are rounded up (ceil(n / N) rows each, the last process the rest): every "
                              "row is covered, but the last share can come out two rows short (64 rows on 3: 22, "
                              "22, 20); cut at n·r // N and n·(r+1) // N"))
def check_row_slice(fn: Callable) -> None:
    """Chapter 11b: ``fn(n_rows, processes, rank)`` → the ``slice`` of rows process ``rank`` computes:
    contiguous, every row exactly once over the processes, shares at most one row apart."""
    from ...distributed import row_slice

    for n, processes in ((8, 3), (7, 4), (64, 3)):
        try:
            shares = _shares(fn)(n, processes)
        except NotImplementedError:
            raise AssertionError("row_slice is not implemented yet (it raised NotImplementedError)") from None
        rows = [i for share in shares for i in share]
        if rows != list(range(n)):
            hint = explain(which_slip(check_row_slice.slips, (n, processes), shares, adapt=_shares))
            raise AssertionError(f"row_slice over {processes} processes covers rows {rows} of a {n}-row batch: "
                                 f"each row must be computed by exactly one process, in order{hint}")
    compare("row_slice", fn, row_slice, _row_cases(), slips=check_row_slice.slips)


# ---------------------------------------------------------------------------------------------------
# Exercise 11b.2 · the loss each process backpropagates

def _process_loss_cases() -> list[Case]:
    """Per-process sums of token losses and the whole batch's token count (uneven shares)."""
    return [("2 processes, 30 tokens in all", (12.5, 30, 2)), ("3 processes, 7 tokens in all", (4.0, 7, 3)),
            ("1 process", (9.0, 4, 1)), ("4 processes, 100 tokens", (0.75, 100, 4))]


def _loss_not_scaled(total, count_all, processes):
    return total / count_all


def _loss_divided(total, count_all, processes):
    return total / count_all / processes


def _ddp_average(f: Callable) -> Callable:
    """``shares`` (each process's sum and count) → what DDP's average of ``f``'s losses comes to."""
    def averaged(shares):
        count_all = sum(count for _, count in shares)
        return sum(float(f(total, count_all, len(shares))) for total, _ in shares) / len(shares)
    return averaged


@slips(Slip(_loss_not_scaled, "total / count_all is the right loss for ONE process: DDP then averages over the N "
                              "processes, dividing by N once more, so multiply by the number of processes"),
       Slip(_loss_divided, "dividing by the number of processes goes the wrong way: DDP's average already "
                           "divides by N, so each process multiplies by N to undo it"))
def check_process_loss(fn: Callable) -> None:
    """Chapter 11b: ``fn(total, count_all, processes)`` → the loss one process backpropagates so that
    DDP's average over the processes is the whole batch's mean (``total``: this process's sum)."""
    from ...distributed import process_loss
    shares = ((3.0, 4), (9.5, 11), (0.5, 1))          # three processes' (sum, count): uneven counts
    mean = sum(t for t, _ in shares) / sum(c for _, c in shares)
    try:
        averaged = _ddp_average(fn)(shares)
    except NotImplementedError:
        raise AssertionError("process_loss is not implemented yet (it raised NotImplementedError)") from None
    if not math.isclose(averaged, mean, rel_tol=1e-12):
        hint = explain(which_slip(check_process_loss.slips, (shares,), averaged, atol=1e-12, adapt=_ddp_average))
        raise AssertionError(f"DDP averages the processes' losses (gradients): with yours that average is "
                             f"{averaged:.6g}, the whole batch's mean is {mean:.6g}. Each process must divide by "
                             f"the whole batch's count, and the average divides by the processes again{hint}")
    compare("process_loss", fn, process_loss, _process_loss_cases(), atol=1e-12, slips=check_process_loss.slips,
            adapt=as_float)


# ---------------------------------------------------------------------------------------------------
# Exercise 11b.3 · which rows of a weight a process holds

def _shard_cases() -> list[Case]:
    """Weights whose rows do and do not divide evenly, a process that holds nothing among them."""
    return [(f"{n} rows, process {r} of {processes}", (n, processes, r))
            for n, processes in ((8, 2), (10, 4), (5, 4), (7, 3), (3, 8)) for r in range(processes)]


def _shard_unclamped(n_rows, processes, rank):
    share = -(-n_rows // processes)
    return slice(rank * share, (rank + 1) * share)


def _batch_split(n_rows, processes, rank):
    from ...distributed import row_slice
    return row_slice(n_rows, processes, rank)


@slips(Slip(_batch_split, "that is how a batch's rows are split (row_slice); FSDP2 cuts a weight as "
                          "torch.chunk does: ceil(n / N) rows per process, the last ones shorter or empty"),
       Slip(_rows_floor_each, "n_rows // processes rows each leaves the last n_rows % processes rows held by "
                              "nobody: take ceil(n / N) rows each"),
       Slip(_shard_unclamped, "ceil(n / N) rows each is right, but a share must stop at the last row: clamp both "
                              "ends to n_rows (a process past the end holds an empty slice)"))
def check_shard_rows(fn: Callable) -> None:
    """Chapter 11b: ``fn(n_rows, processes, rank)`` → the ``slice`` of a weight's rows that process ``rank``
    holds under FSDP2: ``ceil(n / N)`` rows each, in order, as ``torch.chunk`` splits it."""
    import torch

    from ...distributed import shard_rows

    for n, processes in ((10, 4), (5, 4)):
        try:
            held = _shares(fn)(n, processes)
        except NotImplementedError:
            raise AssertionError("shard_rows is not implemented yet (it raised NotImplementedError)") from None
        chunked = [chunk.tolist() for chunk in torch.arange(n).chunk(processes)]
        chunked += [[]] * (processes - len(chunked))
        if held != chunked:
            hint = explain(which_slip(check_shard_rows.slips, (n, processes), held, adapt=_shares))
            raise AssertionError(f"shard_rows gives the {processes} processes rows {held} of a {n}-row weight; "
                                 f"torch.chunk, and so FSDP2, gives them {chunked}{hint}")
    compare("shard_rows", fn, shard_rows, _shard_cases(), slips=check_shard_rows.slips)
