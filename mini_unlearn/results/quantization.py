"""The quantization attack on every method, committed for chapter 12.

:func:`quantization_results` unlearns the course model once with every registered method at its tuned setting
(the committed ``tuning`` results), at ratio :data:`RATIO`, seed :data:`SEED`, and runs the quantization attack
(:func:`mini_unlearn.attacks.quantization_attack`) on each at 8 and 4 bits, against the vanilla and retain-only
models quantized the same way; the two anchors get rows of their own (retained 1 and 0 at every precision, by
construction: the table's baselines). It writes, under ``out``:

* ``quantization.csv`` — method × precision × modality: the forget and retain people's cloze recall, the two
  anchors' forget recall at that precision, ``retained`` and ``recovered`` (the module doc of
  :mod:`mini_unlearn.attacks.quantization` defines them);
* ``levels.csv`` — method × bits: of the weights the method changed, how many round to the vanilla model's
  stored value (:func:`~mini_unlearn.attacks.quantization.same_levels`): why the figure is what it is;
* ``settings.json`` — what was run: the ratio, the seed, the bit widths, each method's overrides and full config,
  the anchors' keys, the benchmark's fingerprint, the versions.

Rerun it with

    python3 -c "import mini_unlearn.results.quantization as q; q.main()"

(about 3 minutes on 2 CPU cores; :func:`read` loads the committed tables).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .. import validate
from ..attacks.quantization import (COLUMNS as ATTACK_COLUMNS, FULL, readings, recovery, require_bit_widths,
                                    require_bitsandbytes, same_levels)
from ..bench import make_benchmark
from ..bench.splits import require_ratio
from ..methods import unlearn
from ..models import retain_only, vanilla
from ..models.cache import benchmark_fingerprint
from ..seeding import seed_everything
from .environment import environment, library_version
from .records import course_results, write_atomic
from .running import identity, method_setting, printer, results_folder
from .settings import require_methods
from .tuning import read_tuned

RATIO = 0.05            # the course's forget set: 2 of its 40 people
SEED = 0
BITS = (8, 4)
FOLDER = "quantization"   # mini_unlearn/data/results/quantization
# the course benchmark (mini_unlearn.release.COURSE_BENCHMARK, which the results stage may not import;
# tests/test_quantization.py checks that the two agree)
COURSE_BENCHMARK = {"n_profiles": 40, "seed": 0}
COLUMNS = ("method", "setting", *ATTACK_COLUMNS)
LEVEL_COLUMNS = ("method", "setting", "bits", "weights", "changed", "same_level")
ANCHORS = ("vanilla", "retain_only")
COMMAND = 'python3 -c "import mini_unlearn.results.quantization as q; q.main()"'


def quantization_results(vlm, bench, out, *, reference, methods=None, tuned: dict | None = None, ratio: float = RATIO,
                         bits=BITS, seed: int = SEED, progress: bool = True) -> pd.DataFrame:
    """Every method of ``methods`` (default: every registered one) at its ``tuned`` overrides (``{method:
    overrides}``, as :func:`~.tuning.read_tuned` returns; a method missing from it runs at its defaults), each
    seeded with ``seed``, unlearned from ``vlm`` at ``ratio`` and attacked at each of ``bits`` against ``vlm``
    and the retain-only ``reference``; writes ``quantization.csv``, ``levels.csv`` and ``settings.json`` under
    ``out`` and returns the first. Every argument is checked before anything runs."""
    methods, tuned = require_methods(methods, tuned)
    ratio = require_ratio(ratio)
    widths = require_bit_widths(bits)
    validate.seed(seed)
    if reference is None or reference is vlm:
        raise ValueError("reference: pass the retain-only model at this ratio (it never saw the forget people)")
    require_bitsandbytes()
    out, say = results_folder(out), printer(progress)

    say("the anchors: vanilla and retain-only, at full precision and " + ", ".join(f"{b}-bit" for b in widths))
    anchors = {"vanilla": readings(vlm, bench, ratio, widths), "retain_only": readings(reference, bench, ratio, widths)}
    frames = [recovery(read, anchors["vanilla"], anchors["retain_only"]).assign(method=name, setting="reference")
              for name, read in anchors.items()]
    levels, configs = [], {}
    for method in methods:
        overrides, setting, hyperparameters, configs[method] = method_setting(method, tuned, seed)
        started = time.perf_counter()
        seed_everything(seed)
        unlearned = unlearn(vlm, bench, method=method, ratio=ratio, progress=False, **hyperparameters).vlm
        mine = readings(unlearned, bench, ratio, widths)
        frames.append(recovery(mine, anchors["vanilla"], anchors["retain_only"]).assign(method=method, setting=setting))
        for width in widths:
            counted = same_levels(vlm, unlearned, width)[["weights", "changed", "same_level"]].sum()
            levels.append({"method": method, "setting": setting, "bits": width, **counted.astype(int).to_dict()})
        say(f"{method} ({setting}: {overrides}): {time.perf_counter() - started:.0f} s")

    frame = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    numbers = ["forget", "retain", "vanilla", "reference", "retained", "recovered"]
    frame[numbers] = frame[numbers].astype(float).round(6)
    write_atomic(out / "quantization.csv", frame.to_csv(index=False))
    write_atomic(out / "levels.csv", pd.DataFrame(levels, columns=list(LEVEL_COLUMNS)).to_csv(index=False))
    settings = {"command": COMMAND, "ratio": ratio, "seed": seed, "bits": list(widths), "tasks": ["cloze"],
                "methods": configs,
                "anchors": {"vanilla": identity(vlm, bench)["model"], "retain_only": identity(reference, bench)["model"]},
                "benchmark": {"name": bench.name, "fingerprint": benchmark_fingerprint(bench)},
                "environment": {**environment(vlm.device), "bitsandbytes": library_version("bitsandbytes")}}
    write_atomic(out / "settings.json", json.dumps(settings, indent=1, sort_keys=True) + "\n")
    return frame


def summary(frame: pd.DataFrame, value: str = "retained") -> pd.DataFrame:
    """Method × modality (``i+t``: image+text) by precision: one column of ``frame`` (``retained``,
    ``recovered``, ``forget``, ``retain``), the anchors first."""
    if value not in ATTACK_COLUMNS[3:]:
        raise ValueError(f"value must be one of {ATTACK_COLUMNS[3:]}; got {value!r}")
    shown = frame.assign(modality=frame["modality"].replace({"image+text": "i+t"}))
    if value == "recovered":
        shown = shown[shown["precision"] != FULL]
    table = shown.pivot_table(index=["method", "modality"], columns="precision", values=value, aggfunc="first",
                              sort=False, dropna=False)
    return table[list(dict.fromkeys(shown["precision"]))]


def read(name: str = FOLDER) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The committed results: ``quantization.csv``, ``levels.csv`` and ``settings.json``."""
    folder = course_results(name)
    return (pd.read_csv(folder / "quantization.csv"), pd.read_csv(folder / "levels.csv"),
            json.loads((folder / "settings.json").read_text()))


def main(out=None, methods=None) -> pd.DataFrame:
    """Chapter 12's committed quantization attack: the course benchmark, its shipped vanilla and retain-only
    models, every method at its tuned setting (the committed ``tuning`` results) at ratio 0.05, attacked at 8 and
    4 bits; writes ``mini_unlearn/data/results/quantization`` (or ``out``) and prints the tables."""
    bench = make_benchmark(**COURSE_BENCHMARK)
    tuned = read_tuned(course_results("tuning"))
    out = Path(out) if out is not None else Path(__file__).resolve().parents[1] / "data" / "results" / FOLDER
    vlm = vanilla(bench, device="cpu", progress=False)
    reference = retain_only(bench, RATIO, device="cpu", progress=False)
    started = time.perf_counter()
    frame = quantization_results(vlm, bench, out, reference=reference, methods=methods, tuned=tuned)
    levels = pd.read_csv(out / "levels.csv")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        for value, what in (("forget", "the forget people's cloze recall"), ("retain", "the retain people's"),
                            ("retained", "the share of the vanilla → retain-only gap the model still holds"),
                            ("recovered", "retained at b bits − retained at full precision")):
            print(f"\n{value}: {what}")
            print(summary(frame, value).to_string(float_format=lambda x: f"{x:.3f}"))
        print("\nof the weights each method changed, how many are stored at the vanilla model's level (same_level)")
        print(levels.assign(share=(levels["same_level"] / levels["changed"]).round(3)).to_string(index=False))
    print(f"\nwrote {out} in {time.perf_counter() - started:.0f} s")
    return frame


__all__ = ["ANCHORS", "BITS", "COLUMNS", "COMMAND", "COURSE_BENCHMARK", "FOLDER", "LEVEL_COLUMNS", "RATIO", "SEED",
           "main", "quantization_results", "read", "summary"]
