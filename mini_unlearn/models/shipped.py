"""The course's trained models, shipped in ``mini_unlearn/data/models/`` so no learner and no CI run waits for training.

Training the course's ``tiny`` vanilla model took 15.5 minutes on a CPU (its card's ``wall_seconds``),
and its retain-only twins (NPO's references, one per forget ratio) 15 to 24. All are committed to
the repository, one folder each, as an ordinary checkpoint (``config.json``, ``model.safetensors``, the processor's files) plus the card
``mini_unlearn.json``, which records:

* ``cache_key``: everything that decided the weights (benchmark fingerprint, people, preset, seed,
  recipe, training-code version; see :mod:`.cache`);
* ``training`` / ``reading_phase``: the full training log, every loss and every probe;
* ``sha256``: the checksum of every other file in the folder.

:func:`~.cache.vanilla` and :func:`~.cache.retain_only` load a shipped folder when, and only when, its
recorded key equals the key the current code computes for the requested configuration; any other
seed, preset, benchmark or recipe trains (and caches) as before. Loading verifies every checksum first,
refuses a folder that holds a file its card does not list (so no pickle can hide there), and reads the
weights with safetensors only: nothing is unpickled.

The tests keep the folders honest: the recorded keys must equal the keys the current code computes
(a changed recipe or training version fails until the models are rebuilt), and the first steps of the
recipe, retrained from the seed, must retrace the shipped training log. ``python3 course.py retrain``
(:func:`mini_unlearn.release.rebuild_course_models`) rebuilds them from scratch.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from .vlm import CARD_FILE, VLM

CHECKSUMS = "sha256"     # the card's field: {file name: sha256 hex digest} of every other file in the folder


class ShippedModelError(ValueError):
    """A shipped checkpoint folder whose files do not match its card (corrupted, edited, or incomplete)."""


PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"   # shipped inside the package: wheels carry it


def default_shipped_dir() -> Path | None:
    """``$MINI_UNLEARN_SHIPPED`` if set, else the package's ``data/models`` (in a source checkout and in
    an installed wheel alike), else None."""
    if os.environ.get("MINI_UNLEARN_SHIPPED"):
        return Path(os.environ["MINI_UNLEARN_SHIPPED"]).expanduser()
    folder = PACKAGE_DATA / "models"
    return folder if folder.is_dir() else None


def writable_shipped_dir() -> Path | None:
    """Where ``retrain`` may write the course models by default: ``$MINI_UNLEARN_SHIPPED``, else the
    package's ``data/models`` only in a source checkout (never inside an installed package)."""
    if os.environ.get("MINI_UNLEARN_SHIPPED"):
        return Path(os.environ["MINI_UNLEARN_SHIPPED"]).expanduser()
    checkout = PACKAGE_DATA.parents[1]
    return PACKAGE_DATA / "models" if (checkout / "pyproject.toml").is_file() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / CARD_FILE).read_text())
    except (OSError, ValueError):
        return None


def verify(folder: str | Path) -> dict:
    """Check every file of a shipped folder against its card's checksums; return the card.

    Raises :class:`ShippedModelError` naming the file when one is missing, changed, or not listed.
    """
    folder = Path(folder)
    card = read_card(folder)
    if card is None or not isinstance(card.get(CHECKSUMS), dict) or not card[CHECKSUMS]:
        raise ShippedModelError(f"{folder}: no {CARD_FILE} with a {CHECKSUMS!r} table; not a shipped model folder")
    listed = card[CHECKSUMS]
    present = {p.name for p in folder.iterdir() if p.name != CARD_FILE}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise ShippedModelError(f"{folder}: files not listed in its card: {unlisted} (a shipped folder holds "
                                f"exactly the files its card lists)")
    for name, wanted in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            raise ShippedModelError(f"{folder}: {name} is missing (restore it with `git checkout -- {path}`, "
                                    f"or rebuild the course models with `python3 course.py retrain`)")
        found = sha256_of(path)
        if found != wanted:
            raise ShippedModelError(f"{folder}: {name} has sha256 {found[:16]}…, its card says {wanted[:16]}… "
                                    f"(restore it with `git checkout -- {path}`, or rebuild the course models "
                                    f"with `python3 course.py retrain`)")
    if not any(name.endswith(".safetensors") for name in listed):
        raise ShippedModelError(f"{folder}: no .safetensors weights listed in its card")
    return card


def shipped_folders(directory: str | Path | None = None) -> list[Path]:
    """The shipped model folders (those with a card) under ``directory`` (default: :func:`default_shipped_dir`)."""
    directory = Path(directory) if directory is not None else default_shipped_dir()
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / CARD_FILE).is_file())


def find_shipped(key: dict, directory: str | Path | None = None) -> Path | None:
    """The shipped folder whose recorded cache key equals ``key``, verified; None when none matches."""
    for folder in shipped_folders(directory):
        card = read_card(folder)
        if card is not None and card.get("cache_key") == key:
            verify(folder)
            return folder
    return None


def shipped_name(key: dict) -> str:
    """The folder name of a shipped model: kind, preset, seed (and ratio for retain_only), after the
    benchmark's short name for a model that continues another benchmark's (``mini-clear-vanilla-tiny-seed0``)."""
    name = f"{key['kind']}-{key['preset']['name']}-seed{key['seed']}"
    name += f"-ratio{key['ratio']}" if "ratio" in key else ""
    base, benchmark = key.get("base"), key.get("benchmark")
    continued = base is not None and benchmark is not None and base.get("benchmark") != benchmark
    return f"{benchmark.split('(')[0]}-{name}" if continued else name


def write_shipped(vlm: VLM, directory: str | Path) -> Path:
    """Save ``vlm`` (a cached or freshly trained course model) as a shipped folder with checksums.

    The folder is written beside its final place and renamed into it, replacing the previous
    version of the same configuration only once the new one is complete.
    """
    key = vlm.card.get("cache_key")
    if not key:
        raise ValueError("write_shipped needs a model made by mini_unlearn.models.vanilla or retain_only "
                         "(its card has no cache_key)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / shipped_name(key)
    temporary = directory / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        vlm.save_pretrained(temporary)
        card = read_card(temporary)
        card.pop("loaded_from", None)
        card[CHECKSUMS] = {p.name: sha256_of(p) for p in sorted(temporary.iterdir()) if p.name != CARD_FILE}
        (temporary / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
        verify(temporary)
        if final.exists():
            old = directory / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            shutil.rmtree(old)
        temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


__all__ = ["CHECKSUMS", "PACKAGE_DATA", "ShippedModelError", "default_shipped_dir", "find_shipped", "read_card", "sha256_of",
           "shipped_folders", "shipped_name", "verify", "write_shipped"]
