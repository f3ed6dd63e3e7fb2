"""``mini_unlearn.neurons`` — reading and editing MLP neurons in both towers (chapters 04–07).

* :mod:`.activations` — hooks and streaming per-neuron statistics (chapter 04, 05);
* :mod:`.importance` — MANU's four importance functions and scores (chapter 05);
* :mod:`.edit` — choosing the top neurons and switching them off, reversibly (chapter 05).
"""
from . import importance
from .activations import (AGGREGATIONS, TAU, NeuronStats, aggregate_tokens, collect_stats, mean_activations,
                          question_batches, recording)
from .edit import SCOPES, Pruning, check_alpha, prune_neurons, select_top
from .importance import (METRICS, VARIANTS, importance_abs, importance_freq, importance_rms, importance_var,
                         neuron_scores, official_importance, official_score, paper_importance, relative_score)

__all__ = ["AGGREGATIONS", "METRICS", "SCOPES", "TAU", "VARIANTS", "NeuronStats", "Pruning", "aggregate_tokens",
           "check_alpha", "collect_stats", "importance", "importance_abs", "importance_freq", "importance_rms",
           "importance_var", "mean_activations", "neuron_scores", "official_importance", "official_score",
           "paper_importance", "prune_neurons", "question_batches", "recording", "relative_score", "select_top"]
