"""Small real diffusion models trained on scikit-learn's digits, shipped as forecache's default benchmark.

Three class-conditional 16x16 digit generators, covering both architecture families forecache hooks
and two depths, and a digit classifier to judge their samples:

- ``"flux-digits"``: `FluxDigitsPipeline`, a `FluxTransformer2DModel` (2 double-stream and 4
  single-stream blocks, width 128), rectified flow, `FlowMatchEulerDiscreteScheduler` (shift 3), true
  CFG with two transformer calls per step (`cache_context` "cond" and "uncond").
- ``"flux-digits-deep"``: the same pipeline and training with 12 blocks (4 double- and 8
  single-stream, FLUX.1-dev's 1:2 mix; width 96), so caching is judged on depth too: a probe or a
  first-block signal is 1 block of 12 rather than 1 of 6.
- ``"dit-digits"``: `DiTDigitsPipeline`, a `DiTTransformer2DModel` (6 blocks), v-prediction on a cosine
  schedule, `DDIMScheduler`, CFG batched into one call per step.
- `load_classifier()`: a small CNN (`DigitClassifier`) for class accuracy and, through
  `DigitFeatureExtractor`, FID features.

The weights live in ``weights/<name>/`` (diffusers `save_pretrained` layout, safetensors) and were
made on one CPU thread with::

    python -m forecache.reference.train --model classifier --out weights/classifier --steps 1500
    python -m forecache.reference.train --model flux-digits --out weights/flux-digits --steps 900
    python -m forecache.reference.train --model flux-digits-deep --out weights/flux-digits-deep --steps 2000
    python -m forecache.reference.train --model dit-digits --out weights/dit-digits --steps 1500

Nothing is loaded at import time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline

from forecache.reference.classifier import DigitClassifier, DigitFeatureExtractor
from forecache.reference.data import IMAGE_SIZE, NUM_CLASSES, load_digits_16
from forecache.reference.dit_digits import DiTDigitsPipeline
from forecache.reference.flux_digits import ClassTokenEmbedding, FluxDigitsPipeline

__all__ = [
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "WEIGHTS_DIR",
    "ClassTokenEmbedding",
    "DiTDigitsPipeline",
    "DigitClassifier",
    "DigitFeatureExtractor",
    "FluxDigitsPipeline",
    "load_classifier",
    "load_digits_16",
    "load_reference",
    "reference_models",
    "reference_path",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Folder holding one `save_pretrained` directory per shipped model."""

_PIPELINES: dict[str, type[DiffusionPipeline]] = {
    "flux-digits": FluxDigitsPipeline,
    "dit-digits": DiTDigitsPipeline,
    "flux-digits-deep": FluxDigitsPipeline,
}


def reference_models() -> list[str]:
    """Names of the shipped reference models.

    Returns:
        `["flux-digits", "dit-digits", "flux-digits-deep"]`.

    """
    return list(_PIPELINES)


def reference_path(name: str) -> Path:
    """Return the `save_pretrained` directory of a shipped reference model.

    Args:
        name (`str`): One of `reference_models()`.

    Returns:
        The directory, loadable with `DiffusionPipeline.from_pretrained`.

    Raises:
        ValueError: `name` is not a shipped model.

    """
    if name not in _PIPELINES:
        raise ValueError(f"unknown reference model {name!r}; known: {', '.join(_PIPELINES)}")
    return WEIGHTS_DIR / name


def load_reference(
    name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DiffusionPipeline:
    """Load a shipped reference pipeline.

    Args:
        name (`str`): One of `reference_models()`: `"flux-digits"`, `"dit-digits"` or
            `"flux-digits-deep"` (12 blocks of width 96: 182 MFLOP per sample and call, 1.12x
            flux-digits').
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to put the weights.
        dtype (`torch.dtype`, defaults to `torch.float32`): Weight dtype (the weights are stored in
            float32; bfloat16/float16 halve memory at a small quality cost).

    Returns:
        A `FluxDigitsPipeline` or `DiTDigitsPipeline` (call it with `class_labels=[...]`). Its
        progress bar is on, as in diffusers; `pipe.set_progress_bar_config(disable=True)` silences it.

    Raises:
        ValueError: `name` is not a shipped model.

    """
    path = reference_path(name)
    pipe = _PIPELINES[name].from_pretrained(path).to(device)
    if dtype != torch.float32:  # the stored dtype; casting only when asked keeps diffusers quiet
        pipe = pipe.to(dtype=dtype)
    return pipe


def load_classifier(device: str | torch.device = "cpu") -> DigitClassifier:
    """Load the shipped digit classifier, in eval mode.

    Args:
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to put the weights.

    Returns:
        The `DigitClassifier` (float32). Wrap it in `DigitFeatureExtractor` for torchmetrics' FID.

    """
    model = DigitClassifier.from_pretrained(WEIGHTS_DIR / "classifier")
    return model.to(device).eval()
