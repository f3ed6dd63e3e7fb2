"""``mini_unlearn.methods`` — unlearning methods behind one registry (chapter 04 onwards).

>>> import mini_unlearn as mu
>>> mu.methods.available()
['ga', 'ga_diff', 'kl_min', 'npo', 'manu', 'mmunlearner', 'rmu', 'mip_editor', 'stranger']
>>> result = mu.unlearn(vlm, bench, method="ga_diff", ratio=0.05, lr=3e-5, steps=40)
>>> result.vlm, result.to_frame(), result.touched_by_part()
>>> sequence = mu.unlearn_sequence(vlm, bench, "ga_diff", ratio=0.15, rounds=3)   # requests that keep coming
"""
from . import losses
from .base import (MethodSpec, UnlearnLog, UnlearnResult, available, changed_parameters, describe, get, make_config,
                   register, unlearn)
from .data import FORGET_ON, unlearning_sets
from .gradient import GAConfig, GADiffConfig, GradientConfig, KLMinConfig, NPOConfig, npo_reference
from .loop import TRAINABLE, trainable_parameters
from .manu import MANUConfig, manu_scores, manu_statistics, paper_selection
from .masked_lora import add_masked_lora, merge_masked_lora
from .mmunlearner import MMUnlearnerConfig, default_retain_per_forget
from .rmisu import RMUConfig, control_vector, hidden_states, rmisu_forget_loss, rmisu_loss, rmu_forget_loss
from .mip_editor import MIPEditorConfig, localise, row_mask
from .stranger import StrangerConfig
from .losses import (ga_loss, kl_to_reference, npo_loss, npo_loss_mllmu, npo_loss_released, sequence_log_probs,
                     token_cross_entropy)
from .monitor import split_monitor
from .sequence import SequenceResult, plan_requests, request_rounds, unlearn_sequence
from . import memory   # last: it reads the registry the imports above fill

__all__ = ["FORGET_ON", "GAConfig", "GADiffConfig", "GradientConfig", "KLMinConfig", "MANUConfig", "MIPEditorConfig", "MMUnlearnerConfig", "MethodSpec", "RMUConfig", "NPOConfig", "SequenceResult", "StrangerConfig",
           "TRAINABLE", "UnlearnLog", "memory", "UnlearnResult", "add_masked_lora", "available", "changed_parameters", "control_vector", "default_retain_per_forget", "describe", "ga_loss", "get",
           "hidden_states", "kl_to_reference", "localise", "losses", "make_config", "manu_scores", "manu_statistics", "merge_masked_lora", "npo_loss", "npo_loss_mllmu", "npo_loss_released", "npo_reference", "paper_selection", "plan_requests", "register", "request_rounds", "rmisu_forget_loss", "rmisu_loss", "rmu_forget_loss", "row_mask",
           "sequence_log_probs", "split_monitor", "token_cross_entropy", "trainable_parameters", "unlearn",
           "unlearn_sequence", "unlearning_sets"]
