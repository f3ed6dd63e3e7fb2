"""What a result was measured on: the package and library versions, the processor or GPU, the threads.

A leaderboard row is only citable with this beside it: the same seed gives the same numbers on the
same software, and the wall times mean nothing without the hardware.
"""
from __future__ import annotations

import platform
import sys

import torch

from .. import _version
from ..models.cache import cpu_name

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "numpy", "pandas", "scikit-learn", "rouge-score")


def library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def environment(device: str | torch.device | None = None) -> dict:
    """The package (``mini_unlearn.__version__``, read once at import), Python and library versions, and the hardware the run used."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"mini_unlearn": _version.VERSION, "python": platform.python_version(), "platform": sys.platform,
            **{name: library_version(name) for name in LIBRARIES},
            "device": str(device), "hardware": hardware, "threads": torch.get_num_threads()}


__all__ = ["LIBRARIES", "environment", "library_version"]
