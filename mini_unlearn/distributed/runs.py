"""A check's run on one process or several, as files: launched, written once, read back (chapter 11b).

:mod:`.check` (data parallelism) and :mod:`.sharded_check` (FSDP2) each run one script on one process and
on two, and line the two runs up. What they share is here: the launched processes' environment
(:func:`child_environment`), a command run to its end (:func:`run_command`), and a run's files, written by
rank 0 (:func:`save_run`) and read back (:func:`load_run`), MANU's statistics among them
(:func:`statistic_tensors`).
"""
from __future__ import annotations

import json
import os
import site
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import is_main

TENSORS, FIGURES = "tensors.safetensors", "figures.json"

__all__ = ["FIGURES", "TENSORS", "child_environment", "load_run", "run_command", "save_run", "statistic_tensors"]


def child_environment() -> dict[str, str]:
    """The environment of the launched processes: one thread each, and this very copy of the package.

    An installed package is found by the same interpreter anyway; a source checkout imported through
    the current directory or ``PYTHONPATH`` is put first on the children's ``PYTHONPATH``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    home = Path(__file__).resolve().parents[2]          # the folder this copy of mini_unlearn is imported from
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if home not in installed:
        env["PYTHONPATH"] = os.pathsep.join([str(home), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run_command(command: list[str], processes: int, timeout: float) -> None:
    """Run a launch ``command`` in :func:`child_environment`; a failure raises with the end of its stderr."""
    done = subprocess.run(command, check=False, env=child_environment(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{processes} process(es) failed:\n{done.stderr[-4000:]}")


def save_run(out: Path, tensors: dict[str, torch.Tensor], figures: dict) -> None:
    """Rank 0 writes a run's tensors and figures into ``out`` (the other processes write nothing)."""
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_file({name: t.contiguous() for name, t in tensors.items()}, str(out / TENSORS))
        (out / FIGURES).write_text(json.dumps(figures))


def load_run(out: str | Path, module: str) -> tuple[dict, dict]:
    """The tensors and the figures one run of ``module`` wrote into ``out``."""
    out = Path(out)
    if not (out / FIGURES).is_file():
        raise FileNotFoundError(f"out: no run in {str(out)!r} (expected {TENSORS} and {FIGURES} "
                                f"written by `python -m {module} run OUT`)")
    return load_file(str(out / TENSORS)), json.loads((out / FIGURES).read_text())


def statistic_tensors(stats: dict) -> dict[str, torch.Tensor]:
    """MANU's statistics (``{split: {view: {site: NeuronStats}}}``) as named tensors: each site's sums
    (``manu/SPLIT/VIEW/SITE/SUM``) and its sample count (``…/count``)."""
    tensors = {}
    for split, by_view in stats.items():
        for view, by_site in by_view.items():
            for site_name, site_stats in by_site.items():
                for name, total in site_stats.sums().items():
                    tensors[f"manu/{split}/{view}/{site_name}/{name}"] = total
                tensors[f"manu/{split}/{view}/{site_name}/count"] = torch.tensor([site_stats.count])
    return tensors
