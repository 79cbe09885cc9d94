"""Model registry, pipeline wrapping, and the shipped reference and tiny models.

`reference_models()` and `load_reference(name)` are re-exported from
`forecache.pipelines.reference`, imported on first use (they need diffusers).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_reference", "reference_models"]


def __getattr__(name: str) -> Any:
    """Import the reference-model helpers on first access."""
    if name not in __all__:
        raise AttributeError(f"module 'forecache.pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module("forecache.pipelines.reference"), name)
