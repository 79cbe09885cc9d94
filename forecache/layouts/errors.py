"""The error forecache raises for a model it cannot lay out."""

from __future__ import annotations

__all__ = ["UnsupportedModelError"]


class UnsupportedModelError(ValueError):
    """forecache cannot lay this model out: the message says which block list or output, and why."""
