"""``mini_unlearn.neurons`` — reading and editing MLP neurons in both towers (chapters 04–07).

* :mod:`.activations` — hooks and streaming per-neuron statistics (chapter 04, 05);
* :mod:`.importance` — MANU's four importance functions and scores (chapter 05);
* :mod:`.edit` — choosing the top neurons and switching them off, reversibly (chapter 05);
* :mod:`.saliency` — MMUnlearner's weight-saliency masks (chapter 06);
* :mod:`.paths` — MIP-Editor's IGI / IFI neuron paths across layers (chapter 07);
* :mod:`.ground_truth` — scoring any of them against the planted model's known neurons (chapters 05–08).
"""
from . import ground_truth, importance, paths, saliency
from .activations import (AGGREGATIONS, TAU, NeuronStats, aggregate_tokens, collect_stats, mean_activations,
                          question_batches, recording)
from .edit import SCOPES, Pruning, require_alpha, prune_neurons, select_top, site_towers
from .importance import (METRICS, VARIANTS, importance_abs, importance_freq, importance_rms, importance_var,
                         literal_vision_score, neuron_scores, official_importance, official_score, paper_importance,
                         paper_score, relative_score, released_importance, released_score, select_released,
                         vision_score)
from .ground_truth import (mlp_parameter_towers, neuron_precision_recall, planted_weights, random_selection,
                           share_on, top_share, weight_precision_recall)
from .paths import NeuronPaths, attribute_sample, find_paths, zscore_fisher
from .saliency import (SaliencyMask, compute_saliency, maskable_parameters, preserve_examples, preserve_sets,
                       saliency_mask, salient_shares, squared_gradients)

__all__ = ["AGGREGATIONS", "METRICS", "SCOPES", "TAU", "VARIANTS", "NeuronPaths", "NeuronStats", "Pruning", "SaliencyMask", "aggregate_tokens", "attribute_sample",
           "require_alpha", "collect_stats", "ground_truth", "mlp_parameter_towers", "neuron_precision_recall", "planted_weights", "random_selection", "share_on", "top_share", "weight_precision_recall", "compute_saliency", "find_paths", "importance", "importance_abs", "importance_freq", "importance_rms",
           "importance_var", "literal_vision_score", "maskable_parameters", "mean_activations", "neuron_scores", "official_importance", "official_score",
           "paper_importance", "paper_score", "paths", "preserve_examples", "preserve_sets", "prune_neurons", "question_batches", "recording", "relative_score", "released_importance", "released_score", "saliency", "saliency_mask", "salient_shares", "select_released", "select_top", "site_towers", "squared_gradients",
           "vision_score", "zscore_fisher"]
