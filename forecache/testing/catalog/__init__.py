"""Tiny random-weight configurations of every diffusers transformer a diffusion pipeline denoises with.

Each case is written as diffusers writes its own model tests (a few layers, small heads, dummy
inputs) and says how to call the model at step ``i`` of an ``n``-step loop: the time argument's
name, scale and shape (see `TinyModel`). `EXCLUDED` gives the reason for every transformer class of
diffusers that has no case; `diffusers_transformer_classes` lists what both must cover, so a
diffusers upgrade that adds a class fails the catalog's test until the class is handled.

Random weights: these exercise hooks, layouts and argument plumbing, never forecast quality.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import torch

from forecache.testing.catalog import (  # noqa: F401  (importing registers the cases)
    audio,
    dit,
    flux,
    hunyuan,
    mmdit,
    single_stream,
    video,
    video_misc,
    wan,
)
from forecache.testing.catalog.base import CASES, Inputs, TimeFn, TinyModel, output_tensors

__all__ = [
    "EXCLUDED",
    "EXTRA_DENOISERS",
    "Inputs",
    "TimeFn",
    "TinyModel",
    "build_tiny",
    "catalog_names",
    "diffusers_transformer_classes",
    "installed_names",
    "output_tensors",
    "tiny_model_names",
]

#: Transformer classes of diffusers without a case, and why.
EXCLUDED: dict[str, str] = {
    "TransformerTemporalModel": (
        "a temporal-attention sub-module of video UNets (I2VGenXLUNet); no pipeline denoises with it alone"
    ),
    "DreamLiteTransformer2DModel": (
        "a cross-attention sub-module of DreamLiteUNetModel (models/unets/unet_dreamlite.py); the DreamLite "
        "pipelines denoise with the UNet"
    ),
    "MiniMaxMusic3RVQDepthDecoder": (
        "not a denoiser: the autoregressive RVQ-codebook language model of MiniMax-Music 3 (forward takes "
        "only `inputs_embeds`, no time); the flow-matching denoiser is MiniMaxMusic3Transformer1DModel"
    ),
}

#: Denoiser transformers diffusers exports from outside `diffusers.models.transformers` (UniDiffuser's
#: U-ViT lives in pipelines/deprecated; UVit2DModel (aMUSEd) sits with the UNets and is out of scope).
EXTRA_DENOISERS: tuple[str, ...] = ("UniDiffuserModel",)

#: The classes of the original tiny fixtures (all with a registered layout), in their historical order.
_REGISTERED = (
    "DiTTransformer2DModel",
    "PixArtTransformer2DModel",
    "SD3Transformer2DModel",
    "FluxTransformer2DModel",
    "WanTransformer3DModel",
    "HunyuanVideoTransformer3DModel",
    "CogVideoXTransformer3DModel",
    "QwenImageTransformer2DModel",
    "LTXVideoTransformer3DModel",
    "SanaTransformer2DModel",
)


def catalog_names() -> list[str]:
    """Every class name with a tiny configuration, sorted."""
    return sorted(CASES)


def tiny_model_names() -> list[str]:
    """Return the classes of the original tiny fixtures (each has a registered layout), in registry order.

    `build_tiny` accepts every name of `catalog_names`; this shorter list is what the layout tests of
    registered models iterate.
    """
    return list(_REGISTERED)


def build_tiny(class_name: str, seed: int = 0) -> TinyModel:
    """Build the tiny random-weight model of a diffusers transformer class.

    Args:
        class_name: A name from `catalog_names()`, e.g. ``"FluxTransformer2DModel"``.
        seed: Seed of the random weights (``torch.manual_seed`` before construction).

    Returns:
        The model (eval mode, float32, CPU) with its input factory and time convention.

    Raises:
        ValueError: If `class_name` has no tiny configuration (the message says why when it is excluded).

    """
    if class_name not in CASES:
        why = f" ({EXCLUDED[class_name]})" if class_name in EXCLUDED else ""
        raise ValueError(f"`class_name` must be one of {catalog_names()}, got {class_name!r}{why}")
    torch.manual_seed(seed)
    builder = CASES[class_name]
    tiny = builder()
    tiny.model.eval()
    return dataclasses.replace(tiny, family=builder.__module__.rsplit(".", 1)[-1])


def diffusers_transformer_classes() -> dict[str, type]:
    """Return the transformer classes of the installed diffusers the catalog must cover, by name.

    Every `ModelMixin` subclass defined in a module of `diffusers.models.transformers`, plus
    `EXTRA_DENOISERS` (exported from elsewhere). UNets, ControlNets, VAEs and encoders are outside.
    """
    import diffusers
    import diffusers.models.transformers as package
    from diffusers.models.modeling_utils import ModelMixin

    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, ModelMixin) and obj.__module__ == module.__name__:
                found[name] = obj
    for name in EXTRA_DENOISERS:
        found[name] = getattr(diffusers, name)
    return dict(sorted(found.items()))


def installed_names() -> dict[str, str]:
    """Every catalog class and why it cannot be built with the installed packages ('' when it can).

    A class is missing from an older diffusers, or is a placeholder that needs a package not
    installed (diffusers exports `UniDiffuserModel` as a dummy object without ``transformers``).
    """
    import diffusers

    classes = diffusers_transformer_classes()
    why: dict[str, str] = {}
    for name in catalog_names():
        cls = classes.get(name)
        if cls is None:
            why[name] = f"{name} is not in diffusers {diffusers.__version__}"
        elif type(cls).__name__ == "DummyObject":
            needs = ", ".join(getattr(cls, "_backends", ())) or "a missing package"
            why[name] = f"{name} needs {needs} (a placeholder in this install)"
        else:
            why[name] = ""
    return why
