"""The digits data set of the reference models: loading, splitting and the checks on class labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "check_call_args",
    "load_digits_16",
]

NUM_CLASSES = 10
"""Classes of the digits data set (the digits 0-9); the null (unconditional) class id is this value."""

IMAGE_SIZE = 16
"""Height and width of the images the reference models generate (scikit-learn's 8x8 digits, upscaled)."""

_TEST_FRACTION = 0.2
_SPLIT_SEED = 0


def load_digits_16(
    split: Literal["all", "train", "test"] = "all",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load scikit-learn's bundled 8x8 digits, upscaled to 16x16 and scaled to [-1, 1].

    Nothing is downloaded: the data set ships inside scikit-learn (1797 images). The upscaling is
    bilinear, so strokes stay smooth. The train/test split is a fixed seeded permutation (80/20).

    Args:
        split (`str`, defaults to `"all"`): `"all"` (1797 images), `"train"` (1438) or `"test"` (359).

    Returns:
        `(images, labels)`: images of shape `(N, 1, 16, 16)`, float32 in [-1, 1] (background -1), and
        labels of shape `(N,)`, int64 in [0, 9].

    Raises:
        ValueError: `split` is not one of the three names.
        ImportError: scikit-learn is not installed.

    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"`split` must be one of 'all', 'train', 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data set needs scikit-learn: pip install 'forecache[dev]' or pip install scikit-learn"
        ) from err
    digits = load_digits()
    pixels = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    pixels = F.interpolate(pixels, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    images = (pixels.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    if split == "all":
        return images, labels
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_test = round(len(labels) * _TEST_FRACTION)
    index = order[:n_test] if split == "test" else order[n_test:]
    return images[index], labels[index]


def check_call_args(class_labels: int | Sequence[int] | torch.Tensor, num_inference_steps: int) -> list[int]:
    """Validate the arguments shared by the reference pipelines and returns the labels as a list.

    Args:
        class_labels (`int`, `Sequence[int]` or `torch.Tensor`): One class id or a batch of them,
            each in [0, 9].
        num_inference_steps (`int`): Denoising steps, >= 1.

    Returns:
        The class ids as a list of Python ints, one per image.

    Raises:
        ValueError: a label is out of range, the batch is empty, or `num_inference_steps` < 1.
        TypeError: a label or `num_inference_steps` is not an integer.

    """
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
        raise TypeError(f"`num_inference_steps` must be an int >= 1, got {num_inference_steps!r}")
    if num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be an int >= 1, got {num_inference_steps}")
    if isinstance(class_labels, torch.Tensor):
        labels = class_labels.reshape(-1).tolist()
    elif isinstance(class_labels, int):
        labels = [class_labels]
    else:
        labels = list(class_labels)
    if not labels:
        raise ValueError("`class_labels` must hold at least one class id in [0, 9], got an empty batch")
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"`class_labels` must hold ints in [0, {NUM_CLASSES - 1}], got {label!r}")
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"`class_labels` must hold ints in [0, {NUM_CLASSES - 1}], got {label}")
    return [int(label) for label in labels]
