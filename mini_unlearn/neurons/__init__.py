"""``mini_unlearn.neurons`` — reading and editing MLP neurons in both towers (chapters 04–07).

* :mod:`.activations` — hooks and streaming per-neuron statistics (chapter 04, 05);
* :mod:`.importance` — MANU's four importance functions and scores (chapter 05);
* :mod:`.edit` — choosing the top neurons and switching them off, reversibly (chapter 05);
* :mod:`.saliency` — MMUnlearner's weight-saliency masks (chapter 06).
"""
from . import importance, saliency
from .activations import (AGGREGATIONS, TAU, NeuronStats, aggregate_tokens, collect_stats, mean_activations,
                          question_batches, recording)
from .edit import SCOPES, Pruning, check_alpha, prune_neurons, select_top
from .importance import (METRICS, VARIANTS, importance_abs, importance_freq, importance_rms, importance_var,
                         neuron_scores, official_importance, official_score, paper_importance, relative_score)
from .saliency import SaliencyMask, compute_saliency, maskable_parameters, preserve_examples, saliency_mask, squared_gradients

__all__ = ["AGGREGATIONS", "METRICS", "SCOPES", "TAU", "VARIANTS", "NeuronStats", "Pruning", "SaliencyMask", "aggregate_tokens",
           "check_alpha", "collect_stats", "compute_saliency", "importance", "importance_abs", "importance_freq", "importance_rms",
           "importance_var", "maskable_parameters", "mean_activations", "neuron_scores", "official_importance", "official_score",
           "paper_importance", "preserve_examples", "prune_neurons", "question_batches", "recording", "relative_score", "saliency", "saliency_mask", "select_top", "squared_gradients"]
