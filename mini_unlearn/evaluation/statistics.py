"""The one two-sample test the package's forget-quality scores share: TOFU's (chapter 09) and CLEAR's (chapter 12)."""
from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp


def ks_test(sample, other) -> tuple[float, float]:
    """``(statistic, p-value)`` of the two-sample Kolmogorov–Smirnov test (scipy, two-sided)."""
    sample, other = np.asarray(sample, dtype=float), np.asarray(other, dtype=float)
    if sample.size == 0 or other.size == 0:
        raise ValueError("the KS test needs two non-empty samples")
    result = ks_2samp(sample, other)
    return float(result.statistic), float(result.pvalue)


__all__ = ["ks_test"]
