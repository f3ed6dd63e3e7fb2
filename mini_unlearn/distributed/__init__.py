"""One process or many, the same numbers: data parallelism through ``accelerate`` (chapter 11b).

Launch any script that uses the package on several processes, unchanged::

    accelerate launch --multi_gpu --num_processes 4 my_unlearning.py     # 4 GPUs, DDP
    torchrun --nproc_per_node 2 my_unlearning.py                         # 2 CPU processes (gloo)

Every process runs the whole script. The package notices the launcher (``WORLD_SIZE`` > 1), lets
accelerate start the process group (NCCL on GPUs, gloo on CPUs) and place each process on its own
device, and then:

* **training and the gradient methods** run one step on every process with the same seeded batch:
  each process draws all of the batch (the same augmentations and option orders one process would
  draw), keeps its contiguous slice of rows, runs forward and backward, and the gradients are
  averaged: training through accelerate's ``DistributedDataParallel`` wrapper (:func:`wrap`,
  which overlaps the all-reduce with the backward pass), the methods, which run several forward
  passes a step, by one all-reduce after it (:func:`average_gradients`). The losses divide by
  the *whole* batch's token or row count (:func:`global_mean`), so the average is exactly the
  gradient one process computes on the whole batch;
* **the attribution passes** (MANU's statistics, MMUnlearner's saliency) shard their batches:
  process ``r`` of ``N`` takes batches ``r, r + N, …`` (:func:`shard`), and the per-process sums
  are added across processes (:func:`all_sum`), so every process ends with the one-process totals.

Covered and tested that way (:mod:`mini_unlearn.distributed.check` runs them on one process and
on two): training, GA / GA_Diff / KL_Min (token means), NPO (row means), RMU and RMisU's
representation terms (token means), MMUnlearner's loop, MANU's statistics and the saliency. Two
figures stay per process, so those runs are close to one process's but not equal: RMisU with
``target_norm="first_batch"`` (the released code's target scale, the mean token norm of the first
batch, is taken over the process's rows) and NPO with ``variant="released"`` (a nonlinear function of
the batch-mean loss). Not sharded yet: the evaluation (every process scores every question) and the
path search of MIP-Editor (every process runs it on all the data).

"Exactly" means up to the order of floating-point additions: a sum split over two processes is
added in another order than one process adds it (measured in the tests: relative differences
below 1e-6 in fp32, below 1e-12 for the fp64 neuron statistics).

With no launcher every function here is the identity: no process group, no accelerate state.
"""
from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from functools import lru_cache

import torch

_SPLITTING = [False]     # inside a data-parallel step: each process holds a slice of the batch's rows


def world_size() -> int:
    """How many processes run this script (1 without a launcher)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


@lru_cache(maxsize=1)
def state():
    """accelerate's ``PartialState``: starts the process group on first use (gloo where there is no GPU),
    and closes it when the script ends (a group left open can abort the process on exit)."""
    from accelerate import PartialState
    started = PartialState(cpu=not torch.cuda.is_available())
    atexit.register(_close)
    return started


def _close() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def rank() -> int:
    """This process's index (0 without a launcher)."""
    return state().process_index if is_distributed() else 0


def is_main() -> bool:
    """Whether this process prints progress bars and writes files (rank 0)."""
    return rank() == 0


def device() -> torch.device:
    """This process's device: its own GPU under a launcher; else cuda if available, else cpu."""
    if is_distributed():
        return torch.device(state().device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def shard(items):
    """This process's share of ``items``: items ``rank, rank + N, …`` (all of them on one process)."""
    n, r = world_size(), rank()
    for index, item in enumerate(items):
        if index % n == r:
            yield item


def row_slice(n_rows: int, processes: int, rank: int) -> slice:
    """Rows ``[n·r/N, n·(r+1)/N)`` (integer division) of an ``n``-row batch for process ``r`` of ``N``:
    contiguous, in order, every row exactly once, and no two processes more than one row apart."""
    return slice(n_rows * rank // processes, n_rows * (rank + 1) // processes)


def local_rows(n_rows: int) -> slice:
    """The contiguous rows of an ``n_rows`` batch that this process computes in a data-parallel step."""
    n = world_size()
    if n == 1:
        return slice(0, n_rows)
    if n_rows < n:
        raise ValueError(f"batch_size must be at least the number of processes ({n}) to split a batch; got {n_rows}")
    return row_slice(n_rows, n, rank())


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every process, in place (itself on one process)."""
    if not is_distributed():
        return tensor
    moved = tensor.to(device())         # NCCL reduces GPU tensors only
    torch.distributed.all_reduce(moved, op=torch.distributed.ReduceOp.SUM)
    if moved is not tensor:
        tensor.copy_(moved)
    return tensor


def splitting() -> bool:
    """Whether a data-parallel step is running (each process holds a slice of the batch's rows)."""
    return _SPLITTING[0]


@contextmanager
def data_parallel_step():
    """Within the block, losses built with :func:`global_mean` average over the whole batch's rows."""
    previous, _SPLITTING[0] = _SPLITTING[0], is_distributed()
    try:
        yield
    finally:
        _SPLITTING[0] = previous


def global_mean(total: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """``total / count`` over the whole batch when the rows are split across processes.

    Each process holds the sum of its rows' values (``total``) and how many values it has
    (``count``). The loss it backpropagates is ``total / all_count × N``: DDP averages the ``N``
    processes' gradients, which gives exactly the gradient of ``Σ total / all_count``, the
    one-process mean. Outside a data-parallel step this is ``total / count``."""
    if not splitting():
        return total / count
    count = torch.as_tensor(count, dtype=torch.float64, device=total.device).clone()
    return process_loss(total, all_sum(count).to(total.dtype), world_size())


def batch_mean(values: torch.Tensor) -> torch.Tensor:
    """``values.mean()``, or in a data-parallel step the mean over the whole batch's values
    (:func:`global_mean` of their sum and number): a row mean, a token mean."""
    if not splitting():
        return values.mean()
    return global_mean(values.sum(), values.numel())


def process_loss(total, count_all, processes: int):
    """What one process backpropagates so that DDP's *average* of the processes' gradients is the
    gradient of the whole batch's mean: its own sum over the whole batch's count, times the processes."""
    return total / count_all * processes


def mean_across(value: torch.Tensor) -> torch.Tensor:
    """The mean of a (detached) value over the processes: a logged loss built with :func:`global_mean`
    becomes the whole batch's loss on every process."""
    if not splitting():
        return value.detach()
    return all_sum(value.detach().clone()) / world_size()


def average_gradients(parameters) -> None:
    """Average ``parameters``' gradients over the processes in one all-reduce (a no-op on one process).

    The unlearning methods call this after ``backward``: they run two or three forward passes a step
    (forget, retain, a frozen reference), which DDP's reducer does not allow. A parameter without a
    gradient on every process (a vision tower no row used) keeps ``grad = None``, as on one process,
    so AdamW skips it there too."""
    if not is_distributed():
        return
    parameters = [p for p in parameters if p.requires_grad]
    has_grad = torch.tensor([float(p.grad is not None) for p in parameters], dtype=torch.float64)
    all_sum(has_grad)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    all_sum(flat)
    flat /= world_size()
    start = 0
    for p, g, used in zip(parameters, grads, has_grad.tolist()):
        n = g.numel()
        p.grad = flat[start:start + n].view_as(p).to(p.dtype).clone() if used else None
        start += n


@lru_cache(maxsize=1)
def _accelerator():
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    # a text-only batch leaves the vision tower without gradients: DDP must not wait for them
    return Accelerator(cpu=not torch.cuda.is_available(),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` for the training step: accelerate's DDP wrapper under a launcher, the model itself otherwise.

    The wrapper only synchronises gradients; the weights stay those of ``model``."""
    if not is_distributed():
        return model
    return _accelerator().prepare_model(model, device_placement=False)


__all__ = ["all_sum", "average_gradients", "batch_mean", "data_parallel_step", "device", "global_mean", "is_distributed", "is_main", "local_rows",
           "mean_across", "process_loss", "rank", "row_slice", "shard", "splitting", "state", "world_size", "wrap"]
