"""Two CPU processes (gloo, launched by torchrun as ``accelerate launch`` does) give one process's results.

``python -m mini_unlearn.distributed.check run`` takes, from the same initial weights: one gradient as
training takes it (accelerate's DDP wrapper) and as the methods take it (an all-reduce after backward),
MANU's neuron statistics, MMUnlearner's saliency, two steps each of GA_Diff, NPO, RMU, MMUnlearner and
stranger matching, and three training steps. It runs once on one process and once on two (``torchrun
-m``, so it needs the package only, not a source checkout); every figure must agree up to the order of floating-point
additions.

One exception, and a lesson: the bias of CLIP's attention keys. A key bias adds ``q·b`` to every
score of a query, and softmax ignores a constant shift, so its gradient is exactly 0 in exact
arithmetic: what autograd returns is rounding noise (|g| < 1e-9), different for any other summation
order. AdamW divides by the gradient's own size and turns that noise into full-size steps, so those
biases are compared separately: their gradients must be noise-sized in both runs.
"""
from pathlib import Path

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn import distributed
from mini_unlearn.distributed import check

NOISE_ONLY = "self_attn.k_proj.bias"          # CLIP's key biases: gradient 0 in exact arithmetic


def run(out: Path, processes: int) -> tuple[dict, dict]:
    check.launch(out, processes)
    return check.load(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("data_parallel")
    return run(base / "one", 1), run(base / "two", 2)


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / a.abs().max().clamp(min=1e-30))


def stage(tensors: dict, prefix: str, *, noise: bool = False) -> dict:
    return {name: t for name, t in tensors.items() if name.startswith(prefix + "/") and (NOISE_ONLY in name) == noise}


def test_both_runs_ran_with_the_processes_asked_for(runs):
    (_, one), (_, two) = runs
    assert one["processes"] == 1 and two["processes"] == 2


def test_each_process_computes_only_its_rows_of_a_batch(runs):
    """Computing every row on every process gives the same numbers (the global mean divides by the
    doubled count) but no speed-up: the batches themselves must be split."""
    (_, one), (_, two) = runs
    assert one["rows_per_process"] == {"methods": 8, "training": 8}
    assert two["rows_per_process"] == {"methods": 4, "training": 4}


@pytest.mark.parametrize("route", ["gradient_ddp", "gradient_all_reduce"])
def test_one_batch_gradient_is_the_same_on_two_processes(runs, route):
    (one, _), (two, _) = runs
    chosen = stage(one, route)
    assert len(chosen) > 40
    gaps = {name: relative_gap(t, two[name]) for name, t in chosen.items()}
    assert max(gaps.values()) < 1e-5, max(gaps.items(), key=lambda item: item[1])
    for name, t in stage(one, route, noise=True).items():     # rounding noise in both runs
        assert t.abs().max() < 1e-8 and two[name].abs().max() < 1e-8, name


def test_manu_statistics_are_the_same_on_two_processes(runs):
    (one, _), (two, _) = runs
    chosen = stage(one, "manu")
    counts = {name: int(t) for name, t in chosen.items() if name.endswith("/count")}
    assert counts and all(counts[name] == int(two[name]) for name in counts)
    assert sum(counts.values()) > 0            # (the vision sites see nothing in the text-only view)
    gaps = [relative_gap(t, two[name]) for name, t in chosen.items()]
    assert max(gaps) < 1e-12                  # fp64 sums of the same per-sample values


def test_saliency_scores_and_mask_are_the_same_on_two_processes(runs):
    (one, _), (two, _) = runs
    for kind in ("saliency/forget", "saliency/preserve"):
        chosen = stage(one, kind)
        assert chosen and max(relative_gap(t, two[name]) for name, t in chosen.items()) < 1e-5, kind
    masks = stage(one, "saliency/mask")
    assert masks and all(torch.equal(t, two[name]) for name, t in masks.items())
    assert 0 < sum(int(t.sum()) for t in masks.values()) < sum(t.numel() for t in masks.values())


@pytest.mark.parametrize("name, prefix, losses", [("GA_Diff, 2 steps", "ga_diff", "ga_diff_losses"),
                                                  ("NPO, 2 steps", "npo", "npo_losses"),
                                                  ("RMU, 2 steps", "rmu", "rmu_losses"),
                                                  ("MMUnlearner, 2 forget steps", "mmunlearner", "mmunlearner_losses"),
                                                  ("stranger matching, 2 steps", "stranger", "stranger_losses"),
                                                  ("training, 3 steps", "trained", "train_losses")])
def test_steps_give_the_same_losses_and_weights_on_two_processes(runs, name, prefix, losses):
    (one, first), (two, second) = runs
    def logged(rows):      # every logged figure of every step (a method logs its loss's terms too)
        return [value for row in rows for value in ([row] if isinstance(row, float) else row.values())]
    flat, other = logged(first[losses]), logged(second[losses])
    assert len(flat) == len(other) > 1
    assert flat == pytest.approx(other, rel=1e-4, abs=1e-5), name
    # AdamW divides each gradient by its own running size, so a component that is nearly 0 (its sign set
    # by rounding) can move by up to lr either way: all but a few weights must agree to 1e-6, and none
    # may be a training step (lr 1e-3) apart. (Measured: 26 of 933,760 weights above 1e-6, the largest
    # gap 6e-6; 6e-5 with the CPU kernels forced to AVX2.)
    gaps = torch.cat([(t - two[key]).abs().flatten() for key, t in stage(one, prefix).items()])
    assert (gaps > 1e-6).float().mean() < 1e-4 and gaps.max() < 1e-3, name


def test_one_process_leaves_everything_as_it_is():
    assert distributed.world_size() == 1 and not distributed.is_distributed() and distributed.is_main()
    assert list(distributed.shard(range(5))) == [0, 1, 2, 3, 4]
    assert distributed.local_rows(7) == slice(0, 7)
    total = torch.tensor(6.0)
    assert distributed.global_mean(total, 4) == 1.5 and distributed.all_sum(total) is total
    with distributed.data_parallel_step():
        assert not distributed.splitting()          # nothing to split on one process


def test_rows_and_batches_are_dealt_out_evenly(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    for r, expected in enumerate([slice(0, 2), slice(2, 5), slice(5, 8)]):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        assert distributed.local_rows(8) == expected
        assert list(distributed.shard(range(7))) == list(range(r, 7, 3))
    with pytest.raises(ValueError, match="batch_size must be at least the number of processes"):
        distributed.local_rows(2)


def test_the_row_checker_passes_the_answer_and_fails_the_usual_slips(capsys):
    mu.checks.check_row_slice(distributed.row_slice)
    assert "✓ row_slice" in capsys.readouterr().out
    slips = {"equal shares, remainder dropped": lambda n, p, r: slice(n // p * r, n // p * (r + 1)),
             "strided rows": lambda n, p, r: slice(r, n, p),
             "one row too many": lambda n, p, r: slice(n * r // p, n * (r + 1) // p + 1)}
    for slip in slips.values():
        with pytest.raises(AssertionError, match="row_slice"):
            mu.checks.check_row_slice(slip)


def test_the_loss_checker_passes_the_answer_and_fails_the_usual_slips(capsys):
    mu.checks.check_process_loss(distributed.process_loss)
    assert "✓ process_loss" in capsys.readouterr().out
    for slip in (lambda t, c, p: t / c, lambda t, c, p: t * p, lambda t, c, p: t / (c * p)):
        with pytest.raises(AssertionError, match="whole batch's mean"):
            mu.checks.check_process_loss(slip)


def test_the_check_runs_as_a_module_of_the_package():
    """What ``launch`` and chapter 11b run: ``python -m`` (and ``torchrun -m``) of the module, not a file
    of the source checkout."""
    assert check.MODULE == check.__name__ == "mini_unlearn.distributed.check"
    assert "benchmarks" not in Path(check.__file__).parts


def test_the_check_says_what_it_expected_of_bad_input(tmp_path, capsys):
    for processes in (0, 1.5, "2", True):
        with pytest.raises(ValueError, match="processes must be a positive integer"):
            check.launch(tmp_path, processes)
    with pytest.raises(FileNotFoundError, match=r"out: no run in .* figures\.json"):
        check.load(tmp_path)
    # in this process: `python -m` of the module (its last line, sys.exit(main(argv))) runs in `runs` above
    assert check.main(["run"]) == 2
    assert "usage: python -m mini_unlearn.distributed.check [run OUT]" in capsys.readouterr().err
