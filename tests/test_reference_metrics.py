"""The metrics named after other benchmarks compute those benchmarks' definitions (issue 34's differential
check): MUSE's PrivLeak, TOFU's truth ratio, Min-K% and Min-K%++ as open-unlearning computes them. Every
expected value is worked out by hand from the reference's definition, in the comment beside it."""
import math

import numpy as np
import pytest
import torch

import mini_unlearn as mu
from mini_unlearn.attacks import forget_quality, membership
from mini_unlearn.attacks.membership import TokenStats


# ---- PrivLeak: ((1 − AUC) − (1 − AUC_ref)) / (1 − AUC_ref) × 100 (open-unlearning's privacy.py, MUSE) -------
@pytest.mark.parametrize("auc, reference_auc, expected", [
    (0.9, 0.5, -80.0),      # ((0.1) − (0.5)) / 0.5 × 100
    (1.0, 0.5, -100.0),     # every forget person given away: MUSE's "target model" row, about −100
    (0.0, 0.5, 100.0),      # (1 − 0.5) / 0.5 × 100: over-unlearning is positive
    (0.5, 0.5, 0.0),
    (0.7, 0.6, -25.0),      # (0.3 − 0.4) / 0.4 × 100
])
def test_privleak_is_muse_definition(auc, reference_auc, expected):
    assert membership.privleak(auc, reference_auc) == pytest.approx(expected)


# ---- the truth ratio: exp(mean of the wrong options' log p̄ − the right one's) (TOFU's code, open-unlearning) --
def test_truth_ratio_is_the_geometric_mean_of_the_ratios():
    scores = torch.tensor([0.0, -1.0, -2.0, -3.0])
    # wrong options' mean log p̄ = (−1 − 2 − 3) / 3 = −2; the right one's is 0: exp(−2)
    assert forget_quality.truth_ratio(scores, 0) == pytest.approx(math.exp(-2), abs=1e-12)      # 0.135
    # the arithmetic mean of the ratios, (e^−1 + e^−2 + e^−3) / 3, is the paper's printed formula
    arithmetic = (math.exp(-1) + math.exp(-2) + math.exp(-3)) / 3                                # 0.184
    assert forget_quality.truth_ratio(scores, 0, mean="arithmetic") == pytest.approx(arithmetic, abs=1e-12)
    # right option C (−2): wrong mean (0 − 1 − 3) / 3 = −4/3, so exp(−4/3 + 2) = exp(2/3)
    assert forget_quality.truth_ratio(scores, 2) == pytest.approx(math.exp(2 / 3), abs=1e-12)
    with pytest.raises(ValueError, match="mean must be one of"):
        forget_quality.truth_ratio(scores, 0, mean="harmonic")


# ---- Min-K%: the lowest int(k · n), at least one, the end-of-answer token left out (open-unlearning) ---------------
def _stats(log_probs, mu_, sigma):
    return TokenStats(np.asarray(log_probs, float), np.asarray(mu_, float), np.asarray(sigma, float), "x")


def test_min_k_floors_k_n_and_leaves_out_the_last_token():
    # 11 tokens, the last (the end of the answer, -50) the least likely; it is left out, leaving n = 10;
    # int(0.25 · 10) = 2 tokens: (−10 − 9) / 2. (⌈2.5⌉ = 3 with the last kept would give (−50 − 10 − 9) / 3.)
    log_probs = [-1.0, -2, -3, -4, -5, -6, -7, -8, -9, -10, -50]
    scores = membership.membership_scores(_stats(log_probs, [0.0] * 11, [1.0] * 11), k=0.25)
    assert scores["min_k"] == pytest.approx(-9.5)
    assert scores["loss"] == pytest.approx(-105 / 11)          # the loss attack keeps every token: −(55 + 50)/11
    assert membership.lowest_mean(np.array([-3.0, -2.0, -1.0]), 0.5) == -3.0       # int(1.5) = 1
    with pytest.raises(ValueError, match="at least two scored tokens"):
        membership.membership_scores(_stats([-1.0], [0.0], [1.0]))


def test_min_k_plus_plus_floors_the_variance_at_1e_minus_6():
    # a near one-hot next-token distribution: σ = 1e-5 (σ² = 1e-10), floored to σ² = 1e-6, σ = 1e-3.
    # tokens 1–3 (the 4th, the end, is left out), (log p − μ) / σ = −3 / 1e-3 = −3000 each; k = 1 keeps all 3
    scores = membership.membership_scores(_stats([-3.0, -3.0, -3.0, 0.0], [0.0] * 4, [1e-5] * 4), k=1.0)
    assert scores["min_k++"] == pytest.approx(-3000.0)
    # a σ above the floor is used as it is: (−1 − 0) / 0.5 = −2
    assert membership.membership_scores(_stats([-1.0, -1.0, 0.0], [0.0] * 3, [0.5] * 3), k=1.0)["min_k++"] == \
        pytest.approx(-2.0)


# ---- the chapter 09 checkers teach the same definitions ---------------------------------------------------------
def test_the_checkers_accept_the_reference_definitions_and_name_the_old_ones():
    def floor_min_k(log_probs, k=0.2):
        return float(np.sort(np.asarray(log_probs))[:max(1, int(k * len(log_probs)))].mean())

    def ceil_min_k(log_probs, k=0.2):
        return float(np.sort(np.asarray(log_probs))[:max(1, math.ceil(k * len(log_probs)))].mean())

    mu.checks.check_min_k_score(floor_min_k)
    with pytest.raises(AssertionError, match="rounded up"):
        mu.checks.check_min_k_score(ceil_min_k)

    def geometric(ll, correct):
        ll = torch.as_tensor(ll, dtype=torch.float64)
        wrong = torch.cat([ll[:correct], ll[correct + 1:]])
        return float(torch.exp(wrong.mean() - ll[correct]))

    def arithmetic(ll, correct):
        ll = torch.as_tensor(ll, dtype=torch.float64)
        wrong = torch.cat([ll[:correct], ll[correct + 1:]])
        return float(torch.exp(wrong - ll[correct]).mean())

    mu.checks.check_truth_ratio(geometric)
    with pytest.raises(AssertionError, match="arithmetic mean"):
        mu.checks.check_truth_ratio(arithmetic)
