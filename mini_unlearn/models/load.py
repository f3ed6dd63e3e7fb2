"""``load_vlm``: any local Hugging Face checkpoint of a supported architecture, as a ``VLM``.

Reads the course's tiny LLaVA and a real LLaVA-1.5, Qwen2-VL, Qwen2.5-VL, Idefics2 or Idefics3
(SmolVLM) checkpoint a researcher has on disk; the methods and the evaluation then ask it in its own
chat template (:func:`~mini_unlearn.models.prompts.render`). A checkpoint folder holds
``config.json`` + weights (what ``save_pretrained`` writes), the processor's files, and — when
mini_unlearn wrote it — a ``mini_unlearn.json`` card. What differs per family (the model class, the
image token, how the processor is read without torchvision) is in :mod:`.families`, one module per family.

Everything that can be checked is checked before the model is loaded onto a device: the
architecture, the processor files, the image token in the tokenizer; the weights must then match
the config exactly (no missing, unexpected or reshaped tensors: transformers would otherwise fill
the gaps with random values). Nothing is downloaded (local folders only) and nothing is written to
the checkpoint folder.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from .. import distributed
from .families import family_of
from .families.base import ARCHITECTURES
from .vlm import CARD_FILE, VLM, progress_bars

# architecture name (config.json "architectures") -> transformers class; its model_type is also accepted. The
# registry's own index: a family registered later is in it too
SUPPORTED_ARCHITECTURES: dict[str, type] = ARCHITECTURES
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def default_device() -> torch.device:
    """cuda if available, else cpu; under a multi-process launcher, this process's own device."""
    return distributed.device()


def architecture_of(config: dict) -> str:
    """The supported architecture a ``config.json`` describes, by ``architectures`` then ``model_type``."""
    return family_of(config).architecture


def require_processor_files(path: Path) -> None:
    """A clear error for a folder with weights but no tokenizer or image-processor files."""
    missing = []
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer (one of {list(TOKENIZER_FILES)})")
    if not any((path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json")):
        missing.append("image processor (preprocessor_config.json or processor_config.json)")
    if missing:
        raise FileNotFoundError(f"{str(path)!r} holds a model but not its processor: no {' and no '.join(missing)}. "
                                f"Copy the processor files of the checkpoint you started from into the folder "
                                f"(save_pretrained of the processor writes them)")


def require_image_token(processor, family, path: Path) -> None:
    tokenizer = processor.tokenizer
    token_id = tokenizer.convert_tokens_to_ids(family.image_token)
    if token_id is None or token_id == tokenizer.unk_token_id \
            or tokenizer.convert_ids_to_tokens(token_id) != family.image_token:
        raise ValueError(f"the tokenizer in {str(path)!r} has no image token {family.image_token!r}, which "
                         f"{family.architecture} uses to place the image; this is not the tokenizer of a "
                         f"{family.name} checkpoint")


@contextmanager
def quiet_transformers():
    """transformers logs errors only, inside (its load report: mini_unlearn raises its own, clearer error)."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _key(entry) -> str:
    """A missing/unexpected key, or a mismatched one as ``name: checkpoint [..] vs config [..]``."""
    if isinstance(entry, tuple) and len(entry) == 3:
        name, saved, expected = entry
        return f"{name}: checkpoint {list(saved)} vs config {list(expected)}"
    return str(entry)


def require_loading_info(info: dict, path: Path) -> None:
    """A clear error when the weights do not match the config (transformers would initialise the gaps at random)."""
    problems = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        shown = "; ".join(f"{kind.replace('_', ' ')}: {len(keys)} (e.g. {_key(keys[0])})"
                          for kind, keys in problems.items())
        raise ValueError(f"the weights in {str(path)!r} do not match its config.json ({shown}); a checkpoint's "
                         f"weights and config must come from the same model")


def load_vlm(path: str | Path, device: str | torch.device | None = None, *, dtype: torch.dtype | str | None = None,
             progress: bool = False, safetensors_only: bool = False) -> VLM:
    """Load model, processor and card from a local checkpoint folder; ``device`` defaults to cuda if available.

    ``dtype`` is passed to ``from_pretrained``; ``None`` keeps the dtype the checkpoint was saved in
    (``"auto"``: a published bf16 checkpoint loads in bf16, the course's fp32 models in fp32), or force
    one, e.g. ``torch.float32`` for exact CPU arithmetic; ``progress=True`` shows the weight-loading bar.
    ``safetensors_only=True`` refuses weights in any other format (a pickle is never read then).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint folder: {str(path)!r} "
                                f"(load_vlm loads local folders only; nothing is downloaded)")
    if not path.is_dir():
        raise NotADirectoryError(f"{str(path)!r} is a file; load_vlm expects the checkpoint folder that holds "
                                 "config.json")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no checkpoint in {str(path)!r}: it has no config.json "
                                f"(a folder written by save_pretrained holds config.json and the weights)")
    family = family_of(json.loads(config_file.read_text()))
    require_processor_files(path)
    processor = family.load_processor(path)
    require_image_token(processor, family, path)

    kwargs = {"dtype": "auto" if dtype is None else dtype}
    if safetensors_only:
        kwargs["use_safetensors"] = True
    # Mismatched shapes are let through (ignore_mismatched_sizes) only to be listed by require_loading_info, which
    # refuses the checkpoint before it reaches a device; transformers' own report would repeat them on stderr.
    with progress_bars(progress), quiet_transformers():
        try:
            model, info = family.model_class.from_pretrained(path, output_loading_info=True,
                                                             ignore_mismatched_sizes=True, **kwargs)
        except RuntimeError as error:          # weights that cannot even be read as this architecture
            raise ValueError(f"the weights in {str(path)!r} do not match its config.json: {error}") from error
    require_loading_info(info, path)
    model = model.to(device or default_device()).eval()
    architecture = family.architecture

    card_file = path / CARD_FILE
    card = json.loads(card_file.read_text()) if card_file.is_file() else {"architecture": architecture}
    card["loaded_from"] = str(path)
    return VLM(model, processor, card)
