"""Fair tuning: the same budget for every method, chosen by one stated rule on people nobody reports.

**The budget.** Each method gets six settings (:data:`GRIDS`) over its main hyperparameters — the
learning rate × steps of the gradient methods, MANU's α, MMUnlearner's saliency threshold × learning
rate, MIP-Editor's neurons per layer ``k`` × steps, RMU's learning rate × steps.

**The data.** The *validation people*: the first :data:`VALIDATION_RATIO` of the forget ordering
*after* every reported forget set (:func:`validation_benchmark`), so no person of a reported forget
split is ever unlearned or scored while tuning. The retain side is :data:`RETAIN_PEOPLE` retain
people who are not in a reported forget set. A model that never saw the validation people does not
exist, so "never seen" is read from the vanilla model's scores on the **holdout people** (chapter 09:
people no model was trained on), asked the same questions.

**The rule** (:func:`choose`): among the settings that lose at most ``TARGET["drop"]`` points on the
retain people, the one that closes the most of the gap on its weakest forget task × modality, for the
method's own goal (MMUnlearner: the portraits only); ties — most often several settings at 0, because
one task has not moved — go to the larger mean closure over the tasks, then to fewer points lost, then
to the earlier setting of the grid. If no setting keeps the retain people, the one that loses the
fewest points.

**One change while tuning.** NPO's default reference is the retain-only model, which for the
validation people would have to be trained (a training run per model: the shipped retain-only
models took 16 to 24 minutes each on two CPU cores); while tuning, NPO uses the
model before unlearning (the NPO paper's own reference, ``reference="initial"``). The reported
runs use the chosen learning rate and steps with the default reference.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time

import pandas as pd
from tqdm.auto import tqdm

from ..bench.splits import require_ratio
from ..evaluation import evaluate_questions
from ..evaluation.report import Report
from ..evaluation.tasks import TASKS
from ..methods import get, unlearn
from ..methods.base import RegistryField, grid_settings
from ..seeding import seed_everything
from .environment import environment
from .records import Cell, ResultsFolder, RunRecord, write_atomic
from .running import identity, score_rows, seeded
from .scoring import TARGET, main_scores, progress, worst_drop
from .settings import require_overrides, config_dict

REPORTED_RATIOS: tuple[float, ...] = (0.05, 0.10, 0.15)
VALIDATION_RATIO = 0.05
RETAIN_PEOPLE = 10
TUNED_FILE = "tuned.json"

# each method registers its own grid and its overrides while tuning (mu.methods.register(..., grid=...,
# while_tuning=...)); these read them from the registry
GRIDS = RegistryField("grid")
WHILE_TUNING = RegistryField("while_tuning")     # NPO's reference: see the module doc


def candidates(method: str) -> list[dict]:
    """The settings of ``method``'s grid, in order (every key × every value)."""
    if method not in GRIDS:
        raise ValueError(f"method {method!r} has no tuning grid; grids exist for {sorted(GRIDS)}")
    return grid_settings(GRIDS[method])


def validation_benchmark(bench, reported_ratios=REPORTED_RATIOS):
    """``bench`` with a forget ordering that starts after every reported forget set: its forget split
    at :data:`VALIDATION_RATIO` is the validation people, its retain split holds the reported ones."""
    reported = list(dict.fromkeys(pid for ratio in reported_ratios for pid in bench.forget_ids(require_ratio(ratio))))
    rest = [pid for pid in bench.forget_order if pid not in reported]
    rest += [p.id for p in bench.profiles if p.id not in rest and p.id not in reported]
    if len(rest) < len(bench.forget_ids(VALIDATION_RATIO)) + RETAIN_PEOPLE:
        raise ValueError(f"bench: {bench.name} has {len(rest)} people outside the reported forget sets; tuning "
                         f"needs validation people and {RETAIN_PEOPLE} retain people among them")
    return dataclasses.replace(bench, name=f"{bench.name}/validation", forget_order=rest + reported, forget_sets={})


@dataclasses.dataclass
class Validation:
    """The people tuning reads: the validation forget people, the retain people, the holdout people."""

    bench: object
    forget: list
    retain: list
    holdout: list

    @classmethod
    def of(cls, bench, reported_ratios=REPORTED_RATIOS):
        valid = validation_benchmark(bench, reported_ratios)
        reported = {pid for ratio in reported_ratios for pid in bench.forget_ids(ratio)}
        forget = valid.split("forget", VALIDATION_RATIO).questions
        people = [pid for pid in valid.split("retain", VALIDATION_RATIO).ids if pid not in reported][:RETAIN_PEOPLE]
        retain = [q for pid in people for q in valid.questions[pid]]
        holdout = bench.split("holdout", max(reported_ratios)).questions
        return cls(valid, list(forget), retain, list(holdout))

    def scores(self, vlm) -> list[dict]:
        """Tidy score rows: the validation forget people as ``forget``, the retain people as ``retain``."""
        frames = [evaluate_questions(vlm, self.forget, "forget", TASKS, bench=self.bench),
                  evaluate_questions(vlm, self.retain, "retain", TASKS, bench=self.bench)]
        return score_rows(Report(pd.concat(frames, ignore_index=True)))

    def never_seen(self, vlm) -> pd.Series:
        """The vanilla model on the holdout people, labelled as the forget split: what "never seen" scores."""
        frame = evaluate_questions(vlm, self.holdout, "forget", TASKS, bench=self.bench)
        return main_scores(score_rows(Report(frame)))


def choose(rows: list[dict]) -> int:
    """The index of the chosen setting among ``rows`` (each with ``closure``, ``closure_mean`` and
    ``worst_drop``): see the rule."""
    if not rows:
        raise ValueError("rows is empty: no tuning runs to choose from")
    kept = [i for i, row in enumerate(rows) if row["worst_drop"] <= TARGET["drop"]]
    if kept:
        return max(kept, key=lambda i: (_finite(rows[i]["closure"]), _finite(rows[i]["closure_mean"]),
                                        -rows[i]["worst_drop"], -i))
    return min(range(len(rows)), key=lambda i: (rows[i]["worst_drop"], i))


def _finite(value: float) -> float:
    return float("-inf") if math.isnan(value) else value


def tune(vlm, bench, methods, out, *, seed: int = 0, reported_ratios=REPORTED_RATIOS, progress_bar: bool = True) -> dict:
    """Run every method's grid on the validation people, write one record per setting under ``out``
    (resumable) and ``out/tuned.json``; returns ``{method: chosen overrides}``."""
    methods = list(methods)
    for method in methods:
        get(method)
        candidates(method)
    validation = Validation.of(bench, reported_ratios)
    folder = ResultsFolder(out, identity(vlm, validation.bench))
    vanilla = main_scores(validation.scores(vlm))
    never_seen = validation.never_seen(vlm)
    table, chosen = [], {}
    todo = [(m, i, c) for m in methods for i, c in enumerate(candidates(m))]
    for method, index, overrides in tqdm(todo, desc="tuning", unit="run", disable=not progress_bar):
        cell = Cell(method, f"candidate{index}", VALIDATION_RATIO, seed)
        if folder.done(cell):
            record = folder.read(cell)
        else:
            record = _run_candidate(vlm, validation, cell, overrides, seed)
            folder.write(record)
        result = progress(main_scores(record.scores), vanilla, never_seen, goal=get(method).goal, kept=("retain",))
        table.append({"method": method, "candidate": index, **overrides, "closure": result["closure"],
                      "closure_mean": result["closure_mean"], "worst_drop": worst_drop(result),
                      "seconds": record.seconds["total"]})
    frame = pd.DataFrame(table)
    for method in methods:
        rows = frame[frame["method"] == method].to_dict("records")
        chosen[method] = candidates(method)[choose(rows)]
    frame["chosen"] = [candidates(m)[i] == chosen[m] for m, i in zip(frame["method"], frame["candidate"])]
    write_atomic(folder.path / "tuning.csv", frame.to_csv(index=False))
    write_atomic(folder.path / TUNED_FILE, json.dumps(
        {"rule": f"among settings losing <= {TARGET['drop']:g} retain points: max weakest-task closure, then max "
                 "mean closure, then fewest points; if none, fewest points lost", "validation_ratio": VALIDATION_RATIO, "retain_people": RETAIN_PEOPLE,
         "reported_ratios": list(reported_ratios), "seed": seed, "while_tuning": dict(WHILE_TUNING),
         "methods": chosen}, indent=1, sort_keys=True) + "\n")
    return chosen


def _run_candidate(vlm, validation: Validation, cell: Cell, overrides: dict, seed: int) -> RunRecord:
    method = cell.method
    hyperparameters = seeded(method, {**require_overrides(method, overrides), **WHILE_TUNING.get(method, {})}, seed)
    seed_everything(seed)
    started = time.perf_counter()
    result = unlearn(vlm, validation.bench, method=method, ratio=VALIDATION_RATIO, progress=False, **hyperparameters)
    seconds = {"unlearn": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    scores = validation.scores(result.vlm)
    seconds["evaluate"] = round(time.perf_counter() - started, 2)
    seconds["total"] = round(sum(seconds.values()), 2)
    return RunRecord(method, cell.setting, cell.ratio, seed, overrides, config_dict(method, hyperparameters), scores,
                     seconds, environment(result.vlm.device), identity(vlm, validation.bench),
                     steps=len(result.log.losses))


def read_tuned(path) -> dict[str, dict]:
    """``{method: overrides}`` from a ``tuned.json`` written by :func:`tune` (a folder or the file)."""
    from pathlib import Path

    path = Path(path)
    path = path / TUNED_FILE if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--tuned {str(path)!r} cannot be read as a tuned.json written by `mini-unlearn tune` "
                         f"({error})") from error
    methods = data.get("methods")
    if not isinstance(methods, dict):
        raise ValueError(f"--tuned {str(path)!r} has no 'methods' table; "  # noqa: TRY004 (a bad file)
                         "expected a tuned.json from `mini-unlearn tune`")
    return {method: require_overrides(method, dict(overrides)) for method, overrides in methods.items()}


__all__ = ["GRIDS", "REPORTED_RATIOS", "RETAIN_PEOPLE", "TUNED_FILE", "VALIDATION_RATIO", "Validation", "WHILE_TUNING",
           "candidates", "choose", "read_tuned", "tune", "validation_benchmark"]
