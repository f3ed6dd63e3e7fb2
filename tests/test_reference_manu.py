"""MANU ``variant="released"`` against the released code's definitions (franciscoliu/MANU, prune/prune_utility.py).

The expected values are worked out by hand here, on a few made-up activations, from what the released
code computes:

* ``collect_feedforward_activations``: per batch, over the batch's samples, ``|z|.mean``,
  ``(|z| > 0.1).mean``, ``z.std()`` (torch's default: divided by n − 1) and ``sqrt((z**2).mean)``;
  the per-batch values averaged over each chunk of 10 batches, then over the chunks;
* ``compute_top_k_pruning_mask``: ``k = int(α·N)``, the threshold is the k-th largest score
  (``torch.topk(...)[-1]``) and the mask is ``scores >= threshold``, every tie kept.
"""
import math

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.methods.manu import MANUConfig
from mini_unlearn.models.anatomy import NeuronSite
from mini_unlearn.neurons import NeuronStats, select_top
from mini_unlearn.neurons.importance import released_importance, select_released


def batched(values, batch_size):
    """NeuronStats of ``values`` ([samples, neurons]) fed ``batch_size`` samples at a time, as collect_stats does."""
    values = torch.as_tensor(values, dtype=torch.float64)
    stats = NeuronStats(NeuronSite("language", 0, "made.up.down_proj", values.shape[1], ()))
    for batch in values.split(batch_size):
        stats.add(batch)
    return stats


def test_i_var_is_the_n_minus_1_standard_deviation():
    # one batch of 3 samples, two neurons: A = 1, 3, 5 and B = −3, 0, 3
    stats = batched([[1.0, -3.0], [3.0, 0.0], [5.0, 3.0]], batch_size=3)
    got = released_importance(stats)
    # A: mean 3, squared deviations 4 + 0 + 4 = 8, / (3 − 1) → 4, std 2   (population: sqrt(8/3) ≈ 1.63)
    # B: mean 0, squared deviations 9 + 0 + 9 = 18, / (3 − 1) → 9, std 3 (population: sqrt(6) ≈ 2.45)
    assert got["var"].tolist() == pytest.approx([2.0, 3.0])
    assert got["abs"].tolist() == pytest.approx([3.0, 2.0])                     # mean |z|
    assert got["freq"].tolist() == pytest.approx([1.0, 2 / 3])                  # share of |z| > 0.1
    assert got["rms"].tolist() == pytest.approx([math.sqrt(35 / 3), math.sqrt(6)])   # sqrt((1 + 9 + 25) / 3)


def test_statistics_are_taken_per_batch_so_the_batch_size_changes_them():
    z = [[0.0], [2.0], [1.0], [5.0], [3.0], [3.0]]
    by_two, by_three = released_importance(batched(z, 2)), released_importance(batched(z, 3))
    # batches of 2: (0, 2), (1, 5), (3, 3); two values a, b have std |a − b| / sqrt(2)
    assert by_two["var"].item() == pytest.approx((2 / math.sqrt(2) + 4 / math.sqrt(2) + 0) / 3)   # = sqrt(2)
    assert by_two["rms"].item() == pytest.approx((math.sqrt(2) + math.sqrt(13) + 3) / 3)
    # batches of 3: (0, 2, 1): mean 1, deviations² 1 + 1 + 0 = 2, / 2 → std 1;
    #               (5, 3, 3): mean 11/3, deviations² 16/9 + 4/9 + 4/9 = 24/9, / 2 = 4/3 → std 2/sqrt(3)
    assert by_three["var"].item() == pytest.approx((1 + 2 / math.sqrt(3)) / 2)
    assert by_three["rms"].item() == pytest.approx((math.sqrt(5 / 3) + math.sqrt(43 / 3)) / 2)
    assert by_two["var"].item() != pytest.approx(by_three["var"].item())
    # a batch counts once whatever its size: 0, 0, 0 | 1, 1 fires in 0 and 1 of its batches → 0.5, not 2/5
    uneven = batched([[0.0], [0.0], [0.0], [1.0], [1.0]], 3)
    assert released_importance(uneven)["freq"].item() == pytest.approx(0.5)
    assert (uneven.sums()["abs_above"] / uneven.count).item() == pytest.approx(0.4)   # the whole-set share


def test_batches_are_averaged_in_chunks_of_ten():
    # 12 batches of 2 samples: batches 1-10 all 0, batches 11-12 all 1. Chunk 1 averages to 0, chunk 2
    # (two batches) to 1, and the chunks average to 0.5 — not 2/12, the plain mean over batches
    stats = batched([[0.0]] * 20 + [[1.0]] * 4, 2)
    got = released_importance(stats)
    assert got["abs"].item() == pytest.approx(0.5) and got["rms"].item() == pytest.approx(0.5)
    assert got["var"].item() == 0


def test_a_one_sample_batch_is_refused_naming_the_batch_size():
    stats = batched([[1.0], [2.0], [3.0]], 2)          # (1, 2), (3): torch.std of one value is NaN
    with pytest.raises(ValueError, match="batch_size"):
        released_importance(stats)


def test_the_count_is_floored_and_ties_at_the_threshold_are_all_kept():
    towers = {"a": "language", "b": "language", "c": "vision"}
    # no ties: N = 10 language neurons, int(0.29 · 10) = 2 → 0.95 (a1) and 0.90 (b0);
    # N = 5 vision neurons, int(0.29 · 5) = 1 → 0.05 (c4)
    scores = {"a": torch.tensor([0.10, 0.95, 0.30, 0.80, 0.05, 0.60]), "b": torch.tensor([0.90, 0.20, 0.70, 0.40]),
              "c": torch.tensor([0.01, 0.03, 0.02, 0.0, 0.05])}
    got = select_released(scores, 0.29, "per_tower", towers)
    assert {name: index.tolist() for name, index in got.items()} == {"a": [1], "b": [0], "c": [4]}
    # the package's rule (round(2.9) = 3) takes 0.80 (a3) too
    assert select_top(scores, 0.29, "per_tower", towers)["a"].tolist() == [1, 3]

    # a tie: k = 2, the 2nd largest is 0.7, and all three 0.7s score >= it → 4 neurons, not 2
    tied = {"a": torch.tensor([0.9, 0.5, 0.7, 0.7, 0.1, 0.2]), "b": torch.tensor([0.7, 0.3, 0.0, 0.4])}
    got = select_released(tied, 0.29, "global")
    assert {name: index.tolist() for name, index in got.items()} == {"a": [0, 2, 3], "b": [0]}
    # the package's rule: exactly round(2.9) = 3, ties to the lower index
    assert {name: index.tolist() for name, index in select_top(tied, 0.29, "global").items()} == {
        "a": [0, 2, 3], "b": []}


def test_the_selection_never_takes_nan_and_refuses_a_count_of_zero():
    got = select_released({"a": torch.tensor([float("nan"), 0.2, 0.1])}, 0.5, "per_layer")   # int(1.5) = 1
    assert got["a"].tolist() == [1]
    with pytest.raises(ValueError, match="alpha"):      # int(0.05 · 10) = 0: the released code has no k-th value
        select_released({"a": torch.rand(10)}, 0.05, "global")
    with pytest.raises(ValueError, match="towers"):
        select_released({"a": torch.rand(10)}, 0.5, "per_tower")


def test_the_batch_size_defaults_to_the_released_scripts_for_released_only():
    assert MANUConfig().batch_size == 32 and MANUConfig(variant="released").batch_size == 4
    assert MANUConfig(variant="released", batch_size=8).batch_size == 8
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="batch_size"):
            MANUConfig(variant="released", batch_size=bad)


def test_released_manu_reads_per_batch_statistics_of_the_configured_batch_size(vlm, bench):
    # ratio 0.25 of the 4-person bench: 21 retain image+text pairs, so batches of 4 leave one alone
    with pytest.raises(ValueError, match="batch_size"):
        mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, variant="released", progress=False)
    result = mu.unlearn(vlm, bench, method="manu", ratio=0.25, alpha=0.05, variant="released", batch_size=8,
                        progress=False)
    counts = result.log.details["counts"].groupby("tower")[["pruned", "neurons"]].sum()
    for tower in ("vision", "language"):                   # int(0.05 · 512) = 25, where round gives 26
        assert counts.loc[tower, "pruned"] == int(0.05 * counts.loc[tower, "neurons"]), tower
