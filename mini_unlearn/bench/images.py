"""Where a question's picture comes from: drawn from a face, or decoded from stored bytes.

Generated benchmarks keep only a face and a :class:`~mini_unlearn.bench.portraits.View` and draw the
picture when it is needed (fast, and the same bytes every time). A benchmark read from MLLMU-Bench
files keeps the encoded image it was given. Both answer ``.load()`` with a PIL image.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from .portraits import CANONICAL_VIEW, FaceAttributes, View, render_portrait


@dataclass(frozen=True)
class RenderedImage:
    """A portrait drawn on demand from a face and a view."""

    face: FaceAttributes
    view: View = CANONICAL_VIEW

    def load(self) -> Image.Image:
        return render_portrait(self.face, self.view)


@dataclass(frozen=True)
class EncodedImage:
    """An image stored as encoded bytes (PNG or JPEG), as MLLMU-Bench's parquet files hold them."""

    data: bytes

    def load(self) -> Image.Image:
        return Image.open(io.BytesIO(self.data)).convert("RGB")


ImageRef = RenderedImage | EncodedImage


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image`` (deterministic for the same pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
