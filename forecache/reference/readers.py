"""The judges' building blocks: group-normed convolutions, the object and background readers, FID features.

The scenes judge learnt shapes badly as one plain CNN over the whole image (51 % of the shapes
read after its training); one small reader shared by every object, with a group norm after each
convolution, reads ~100 %: sharing gives it one example per object instead of one per image, and
the norm lets it train at a high rate. Both judges are built from these blocks: the scenes judge
reads each of its nine cells with `object_reader`, the motion judge each colour of a frame.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

__all__ = [
    "READ_FEATURES",
    "FeatureReader",
    "JudgeFeatureExtractor",
    "background_reader",
    "conv_norm",
    "object_reader",
]

READ_FEATURES = 32
"""Features of one object (or of the background) that a reader returns."""


def conv_norm(inputs: int, outputs: int, stride: int = 1) -> list[nn.Module]:
    """Return a 3x3 convolution, a group norm (8 groups) and SiLU: the unit every reader is made of.

    Args:
        inputs (`int`): Input channels.
        outputs (`int`): Output channels (a multiple of 8).
        stride (`int`, defaults to 1): The convolution's stride (2 halves the side).

    """
    return [nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1), nn.GroupNorm(8, outputs), nn.SiLU()]


def object_reader(inputs: int, width: int, stride: int = 1) -> nn.Sequential:
    """Return one object's reader: `(batch, inputs, 16 * stride, 16 * stride)` to `READ_FEATURES`.

    Four `conv_norm` units (the first of the given stride, the third of stride 2: to 8x8 pixels,
    `width` then twice `width` channels), flattened into two linear layers (128, then
    `READ_FEATURES` outputs), SiLU after each.

    Args:
        inputs (`int`): Channels of the window (3 for RGB; more for a query stacked on it).
        width (`int`): Channels of the first convolution (doubled once).
        stride (`int`, defaults to 1): Stride of the first convolution: 1 for 16x16 windows, 2 for
            32x32 frames.

    """
    return nn.Sequential(
        *conv_norm(inputs, width, stride=stride),
        *conv_norm(width, width),
        *conv_norm(width, 2 * width, stride=2),  # 8x8
        *conv_norm(2 * width, 2 * width),
        nn.Flatten(),
        nn.Linear(2 * width * 64, 128),
        nn.SiLU(),
        nn.Linear(128, READ_FEATURES),
        nn.SiLU(),
    )


def background_reader(width: int) -> nn.Sequential:
    """Return the background's reader: `(batch, 3, 32, 32)` images to `(batch, READ_FEATURES)`.

    Three `conv_norm` units (32 -> 16 -> 8 pixels, `width` channels), averaged over the pixels
    (a colour and a texture are everywhere), then a linear layer and SiLU.
    """
    return nn.Sequential(
        *conv_norm(3, width, stride=2),  # 16x16
        *conv_norm(width, width),
        *conv_norm(width, width, stride=2),  # 8x8
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, READ_FEATURES),
        nn.SiLU(),
    )


class FeatureReader(Protocol):
    """A judge that gives FID features of `(batch, 3, 32, 32)` images in [-1, 1] (scenes, motion frames)."""

    @property
    def device(self) -> torch.device:
        """Where its weights are."""
        ...

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return `(batch, features)` features."""
        ...

    def eval(self) -> Any:
        """Put it in eval mode and return it."""
        ...


class JudgeFeatureExtractor(nn.Module):
    """A judge as torchmetrics' custom FID feature extractor (`FrechetInceptionDistance(feature=...)`).

    Takes what torchmetrics passes on unchanged: uint8 in [0, 255] (``normalize=False``) or float in
    [0, 1] (``normalize=True``), shape `(batch, 3, 32, 32)`.

    Args:
        judge (`FeatureReader`): The trained judge; it is put in eval mode.
        num_features (`int`): Width of its features.

    """

    def __init__(self, judge: FeatureReader, num_features: int) -> None:
        super().__init__()
        self.judge = judge.eval()
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return `(batch, num_features)` float32 features of uint8 or [0, 1] float images."""
        x = images.to(self.judge.device, torch.float32)
        if images.dtype == torch.uint8:
            x = x / 255.0
        with torch.no_grad():
            return self.judge.features(x * 2.0 - 1.0)
