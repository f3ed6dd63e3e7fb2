"""One leaderboard cell on disk, and a results folder read back: ``mu.results.load(path)``.

A *cell* is one method at one setting, forget ratio and seed. Its :class:`RunRecord` holds everything
needed to cite it: the full configuration, the scores (MLLMU-Bench's tasks per split × modality),
the audit when one ran, the wall times, and the environment (package and library versions, hardware).

A results folder::

    results/
      mini_unlearn-results.json        what the folder holds: the model and the benchmark (one of each)
      runs/<method>__<setting>__ratio<r>__seed<s>.json    one record per finished cell
      scores.csv   runs.csv   audit.csv                    the same, as tidy tables for other tools

The JSON records are the source of truth (a cell is finished when its record exists, so a sweep
resumes where it stopped); the CSV tables are rewritten from them after every cell.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from ..text import fit

FORMAT = "mini_unlearn-results/1"
MARKER = "mini_unlearn-results.json"
REFERENCE = "reference"            # the setting of the two anchors: the vanilla and the retain-only model
ANCHORS: tuple[str, ...] = ("vanilla", "retain_only")
RETRAIN = "retrain"     # the retain-only recipe at another training seed (its seed): exact unlearning done again
SCORE_COLUMNS = ("split", "modality", "task", "metric", "score", "n")
AUDIT_COLUMNS = ("attack", "metric", "modality", "value", "direction")


@dataclass(frozen=True)
class Cell:
    """One leaderboard cell: a method (or an anchor) at one setting, forget ratio and seed."""

    method: str
    setting: str
    ratio: float
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.method}__{self.setting}__ratio{self.ratio:g}__seed{self.seed}"

    @property
    def is_anchor(self) -> bool:
        return self.setting == REFERENCE


@dataclass
class RunRecord:
    """Everything one cell produced, JSON-ready."""

    method: str
    setting: str
    ratio: float
    seed: int
    overrides: dict                  # what differs from the method's registered defaults
    config: dict                     # every hyperparameter the run used
    scores: list[dict]               # SCORE_COLUMNS: mu.evaluate's report, tidy
    seconds: dict                    # unlearn / evaluate / audit / total
    environment: dict                # mini_unlearn.results.environment()
    identity: dict                   # the model and the benchmark (equal for every cell of a folder)
    steps: int = 0
    audit: list[dict] = field(default_factory=list)   # AUDIT_COLUMNS: mu.attacks.metrics, tidy

    @property
    def cell(self) -> Cell:
        return Cell(self.method, self.setting, self.ratio, self.seed)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls(**json.loads(text))


class ResultsFolder:
    """A folder of results for one model on one benchmark: refuses a folder that holds anything else."""

    def __init__(self, path: str | Path, identity: dict):
        self.path = Path(path)
        self.identity = identity
        marker = self.path / MARKER
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"--out {str(self.path)!r} is a file; expected a folder for the results")
        if marker.is_file():
            held = read_marker(self.path)
            if held.get("identity") != identity:
                raise ValueError(f"--out {str(self.path)!r} holds results of another model or benchmark "
                                 f"({describe_identity(held.get('identity', {}))}), not of "
                                 f"{describe_identity(identity)}: choose another folder")
        elif self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"--out {str(self.path)!r} is not empty and is not a mini_unlearn results folder "
                             f"(no {MARKER}): choose an empty or new folder")
        else:
            (self.path / "runs").mkdir(parents=True, exist_ok=True)
            write_atomic(marker, json.dumps({"format": FORMAT, "identity": identity}, indent=1, sort_keys=True) + "\n")

    def record_path(self, cell: Cell) -> Path:
        return self.path / "runs" / f"{cell.name}.json"

    def done(self, cell: Cell) -> bool:
        return self.record_path(cell).is_file()

    def read(self, cell: Cell) -> RunRecord:
        return RunRecord.from_json(self.record_path(cell).read_text())

    def write(self, record: RunRecord) -> Path:
        if record.identity != self.identity:
            raise ValueError("record: it was measured on another model or benchmark than this folder's")
        path = self.record_path(record.cell)
        write_atomic(path, record.to_json())
        write_tables(self.path)
        return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path``, then rename: a stopped sweep never leaves half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def read_marker(path: Path) -> dict:
    try:
        held = json.loads((Path(path) / MARKER).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r}: {MARKER} cannot be read ({error})") from error
    if held.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} holds results in format {held.get('format')!r}; this package reads {FORMAT!r}")
    return held


def describe_identity(identity: dict) -> str:
    model, bench = identity.get("model", {}), identity.get("benchmark", {})
    return f"model {model.get('name', '?')} on benchmark {bench.get('name', '?')}"


# ---------------------------------------------------------------------------------------------------
# Reading a folder back

@dataclass
class Results:
    """A results folder in memory: the records, and tidy frames of their scores, runs and audits."""

    path: Path
    identity: dict
    records: list[RunRecord]

    def _cells(self, rows_of) -> pd.DataFrame:
        frames = [pd.DataFrame(rows_of(r)).assign(method=r.method, setting=r.setting, ratio=r.ratio, seed=r.seed)
                  for r in self.records if rows_of(r)]
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        keys = ["method", "setting", "ratio", "seed"]
        return frame[keys + [c for c in frame.columns if c not in keys]]

    @property
    def scores(self) -> pd.DataFrame:
        """One row per cell × split × modality × task × metric."""
        return self._cells(lambda r: r.scores)

    @property
    def audits(self) -> pd.DataFrame:
        """One row per cell × attack × metric × modality (the cells that were audited)."""
        return self._cells(lambda r: r.audit)

    @property
    def runs(self) -> pd.DataFrame:
        """One row per cell: its overrides, steps, wall times, hardware and library versions."""
        rows = []
        for r in self.records:
            env = r.environment
            rows.append({"method": r.method, "setting": r.setting, "ratio": r.ratio, "seed": r.seed,
                         "overrides": json.dumps(r.overrides, sort_keys=True), "steps": r.steps,
                         **{f"seconds_{k}": v for k, v in r.seconds.items()},
                         "hardware": env.get("hardware"), "device": env.get("device"),
                         "mini_unlearn": env.get("mini_unlearn"), "torch": env.get("torch"),
                         "transformers": env.get("transformers")})
        return pd.DataFrame(rows)

    def record(self, method: str, setting: str, ratio: float, seed: int = 0) -> RunRecord:
        for r in self.records:
            if (r.method, r.setting, r.seed) == (method, setting, seed) and abs(r.ratio - ratio) < 1e-9:
                return r
        raise KeyError(f"no record for {method!r} at setting {setting!r}, ratio {ratio}, seed {seed} in {self.path}")

    def of(self, methods) -> Results:
        """The records of ``methods`` and the vanilla and retain-only anchors only (same folder and identity):
        e.g. the papers' methods without chapter 13's method and its retrain row."""
        methods = set(methods)
        return Results(self.path, self.identity, [r for r in self.records if r.method in methods
                                                  or (r.setting == REFERENCE and r.method in ANCHORS)])

    def __repr__(self) -> str:
        methods = sorted({r.method for r in self.records if r.setting != REFERENCE})
        ratios = sorted({r.ratio for r in self.records})
        return fit(f"Results({self.path.name!r}: {len(self.records)} cells, {describe_identity(self.identity)}; "
                   f"methods {methods}; ratios {ratios})")


def load(path: str | Path) -> Results:
    """Read a results folder written by ``mini-unlearn run`` / ``compare`` (or :class:`ResultsFolder`)."""
    path = Path(path)
    if not (path / MARKER).is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a mini_unlearn results folder (no {MARKER})")
    held = read_marker(path)
    records = [RunRecord.from_json(p.read_text()) for p in sorted((path / "runs").glob("*.json"))]
    return Results(path, held["identity"], records)


def course_results(name: str = "leaderboard") -> Path:
    """The course's committed results folder ``data/results/<name>``, shipped inside the package (chapter
    10 reads ``leaderboard``, ``tuning`` and ``audit``)."""
    folder = Path(__file__).resolve().parents[1] / "data" / "results" / name
    if not folder.is_dir():
        known = sorted(p.name for p in folder.parent.glob("*") if p.is_dir())
        raise FileNotFoundError(f"name: no committed results {name!r} in {folder.parent}; the course ships {known} "
                                f"(or run `mini-unlearn compare` yourself)")
    return folder


def write_tables(path: str | Path) -> None:
    """Rewrite ``scores.csv``, ``runs.csv`` and ``audit.csv`` from the folder's records."""
    results = load(path)
    for name, frame in (("scores", results.scores), ("runs", results.runs), ("audit", results.audits)):
        if not frame.empty:
            write_atomic(Path(path) / f"{name}.csv", frame.to_csv(index=False))


__all__ = ["ANCHORS", "AUDIT_COLUMNS", "Cell", "FORMAT", "course_results", "MARKER", "REFERENCE", "RETRAIN", "ResultsFolder", "Results", "RunRecord",
           "SCORE_COLUMNS", "describe_identity", "load", "write_tables"]
