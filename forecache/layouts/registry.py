"""The model registry: where the hooks go in each supported diffusers transformer class.

Registered classes have hand-checked layouts (block lists, stream positions, cached
sub-modules): overrides checked by hand. Any other class is laid out by inference from the model
itself (`forecache.layouts.infer`), checked at its first call (`forecache.layouts.first_call`), or
refused with `UnsupportedModelError` saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.targets import chains_blocks
from forecache.layouts.errors import UnsupportedModelError
from forecache.layouts.infer import Inference, infer_layout

__all__ = [
    "Resolution",
    "UnsupportedModelError",
    "layout_for",
    "register_layout",
    "registered_layout",
    "resolve_layout",
    "supported_models",
]

logger = logging.getLogger(__name__)

_BASIC = ("attn1", "attn2", "ff")
_JOINT = ("attn", "attn2", "ff", "ff_context")
_REGISTRY: dict[str, ModelLayout] = {}


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


def registered_layout(model: torch.nn.Module) -> ModelLayout | None:
    """Return the registered layout of `model`'s class (or of a registered base class), or None."""
    for cls in type(model).__mro__:
        if cls.__name__ in _REGISTRY:
            return _REGISTRY[cls.__name__]
    return None


@dataclass(frozen=True)
class Resolution:
    """The layout `forecache.apply` hooks a transformer with, for one target.

    Attributes:
        layout: The layout.
        source: ``"registered"`` (an override checked by hand) or ``"inferred"`` (checked at the first call).
        chained: Whether it was laid out for a target that chains the blocks (``Target.chains_blocks``).
        inference: The inference behind an inferred layout (None for a registered one).

    """

    layout: ModelLayout
    source: str
    chained: bool
    inference: Inference | None = None


def resolve_layout(model: torch.nn.Module, target: str = "modules") -> Resolution:
    """Return where to hook `model` for `target`: its registered layout, else the inferred one.

    Raises:
        UnsupportedModelError: If `model` is not registered and inference refuses it for `target`;
            the message names the class and says which block list or output could not be laid out.

    """
    chained = chains_blocks(target)
    registered = registered_layout(model)
    if registered is not None:
        return Resolution(registered, "registered", chained)
    inference = infer_layout(model)
    layout, reason = inference.for_target(chained)
    if layout is None:
        others = ""
        if chained and inference.layout is not None:
            others = ' The "modules" and "output" targets need no chain of blocks: try either.'
        raise UnsupportedModelError(
            f"forecache cannot lay out {type(model).__name__} for target={target!r}: {reason}.{others} "
            f"Registered classes: {', '.join(supported_models())}; "
            "register one with forecache.register_layout(...)"
        )
    logger.info("forecache: %s is not registered; hooked with its inferred layout", type(model).__name__)
    return Resolution(layout, "inferred", chained, inference)


def layout_for(model: torch.nn.Module) -> ModelLayout:
    """Return the layout of `model` for the ``"modules"`` and ``"output"`` targets: registered, else inferred.

    Raises:
        UnsupportedModelError: If the class is not registered and cannot be laid out; the message
            names the class, the reason and the registered classes.

    """
    return resolve_layout(model, "modules").layout


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
