"""Model inputs for rendered prompts, for any supported family: left padding, images in row order.

``make_batch`` (training and every method) and ``VLM.encode`` (evaluation) both end here. What differs
between families — how the processor lays the images out — is the processor's business
(:mod:`.families`); this module only checks the processor is one of a registered family and pads left.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from .families.base import family_of_processor


@contextmanager
def padding_left(tokenizer):
    """Left padding inside (every answer ends at the last position; batched generation needs it)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side


def model_inputs(processor, texts: list[str], images: list | None = None) -> dict[str, torch.Tensor]:
    """Left-padded inputs for rendered ``texts``; ``images`` in row order, one per image token.

    Every supported processor takes the images as one flat list: Idefics2/3 group them per row by
    counting image tokens (a text-only row gets a blank image the model skips), Qwen-VL packs their
    patches into one ``pixel_values`` with each image's ``image_grid_thw``.
    """
    family_of_processor(processor)                     # a clear error for a processor of no supported family
    with padding_left(processor.tokenizer):
        batch = processor(text=list(texts), images=images or None, padding=True, return_tensors="pt")
    return dict(batch)


__all__ = ["model_inputs", "padding_left"]
