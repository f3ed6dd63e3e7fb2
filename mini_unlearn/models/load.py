"""``load_vlm``: any local Hugging Face checkpoint of a supported architecture, as a ``VLM``.

The same methods then run on the course's tiny LLaVA and on a real LLaVA-1.5 a researcher has on
disk. A checkpoint folder holds ``config.json`` + weights (what ``save_pretrained`` writes), the
processor's files, and — when mini_unlearn wrote it — a ``mini_unlearn.json`` card.

Supported now: LLaVA (``LlavaForConditionalGeneration``: the course's models, LLaVA-1.5).
Planned: Qwen2-VL, Qwen2.5-VL and Idefics3. ``anatomy`` already finds their neurons, but the
Qwen-VL processors need torchvision (reference/feasibility.md §3), which the course environment
lacks, and all three use their own prompt and image formats, which the rest of the package does not
speak yet. (Idefics3's processor itself saves and reloads fine without torchvision.)

Nothing is downloaded (local folders only) and nothing is written to the checkpoint folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from .vlm import CARD_FILE, VLM, progress_bars

# architecture name (config.json "architectures") -> transformers class; its model_type is also accepted
SUPPORTED_ARCHITECTURES: dict[str, type] = {
    "LlavaForConditionalGeneration": LlavaForConditionalGeneration,
}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def architecture_of(config: dict) -> str:
    """The supported architecture a ``config.json`` describes, by ``architectures`` then ``model_type``."""
    for name in config.get("architectures") or []:
        if name in SUPPORTED_ARCHITECTURES:
            return name
    for name, cls in SUPPORTED_ARCHITECTURES.items():
        if config.get("model_type") == cls.config_class.model_type:
            return name
    found = config.get("architectures") or config.get("model_type") or "nothing"
    raise ValueError(f"unsupported architecture {found!r} (config.json: architectures / model_type); "
                     f"mini_unlearn supports {sorted(SUPPORTED_ARCHITECTURES)}")


def load_vlm(path: str | Path, device: str | torch.device | None = None, *, dtype: torch.dtype | str | None = None,
             progress: bool = False, safetensors_only: bool = False) -> VLM:
    """Load model, processor and card from a local checkpoint folder; ``device`` defaults to cuda if available.

    ``dtype`` is passed to ``from_pretrained`` (``None``: the library's default), e.g. ``torch.bfloat16``
    for a 7 B checkpoint on a GPU; ``progress=True`` shows the weight-loading bar. ``safetensors_only=True``
    refuses weights in any other format (a pickle is never read then).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint folder: {str(path)!r} "
                                f"(load_vlm loads local folders only; nothing is downloaded)")
    if not path.is_dir():
        raise NotADirectoryError(f"{str(path)!r} is a file; load_vlm expects the checkpoint folder that holds config.json")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no checkpoint in {str(path)!r}: it has no config.json "
                                f"(a folder written by save_pretrained holds config.json and the weights)")
    architecture = architecture_of(json.loads(config_file.read_text()))

    kwargs = {} if dtype is None else {"dtype": dtype}
    if safetensors_only:
        kwargs["use_safetensors"] = True
    with progress_bars(progress):
        model = SUPPORTED_ARCHITECTURES[architecture].from_pretrained(path, **kwargs)
    model = model.to(device or default_device()).eval()
    processor = AutoProcessor.from_pretrained(path)

    card_file = path / CARD_FILE
    card = json.loads(card_file.read_text()) if card_file.is_file() else {"architecture": architecture}
    card["loaded_from"] = str(path)
    return VLM(model, processor, card)
