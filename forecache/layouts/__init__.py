"""Where to hook each diffusers transformer: verified registrations and the registry's lookup."""

from forecache.layouts.registry import (
    UnsupportedModelError,
    layout_for,
    register_layout,
    supported_models,
    supported_models_markdown,
)

__all__ = [
    "UnsupportedModelError",
    "layout_for",
    "register_layout",
    "supported_models",
    "supported_models_markdown",
]
