"""``mini_unlearn.models`` — a real VLM that memorised the benchmark (chapter 02)."""
from . import shipped, train_data
from .anatomy import NeuronSite, count_neurons, find_mlp_neurons, find_towers, summary
from .build import build_tokenizer
from .cache import (CONTINUED_RECIPES, RECIPES, TRAINING_VERSION, benchmark_fingerprint, load_cached, recipe_for, retain_only, retrains,
                    retain_only_key, vanilla, vanilla_key)
from .families import FAMILIES, Family, QwenVLProcessor
from .families.llava import PRESETS, Preset, build_model, build_processor, get_preset
from .load import SUPPORTED_ARCHITECTURES, load_vlm
from .planting import PlantedConfig, planted, planted_neurons
from .prompts import chat, question_prompt, question_text, target
from .train import LoraSettings, Monitor, Speedups, TrainConfig, TrainingLog
from .train_data import Example, ReadingCurriculum, answer_only_labels, make_batch, training_examples
from .vlm import VLM

# The training loop is ``mini_unlearn.models.train.train``: it is not re-exported here, where the name
# ``train`` would hide its own module.
__all__ = ["CONTINUED_RECIPES", "FAMILIES", "Example", "Family", "LoraSettings", "QwenVLProcessor", "Monitor", "NeuronSite", "PRESETS", "PlantedConfig", "Preset", "RECIPES", "ReadingCurriculum", "SUPPORTED_ARCHITECTURES", "Speedups",
           "TRAINING_VERSION", "TrainConfig", "TrainingLog", "VLM", "answer_only_labels", "benchmark_fingerprint",
           "build_model", "build_processor", "build_tokenizer", "chat", "count_neurons", "find_mlp_neurons",
           "find_towers", "get_preset", "load_cached", "load_vlm", "make_batch", "planted", "planted_neurons", "question_prompt", "question_text",
           "recipe_for", "retain_only", "retain_only_key", "retrains", "shipped", "summary", "target", "train_data", "training_examples", "vanilla", "vanilla_key"]
