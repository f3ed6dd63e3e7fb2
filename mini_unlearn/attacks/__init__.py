"""``mini_unlearn.attacks`` — did it really forget? (chapter 09)

* :mod:`.membership` — membership inference (loss, zlib, Min-K%, Min-K%++, reference): ROC AUC of the
  forget people's pairs against the holdout people's (never trained on), and MUSE's PrivLeak.
* :mod:`.forget_quality` — TOFU's truth ratio and forget quality (a KS test against the retain-only model).
* :mod:`.probes` — the forget facts asked by name and by portrait, in other words, with transformed portraits.
* :mod:`.relearning` — a few steps on one fact per person: how much of the rest comes back?
* :mod:`.readout`, :mod:`.linear_probe`, :mod:`.logit_lens` — what the hidden states still hold.
* :mod:`.quantization` — the weights stored in 8 or 4 bits: does rounding give the forgotten facts back? (chapter 12)
* :mod:`.auditing` — all of them in one call, a tidy frame, and the verdict: removed or hidden?

>>> frame = mu.attacks.audit(unlearned, bench, 0.05, reference=retain_only)
"""
from . import auditing, forget_quality, linear_probe, logit_lens, membership, probes, quantization, readout, relearning
from .auditing import Findings, audit, findings, gap_closed, summarise, verdict
from .forget_quality import ks_test, truth_ratios
from .linear_probe import what_probe, who_probe
from .logit_lens import answer_ranks
from .membership import (MIA_ATTACKS, auc_table, forget_vs_holdout, labelled_scores, membership_auc, membership_scores,
                         mia_auc, mia_scores, privleak)
from .probes import recall_probes
from .quantization import quantization_attack, quantize, retained_share, retained_shares, same_levels
from .readout import answer_states
from .relearning import RelearnConfig, relearn

__all__ = ["Findings", "MIA_ATTACKS", "RelearnConfig", "answer_ranks", "answer_states", "auc_table", "audit", "auditing",
           "findings", "forget_quality", "forget_vs_holdout", "gap_closed", "ks_test",
           "labelled_scores", "linear_probe", "logit_lens", "membership", "membership_auc", "membership_scores", "mia_auc", "mia_scores",
           "privleak", "probes", "quantization", "quantization_attack", "quantize", "readout", "recall_probes", "relearn",
           "relearning", "retained_share", "retained_shares", "same_levels", "summarise", "truth_ratios",
           "verdict", "what_probe", "who_probe"]
