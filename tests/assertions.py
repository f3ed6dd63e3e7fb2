"""Assertions and helpers several test modules share (imported by name: tests/ is on sys.path; not a
conftest, which notebooks/ also has)."""
import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_mask_held(before, after, mask):
    """Mask-0 entries bit-identical; some mask-1 entries moved; every weight outside the mask untouched."""
    moved = 0
    for name, value in after.named_parameters():
        old = before[name]
        if name in mask:
            m = mask[name]
            assert torch.equal(value[~m], old[~m]), f"{name}: an entry with mask 0 changed"
            moved += int((value[m] != old[m]).sum())
        else:
            assert torch.equal(value, old), f"{name} is outside the mask but changed"
    assert moved > 0, "no salient weight moved: the forget step did nothing"


def assert_only_path_rows_moved(before, model, chosen):
    """Only the producer rows of the ``chosen`` neurons changed (and some did)."""
    from mini_unlearn.methods import mip_editor
    parameters, masks = mip_editor.path_rows(model, chosen)
    owned = {id(p): masks[id(p)] for p in parameters}
    moved = 0
    for name, value in model.named_parameters():
        if id(value) in owned:
            rows = owned[id(value)].expand_as(value)
            assert torch.equal(value[~rows], before[name][~rows]), f"{name}: a row outside the paths changed"
            moved += int((value[rows] != before[name][rows]).sum())
        else:
            assert torch.equal(value, before[name]), f"{name} is not a path row but changed"
    assert moved > 0, "no path row moved"
