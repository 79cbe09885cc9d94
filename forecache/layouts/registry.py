"""The model registry: where the hooks go in each supported diffusers transformer class.

Registered classes have hand-checked layouts (block lists, stream positions, cached
sub-modules). A class that is not registered is laid out automatically when diffusers' own block
metadata describes all its block lists; otherwise it is refused with `UnsupportedModelError`.
"""

from __future__ import annotations

import logging

import torch

from forecache.accel._private import block_return_indices, transformer_block_identifiers
from forecache.accel.layout import BlockListLayout, ModelLayout

__all__ = [
    "UnsupportedModelError",
    "layout_for",
    "register_layout",
    "supported_models",
    "supported_models_markdown",
]

logger = logging.getLogger(__name__)

_BASIC = ("attn1", "attn2", "ff")
_JOINT = ("attn", "attn2", "ff", "ff_context")
_AUTO = ("attn", "attn1", "attn2", "ff", "ff_context", "ffn")
_REGISTRY: dict[str, ModelLayout] = {}


class UnsupportedModelError(ValueError):
    """The model's class has no layout: forecache cannot know where to hook it."""


def register_layout(class_name: str, layout: ModelLayout) -> None:
    """Register (or replace) the layout of a transformer class, by class name.

    Args:
        class_name: The transformer's class name, e.g. ``"FluxTransformer2DModel"``; subclasses
            of a registered class use its layout.
        layout: Where its blocks and cached sub-modules are.

    """
    _REGISTRY[class_name] = layout


def supported_models() -> list[str]:
    """Return the registered transformer class names, sorted.

    Example:
        >>> "FluxTransformer2DModel" in supported_models()
        True

    """
    return sorted(_REGISTRY)


def supported_models_markdown() -> str:
    """Return the supported-model table of the README, generated from the registry."""
    rows = "".join(f"| `{name}` |\n" for name in supported_models())
    return "| diffusers class |\n|---|\n" + rows


def _auto_layout(model: torch.nn.Module) -> ModelLayout | None:
    lists = []
    identifiers = transformer_block_identifiers()
    for attr, child in model.named_children():
        if attr not in identifiers or not isinstance(child, torch.nn.ModuleList) or not child:
            continue
        indices = block_return_indices(type(child[0]))
        if indices is None:
            return None
        hidden, encoder = indices
        lists.append(BlockListLayout(attr, hidden if encoder is not None else None, encoder, _AUTO))
    return ModelLayout(tuple(lists)) if lists else None


def layout_for(model: torch.nn.Module) -> ModelLayout:
    """Return the layout of `model`: its registered class (or a registered base class), else automatic.

    Raises:
        UnsupportedModelError: If the class is neither registered nor describable automatically;
            the message names the class and lists the supported ones.

    """
    for cls in type(model).__mro__:
        if cls.__name__ in _REGISTRY:
            return _REGISTRY[cls.__name__]
    layout = _auto_layout(model)
    if layout is None:
        raise UnsupportedModelError(
            f"forecache does not know where to hook {type(model).__name__}; supported models: "
            f"{', '.join(supported_models())}. Register one with forecache.register_layout(...)"
        )
    logger.warning(
        "forecache: %s is not registered; laid out from diffusers' block metadata", type(model).__name__
    )
    return layout


def _single(attr: str, modules: tuple[str, ...] = _BASIC) -> ModelLayout:
    return ModelLayout((BlockListLayout(attr, None, None, modules),))


def _dual_stream(hidden: int, encoder: int, single: bool, modules: tuple[str, ...] = _JOINT) -> ModelLayout:
    lists = [BlockListLayout("transformer_blocks", hidden, encoder, modules)]
    if single:
        lists.append(
            BlockListLayout("single_transformer_blocks", hidden, encoder, ("proj_out",), ("attn", "proj_mlp"))
        )
    return ModelLayout(tuple(lists))


register_layout("DiTTransformer2DModel", _single("transformer_blocks"))
register_layout("PixArtTransformer2DModel", _single("transformer_blocks"))
register_layout("SanaTransformer2DModel", _single("transformer_blocks"))
register_layout("LTXVideoTransformer3DModel", _single("transformer_blocks"))
register_layout("WanTransformer3DModel", _single("blocks", ("attn1", "attn2", "ffn")))
register_layout("SD3Transformer2DModel", _dual_stream(hidden=1, encoder=0, single=False))
register_layout("FluxTransformer2DModel", _dual_stream(hidden=1, encoder=0, single=True))
register_layout("HunyuanVideoTransformer3DModel", _dual_stream(hidden=0, encoder=1, single=True))
register_layout(
    "CogVideoXTransformer3DModel", _dual_stream(hidden=0, encoder=1, single=False, modules=_BASIC)
)
register_layout(
    "QwenImageTransformer2DModel",
    _dual_stream(hidden=1, encoder=0, single=False, modules=("attn", "img_mlp", "txt_mlp")),
)
