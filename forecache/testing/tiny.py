"""Tiny random-weight diffusers transformers with matching inputs (the catalog's original entry points).

The configurations live in `forecache.testing.catalog`, which covers every transformer class of the
installed diffusers; this module keeps the historical names. They exercise the hooks on the real
diffusers classes (layouts, argument plumbing, output formats) in seconds on a CPU. Their weights
are random: never judge forecast quality on them.
"""

from __future__ import annotations

from forecache.testing.catalog import Inputs, TinyModel, build_tiny, catalog_names, tiny_model_names

__all__ = ["Inputs", "TinyModel", "build_tiny", "catalog_names", "tiny_model_names"]
