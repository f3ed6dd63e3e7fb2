"""``mini_unlearn.bench`` — a benchmark of people who never existed (chapter 01).

>>> import mini_unlearn as mu
>>> bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
>>> bench.split("forget", ratio=0.05)
Split('forget', ratio=0.05: 2 people, 72 questions)
"""
from .benchmark import Benchmark, make_benchmark
from . import mllmu
from .images import EncodedImage, RenderedImage, encode_png
from .portraits import (ATTRIBUTE_VALUES, CANONICAL_VIEW, MIN_ATTRIBUTE_DISTANCE, FaceAttributes, View,
                        attribute_distance, augment, portrait_grid, render_portrait, test_views)
from .profiles import FACT_POOLS, FACTS, Profile
from .questions import IMAGE_TEXT, LETTERS, MODALITIES, TASKS, TEXT_ONLY, QAPair, Question, text_only_twin
from .mllmu import load_mllmu, write_mllmu
from .splits import PAPER_RATIOS, SPLITS, Split, require_ratio, forget_and_retain, n_forget

__all__ = [
    "ATTRIBUTE_VALUES", "Benchmark", "CANONICAL_VIEW", "EncodedImage", "FACTS", "FACT_POOLS", "FaceAttributes",
    "IMAGE_TEXT", "LETTERS", "MIN_ATTRIBUTE_DISTANCE", "MODALITIES", "PAPER_RATIOS", "Profile", "QAPair",
    "Question", "RenderedImage", "SPLITS", "Split", "TASKS", "TEXT_ONLY", "View", "attribute_distance",
    "augment", "require_ratio", "load_mllmu", "mllmu", "write_mllmu", "encode_png", "forget_and_retain", "make_benchmark", "n_forget", "portrait_grid",
    "render_portrait", "test_views", "text_only_twin",
]
