"""Atomic file writes: a file is written whole or not at all, so an interrupted run leaves no half-file."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from forecache._atomic import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_image", "atomic_write_json", "atomic_write_text"]


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented, strict JSON (no NaN/Infinity literals) atomically.

    Raises:
        ValueError: If `obj` holds a non-finite float (encode those first, e.g. as strings).

    """
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, sort_keys=False) + "\n")


def atomic_write_image(path: str | os.PathLike[str], image: Image.Image) -> Path:
    """Encode `image` as PNG in memory, then write it atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
