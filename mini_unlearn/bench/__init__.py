"""``mini_unlearn.bench`` — a benchmark of people who never existed (chapter 01).

>>> import mini_unlearn as mu
>>> bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
>>> bench.split("forget", ratio=0.05)
Split('forget', ratio=0.05: 2 people, 72 questions)

CLEAR, the second benchmark (chapter 12), in the same shape: ``make_clear`` generates it from the same people,
``load_clear`` / ``write_clear`` read and write the Hub's files (:mod:`.clear`, :mod:`.clear_files`).
"""
from .benchmark import Benchmark, make_benchmark
from . import mllmu
from .images import EncodedImage, RenderedImage, encode_png
from .portraits import (ATTRIBUTE_VALUES, CANONICAL_VIEW, MIN_ATTRIBUTE_DISTANCE, FaceAttributes, View,
                        attribute_distance, augment, portrait_grid, render_portrait, test_views)
from .profiles import FACT_POOLS, FACTS, Profile
from .questions import IMAGE_TEXT, LETTERS, MODALITIES, TASKS, TEXT_ONLY, QAPair, Question, text_only_twin
from .mllmu import load_mllmu, write_mllmu
from . import clear, clear_files
from .clear import CLEAR_RATIOS, CLEAR_SPLITS, ClearBenchmark, ClearItem, make_clear
from .clear_files import load_clear, write_clear
from .splits import PAPER_RATIOS, SPLITS, Split, require_ratio, forget_and_retain, n_forget

__all__ = [
    "ATTRIBUTE_VALUES", "Benchmark", "CANONICAL_VIEW", "CLEAR_RATIOS", "CLEAR_SPLITS", "ClearBenchmark", "ClearItem",
    "EncodedImage", "FACTS", "FACT_POOLS", "FaceAttributes", "IMAGE_TEXT", "LETTERS", "MIN_ATTRIBUTE_DISTANCE",
    "MODALITIES", "PAPER_RATIOS", "Profile", "QAPair", "Question", "RenderedImage", "SPLITS", "Split", "TASKS",
    "TEXT_ONLY", "View", "attribute_distance", "augment", "clear", "clear_files", "encode_png", "forget_and_retain",
    "load_clear", "load_mllmu", "make_benchmark", "make_clear", "mllmu", "n_forget", "portrait_grid",
    "render_portrait", "require_ratio", "test_views", "text_only_twin", "write_clear", "write_mllmu",
]
