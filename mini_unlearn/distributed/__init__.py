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
  are added across processes (:func:`all_sum`), so every process ends with the one-process totals;
* **the evaluation and the audit** share their batches out: process ``r`` runs batches ``r, r + N, …``
  of the very batches one process forms (:func:`split_map`), and the results are gathered
  (:func:`gather_objects`) back into their order, so every process ends with the one-process report:
  ``mu.evaluate`` on MLLMU-Bench's and CLEAR's tasks (the same rows, the same generated texts) and the
  audit's per-question attacks (membership, truth ratios, recall probes, logit lens, the linear probes'
  hidden states). The model stays whole on every process (a sharded one runs every batch on every process).

**Sharded models.** Launched with the package's FSDP2 accelerate config (``accelerate launch
--config_file $(python -m mini_unlearn.models.sharding config) …``), ``unlearn`` shards its copy of
the model and every frozen model it reads (:mod:`mini_unlearn.models.sharding`). The steps stay these
data-parallel steps, each process its rows; FSDP2 reduce-scatters the language model's gradients,
averaged, during the backward, so :func:`average_gradients` averages the whole (vision-side) ones
only, :func:`clip_gradients` takes the norm of the whole gradient, and a mask multiplies each
process's shard (:func:`local_part`). :mod:`mini_unlearn.distributed.sharded_check` runs it on one
process and sharded on two.

Covered and tested that way (:mod:`mini_unlearn.distributed.check` runs them on one process and
on two): training, GA / GA_Diff / KL_Min (token means), NPO (row means), RMU and RMisU's
representation terms (token means), MMUnlearner's loop, MANU's statistics and the saliency. Two
figures stay per process, so those runs are close to one process's but not equal: RMisU with
``target_norm="first_batch"`` (the released code's target scale, the mean token norm of the first
batch, is taken over the process's rows) and NPO with ``variant="released"`` (a nonlinear function of
the batch-mean loss). The evaluation and the audit's attacks are run on one process and on two by
``tests/test_distributed_evaluation.py``. Not shared out (every process runs all of it): the linear
probes' fits, the audit's quantization attack, the recall checks of the relearning attack (its
training is data-parallel), and the path search of MIP-Editor (every process runs it on all the data).

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
    # a sharded parameter (FSDP2: a DTensor) had its gradient reduce-scattered, averaged, in backward
    parameters = [p for p in parameters if p.requires_grad and not is_sharded(p)]
    if not parameters:
        return
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


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is one process's shard of a larger one (a DTensor: FSDP2's parameters)."""
    from torch.distributed.tensor import DTensor
    return isinstance(tensor, DTensor)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of ``tensor``: its shard if sharded (a DTensor's local tensor), else itself."""
    return tensor.to_local() if is_sharded(tensor) else tensor


def shard_rows(n_rows: int, processes: int, rank: int) -> slice:
    """The rows of an ``n_rows``-row weight that process ``rank`` of ``processes`` holds when FSDP2 shards
    it: ``⌈n/N⌉`` rows each, in order (``torch.chunk``'s split), so the last shares may be shorter, or
    empty. (A batch's rows are split differently, :func:`row_slice`: there only the count matters.)"""
    size = -(-n_rows // processes)
    return slice(min(rank * size, n_rows), min((rank + 1) * size, n_rows))


def local_part(tensor: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """The rows of ``tensor`` (a whole mask or scale: the parameter's shape, or broadcastable to it along its
    first dimension) that this process's shard of ``parameter`` holds (:func:`shard_rows`), on the
    parameter's device; all of ``tensor`` when the parameter is whole. It multiplies
    ``local(parameter)`` or ``local(parameter.grad)``."""
    tensor = tensor.to(parameter.device)
    if not is_sharded(parameter):
        return tensor
    return tensor[shard_rows(tensor.shape[0], world_size(), rank())]


def whole(part: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """The whole tensor of which ``part`` is this process's share, shaped and sharded as ``parameter``
    (e.g. a sum of squared gradient shards), gathered on every process; ``part`` itself when the
    parameter is whole. A collective: every process calls it for the same parameters, in order."""
    if not is_sharded(parameter):
        return part
    from torch.distributed.tensor import DTensor
    return DTensor.from_local(part, parameter.device_mesh, parameter.placements, shape=parameter.shape,
                              stride=parameter.stride()).full_tensor()


def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over parameters some of which may be sharded (FSDP2).

    The norm is that of the whole gradient: the squares of every shard's entries are added across
    processes, those of a replicated parameter (whose gradient every process holds whole) counted once.
    Without a sharded parameter this is ``clip_grad_norm_`` itself."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not any(is_sharded(g) for g in grads):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    sharded = sum((g.to_local().double().pow(2).sum() for g in grads if is_sharded(g)),
                  torch.zeros((), dtype=torch.float64))
    replicated = sum((g.double().pow(2).sum() for g in grads if not is_sharded(g)),
                     torch.zeros((), dtype=torch.float64))
    total = (all_sum(sharded) + replicated).sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    with torch.no_grad():
        for g in grads:
            (g.to_local() if is_sharded(g) else g).mul_(scale.to(g.dtype))
    return total.float()


def gather_objects(item) -> list:
    """Every process's ``item`` (any picklable object), in process order; ``[item]`` on one process."""
    if not is_distributed():
        return [item]
    state()
    gathered = [None] * world_size()
    torch.distributed.all_gather_object(gathered, item)
    return gathered


def split_map(function, items, *, split: bool = True) -> list:
    """``[function(item) for item in items]``, on every process, each process computing only its share.

    Under a launcher process ``r`` of ``N`` calls ``function`` on items ``r, r + N, …`` (:func:`shard`) and
    the results are gathered (:func:`gather_objects`) back into the items' order: every process returns the
    whole list, the one a single process computes. Give it whole batches (the evaluation's ``(positions,
    questions)`` pairs), and every batch is the one a single process runs: the same rows, the same padding,
    the same numbers. On one process, or with ``split=False`` (a sharded model, see :func:`holds_whole`), it
    is the plain list comprehension.

    Like any collective, every process must call it, with the same items. The results travel pickled:
    keep them small and on the CPU (strings, floats, arrays, small frames). An exception in ``function``
    on one process is raised on every process (the others raise a ``RuntimeError`` naming it), not a hang."""
    items = list(items)
    if not split or not is_distributed():
        return [function(item) for item in items]
    processes, failure, error = world_size(), None, None
    try:
        mine = [function(item) for item in shard(items)]
    except Exception as raised:  # noqa: BLE001 (re-raised below: the others wait for this process's results)
        mine, failure, error = [], f"{type(raised).__name__}: {raised}", raised
    gathered = gather_objects((mine, failure))
    if error is not None:
        raise error
    for process, (_, failed) in enumerate(gathered):
        if failed is not None:
            raise RuntimeError(f"process {process} failed on its share of the items: {failed}")
    results = [None] * len(items)
    for process, (theirs, _) in enumerate(gathered):
        results[process::processes] = theirs
    return results


def holds_whole(model: torch.nn.Module) -> bool:
    """Whether this process holds all of ``model``'s weights (none sharded), so that it can run forward
    passes on its own: :func:`split_map` may then give each process its share of the batches. A sharded
    model's (FSDP2's) forward pass is a collective that every process must run, together, on every batch."""
    return not any(is_sharded(p) for p in model.parameters())


FSDP_VERSIONS = ("2",)


def sharding_requested() -> bool:
    """Whether the launcher asks for sharded models: ``accelerate launch --config_file`` with an FSDP
    config (``distributed_type: FSDP``) sets ``ACCELERATE_USE_FSDP``. Raises for an FSDP version the
    package has no form for (FSDP1's ``FullyShardedDataParallel`` wrapper), naming the setting to change."""
    if not is_distributed() or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() not in ("1", "true"):
        return False
    version = os.environ.get("FSDP_VERSION", "1")
    if version not in FSDP_VERSIONS:
        raise ValueError(f"the accelerate config asks for FSDP version {version}; mini_unlearn shards with FSDP2 "
                         "(torch.distributed.fsdp.fully_shard): set `fsdp_version: 2` in its fsdp_config, "
                         "or launch without FSDP for data parallelism (DDP)")
    return True


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


__all__ = ["FSDP_VERSIONS", "all_sum", "average_gradients", "batch_mean", "clip_gradients", "data_parallel_step", "device",
           "gather_objects", "global_mean", "holds_whole", "is_distributed", "is_main", "is_sharded", "local_rows",
           "mean_across", "process_loss", "rank", "row_slice", "local", "local_part", "shard", "shard_rows", "sharding_requested",
           "split_map", "splitting", "state", "whole", "world_size", "wrap"]
