"""Small real diffusion models trained here, shipped as forecache's benchmarks,, and their judges.

- ``"scenes"``: diffusers' own `FluxPipeline`, unmodified, with a `FluxTransformer2DModel` of 12
  blocks (4 double- and 8 single-stream), tiny CLIP and T5 encoders with word-level tokenizers and
  a small `AutoencoderKL`, trained on procedurally generated 32x32 RGB scenes from their captions
  ("a large red circle on the left and a small blue triangle at the top, on a grey background"),
  guidance-distilled as FLUX.1-dev is (one transformer call per step). Call it with
  `forecache.reference.scenes.CALL_DEFAULTS` (32x32 pixels, 36 text tokens). Judged by the scenes
  judge (adherence: the fraction of a prompt's attributes it finds) on held-out prompts that combine
  words training never showed together (`forecache.reference.scenes`).

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
    python -m forecache.reference.train --model scenes --out weights/scenes   # and weights/scenes-judge

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
from forecache.reference.models import REFERENCE_MODELS, WEIGHTS_DIR, Judge, ReferenceModel

__all__ = [
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "REFERENCE_MODELS",
    "WEIGHTS_DIR",
    "ClassTokenEmbedding",
    "DiTDigitsPipeline",
    "DigitClassifier",
    "DigitFeatureExtractor",
    "FluxDigitsPipeline",
    "Judge",
    "ReferenceModel",
    "load_classifier",
    "load_digits_16",
    "load_reference",
    "reference_models",
    "reference_path",
]


def reference_models() -> list[str]:
    """Names of the shipped reference models.

    Returns:
        `["flux-digits", "dit-digits", "flux-digits-deep"]`.

    """
    return list(REFERENCE_MODELS)


def reference_path(name: str) -> Path:
    """Return the `save_pretrained` directory of a shipped reference model.

    Args:
        name (`str`): One of `reference_models()`.

    Returns:
        The directory, loadable with `DiffusionPipeline.from_pretrained`.

    Raises:
        ValueError: `name` is not a shipped model.

    """
    if name not in REFERENCE_MODELS:
        raise ValueError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")
    return REFERENCE_MODELS[name].path


def load_reference(
    name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DiffusionPipeline:
    """Load a shipped reference pipeline.

    Args:
        name (`str`): One of `reference_models()`: `"flux-digits"`, `"dit-digits"`,
            `"flux-digits-deep"` (12 blocks of width 96) or `"scenes"` (diffusers' `FluxPipeline`;
            call it with a prompt and `forecache.reference.scenes.CALL_DEFAULTS`).
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to put the weights.
        dtype (`torch.dtype`, defaults to `torch.float32`): Weight dtype (the weights are stored in
            float32; bfloat16/float16 halve memory at a small quality cost).

    Returns:
        The pipeline: a `FluxDigitsPipeline` or `DiTDigitsPipeline` (call it with
        `class_labels=[...]`), or a `FluxPipeline` for `"scenes"`. Its progress bar is on, as in
        diffusers; `pipe.set_progress_bar_config(disable=True)` silences it.

    Raises:
        ValueError: `name` is not a shipped model.

    """
    path = reference_path(name)
    pipe = REFERENCE_MODELS[name].load(path).to(device)
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
