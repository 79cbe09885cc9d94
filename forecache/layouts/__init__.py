"""Where to hook each diffusers transformer: hand-checked registrations, inference from the model, lookup."""

from forecache.layouts.errors import UnsupportedModelError
from forecache.layouts.infer import Inference, infer_layout
from forecache.layouts.registry import (
    Resolution,
    layout_for,
    register_layout,
    registered_layout,
    resolve_layout,
    supported_models,
)

__all__ = [
    "Inference",
    "Resolution",
    "UnsupportedModelError",
    "infer_layout",
    "layout_for",
    "register_layout",
    "registered_layout",
    "resolve_layout",
    "supported_models",
]
