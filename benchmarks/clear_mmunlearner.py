"""MMUnlearner on CLEAR: what keeps the answers by name while the face is forgotten? (prints figures)

    .venv/bin/python benchmarks/clear_mmunlearner.py            # about 10 minutes on 2 CPU cores

writes ``mini_unlearn/data/results/clear/mmunlearner_forms.csv`` (``--out`` elsewhere), which chapter 12's
worked answer to its question 4 prints.

Chapter 12's committed CLEAR run (``mini_unlearn.results.clear``) unlearns the course's CLEAR model with
MMUnlearner at the setting chapter 10 tuned on the course benchmark: the forget people's faces are forgotten,
and so are most of their answers by name, the one thing MMUnlearner's goal keeps. This script runs MMUnlearner
at 5 % in four forms and prints CLEAR's board row of each (``mini_unlearn.results.clear.board``):

* ``tuned``: the committed setting (learning rate and saliency threshold from ``results/tuning``);
* ``default``: MMUnlearner's defaults (a learning rate ten times smaller);
* ``tuned, no retain``: the tuned setting with ``retain_per_forget=0`` (masked ascent alone);
* ``tuned, unmasked``: the tuned setting with ``retain_mask="released"`` (the retain steps change
  every weight, as the released code's full fine-tuning does).

MMUnlearner's retain steps run over the retain people's image+text pairs, as its released loader does: on
the course benchmark those ask the same facts as the questions by name, on CLEAR they are captions.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import mini_unlearn as mu
from mini_unlearn.release import course_clear
from mini_unlearn.results import clear as clear_results

RATIO = 0.05
FILE = "mmunlearner_forms.csv"      # beside the committed CLEAR run


def main(out: Path) -> pd.DataFrame:
    clear = course_clear()
    tuned = mu.results.read_tuned(mu.results.course_results("tuning"))["mmunlearner"]
    forms = {"tuned": tuned, "default": {}, "tuned, no retain": {**tuned, "retain_per_forget": 0},
             "tuned, unmasked": {**tuned, "retain_mask": "released"}}
    vlm = mu.models.vanilla(clear, device="cpu")
    gold = mu.evaluate(mu.models.retain_only(clear, RATIO, device="cpu"), clear, RATIO, progress=False)
    rows = [clear_results.report_rows(gold.against(gold), "retain_only", "reference", RATIO)]
    for name, overrides in forms.items():
        started = time.perf_counter()
        mu.seed_everything(0)
        result = mu.unlearn(vlm, clear, "mmunlearner", RATIO, progress=False, **overrides)
        report = mu.evaluate(result.vlm, clear, RATIO, reference=gold, progress=False)
        rows.append(clear_results.report_rows(report, name, "variant", RATIO))
        print(f"{name} {overrides}: {time.perf_counter() - started:.0f} s", flush=True)
    scores = pd.concat(rows, ignore_index=True)
    scores["score"] = scores["score"].astype(float).round(6)
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out, index=False)
    table = clear_results.board(scores, RATIO)
    print("\nMMUnlearner on CLEAR at 5 % (f./r.: forget/retain people; FQ: forget quality)")
    print(table.round(3).to_string())
    print(f"\nwrote {out}")
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=mu.results.course_results(clear_results.FOLDER) / FILE,
                        help="the CSV to write (default: beside the committed CLEAR run)")
    main(parser.parse_args().out)
