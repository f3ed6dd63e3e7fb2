"""The small committed sample under ``data/``: the course benchmark's profiles and a few portraits.

The book and GitHub readers can look at the data without running anything; everything else
regenerates from the seed. ``tests/test_data_sample.py`` regenerates the sample and compares it with
the committed files, which also proves the benchmark is the same on every machine.
"""
from __future__ import annotations

import json
from pathlib import Path

from .benchmark import Benchmark
from .images import encode_png
from .portraits import render_portrait
from .splits import PAPER_RATIOS

SAMPLE_N_PORTRAITS = 8


def sample_contents(bench: Benchmark, n_portraits: int = SAMPLE_N_PORTRAITS) -> dict[str, bytes]:
    """File name → bytes of the sample: ``profiles.json`` and ``portraits/<id>.png`` (+ test views)."""
    record = {
        "benchmark": bench.name,
        "forget_ids": {f"{ratio:.2f}": bench.forget_ids(ratio) for ratio in PAPER_RATIOS},
        "profiles": [p.to_dict() for p in bench.profiles + bench.utility_profiles],
    }
    files = {"profiles.json": (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode()}
    for person in bench.profiles[:n_portraits]:
        files[f"portraits/{person.id}.png"] = encode_png(render_portrait(person.face))
    for person_id in bench.forget_ids(PAPER_RATIOS[0]):
        files[f"portraits/{person_id}_test_view.png"] = encode_png(bench.test_images[person_id].load())
    return files


def write_sample(bench: Benchmark, directory: str | Path, n_portraits: int = SAMPLE_N_PORTRAITS) -> list[Path]:
    """Write :func:`sample_contents` under ``directory``; returns the paths written."""
    written = []
    for name, data in sample_contents(bench, n_portraits).items():
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written
