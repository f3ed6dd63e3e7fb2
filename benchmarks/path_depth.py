"""Paths vs point-wise at two depths: does the cascade matter on a deeper course model? (prints figures)

    .venv/bin/python benchmarks/path_depth.py                       # tiny (2 + 2 layers) and tiny_deep (4 + 4)
    .venv/bin/python benchmarks/path_depth.py --presets tiny_deep

The paper's ablation (MIP-Editor §4.6): with point-wise attribution instead of paths the forget set is
forgotten as well, but the retain set collapses. With 2 layers per tower the course model has little
room for a cascade (chapters 07–08). This script runs MIP-Editor on the course benchmark (40 people,
forget 5 %) at each preset with its defaults and with the localisation swapped — paths (the paper's
score), point-wise, and paths scored by each neuron's own integrated gradient (``variant="neuron_ig"``)
— and prints the forget / retain scores in both modalities, the number of located neurons and how
much the path and point-wise rankings agree (Spearman, per layer, over the forget samples' scores).

A preset's vanilla model is trained on first use and cached (``tiny`` ships; ``tiny_deep`` takes about
25 minutes on 2 CPU cores the first time).
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

import mini_unlearn as mu
from mini_unlearn.methods.mip_editor import MIPEditorConfig, localise
from mini_unlearn.release import COURSE_RATIO, course_benchmark

SETTINGS = {"paths (paper)": {}, "point-wise": {"localise": "point"}, "paths (neuron_ig)": {"variant": "neuron_ig"}}
TASKS = ("mcq_likelihood", "cloze")
CELLS = (("forget", "image+text"), ("forget", "text"), ("retain", "image+text"), ("retain", "text"))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = lambda t: t.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ranks(a), ranks(b)]))[0, 1])


def rank_agreement(vlm, bench) -> pd.DataFrame:
    """Per layer: Spearman of the paper's path scores with the point-wise scores, and the shared top-k."""
    found = {name: localise(vlm, bench, COURSE_RATIO, MIPEditorConfig(localise=mode))
             for name, mode in (("path", "path"), ("point", "point"))}
    rows = []
    for branch, path in found["path"].items():
        point = found["point"][branch]
        for site in path.sites:
            shared = len(set(path.union[site.name].tolist()) & set(point.union[site.name].tolist()))
            rows.append({"branch": branch, "tower": site.tower, "layer": site.layer,
                         "spearman": round(spearman(path.scores[site.name], point.scores[site.name]), 3),
                         "path neurons": len(path.union[site.name]), "shared with point-wise": shared})
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "tiny_deep"])
    parser.add_argument("--lr", type=float, default=None, help="MIP-Editor's learning rate (default: the method's)")
    args = parser.parse_args()
    tuned = {} if args.lr is None else {"lr": args.lr}
    bench = course_benchmark()
    for preset in args.presets:
        mu.seed_everything(0)
        vlm = mu.models.vanilla(bench, preset=preset, seed=0)
        layers = (vlm.model.config.vision_config.num_hidden_layers, vlm.model.config.text_config.num_hidden_layers)
        print(f"\n=== {preset}: {layers[0]} vision + {layers[1]} language layers; MIP-Editor {tuned or 'defaults'} ===")
        print(rank_agreement(vlm, bench).to_string(index=False))
        reports, neurons, seconds = {"vanilla": mu.evaluate(vlm, bench, ratio=COURSE_RATIO, tasks=TASKS,
                                                             splits=("forget", "retain"), progress=False)}, {}, {}
        for name, options in SETTINGS.items():
            start = time.perf_counter()
            result = mu.unlearn(vlm, bench, method="mip_editor", ratio=COURSE_RATIO, progress=False, **tuned, **options)
            seconds[name] = time.perf_counter() - start
            neurons[name] = sum(len(p) for p in result.log.details["paths"].values())
            reports[name] = mu.evaluate(result.vlm, bench, ratio=COURSE_RATIO, tasks=TASKS, splits=("forget", "retain"),
                                        progress=False)
        table = mu.evaluation.score_table(reports, tasks=TASKS, cells=CELLS).astype(float).round(2)
        table[("neurons", "")] = pd.Series(neurons)
        table[("unlearn s", "")] = pd.Series(seconds).round(1)
        with pd.option_context("display.width", 250):
            print(table.to_string())


if __name__ == "__main__":
    main()
