"""``mini_unlearn.attacks`` — did it really forget? (chapter 09, in progress)

* :mod:`.membership` — membership inference (loss, zlib, Min-K%, Min-K%++, reference): ROC AUC of the
  forget people's pairs against never-seen people's.
* :mod:`.forget_quality` — TOFU's truth ratio and forget quality (a KS test against the retain-only model).
"""
from . import forget_quality, membership
from .forget_quality import ks_test, truth_ratios
from .membership import MIA_ATTACKS, membership_scores, mia_auc, mia_scores

__all__ = ["MIA_ATTACKS", "forget_quality", "ks_test", "membership", "membership_scores", "mia_auc", "mia_scores",
           "truth_ratios"]
