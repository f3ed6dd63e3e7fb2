"""``mini_unlearn.neurons`` — reading and editing MLP neurons in both towers (chapters 04–07)."""
from .activations import (AGGREGATIONS, NeuronStats, aggregate_tokens, collect_stats, mean_activations,
                          question_batches, recording)

__all__ = ["AGGREGATIONS", "NeuronStats", "aggregate_tokens", "collect_stats", "mean_activations", "question_batches",
           "recording"]
