"""How the tuner scores a cached run against full compute: every value alike, or videos frame by frame.

The verification of `forecache.tune` compares each candidate's outputs with the recorded
full-compute outputs of the same calls as a PSNR. For video pipelines (outputs
``(batch, frames, H, W, C)``) the frames can be weighted:

- ``"pooled"`` (the default): the MSE over all values of all calls, every frame alike;
- ``"worst"``: the PSNR of the worst frame, each frame's MSE taken over all calls and samples: a
  schedule that spoils one frame (often the first or the last, where a causal video VAE decodes a
  latent frame alone) scores by that frame;
- a sequence of per-frame weights ``w``: ``10 log10(peak^2 / (sum_f w_f MSE_f / sum_f w_f))``.

The peak is 1 for outputs in [0, 1] (images, frames), else the largest absolute reference value.
`output` turns what a pipeline returns into the tensor scored; `Errors` keeps the squared errors
per sample, so a subset or a bootstrap resample of the samples scores the same way
(`forecache.calibrate.validate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["FRAME_SCORES", "Errors", "Frames", "check_frames", "frame_psnr", "output"]

FRAME_SCORES = ("pooled", "worst")
"""The named ways of scoring frames (a sequence of per-frame weights is the third)."""

Frames = str | Sequence[float]
"""A `frames` setting: a name of `FRAME_SCORES` or one weight per frame."""


def check_frames(frames: Frames) -> None:
    """Refuse a `frames` setting that is neither a name of `FRAME_SCORES` nor non-negative weights.

    Raises:
        ValueError: An unknown name, a negative or non-finite weight, or weights summing to 0.
        TypeError: Neither a string nor a sequence of numbers.

    """
    if isinstance(frames, str):
        if frames not in FRAME_SCORES:
            raise ValueError(
                f"tune: `frames` must be one of {list(FRAME_SCORES)} or per-frame weights, got {frames!r}"
            )
        return
    if not isinstance(frames, Sequence) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in frames
    ):
        raise TypeError(f"tune: `frames` must be a name or a sequence of numbers, got {frames!r}")
    weights = [float(w) for w in frames]
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"tune: `frames` weights must be finite, >= 0 and not all 0 (one per frame), got {list(frames)!r}"
        )


def _db(peak: float, mse: float) -> float:
    return float("inf") if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def _one_length_video(shapes: Sequence[tuple[int, ...]]) -> bool:
    return all(len(shape) == 5 for shape in shapes) and len({shape[1] for shape in shapes}) == 1


@dataclass(frozen=True)
class Errors:
    """Squared errors of outputs against the reference outputs of the same calls, kept per sample.

    What `frame_psnr` scores; a subset or a resampling of the samples (`pick`) scores the same way.

    Attributes:
        squared: Summed squared error per sample and frame, ``(samples, frames)`` (one frame for
            outputs that are not videos, and for videos of different lengths).
        values: Values per frame of each sample, ``(samples,)``.
        peak: The PSNR's peak: 1 for outputs in [0, 1], else the largest absolute reference value.
        shapes: The reference outputs' shapes.

    """

    squared: torch.Tensor
    values: torch.Tensor
    peak: float
    shapes: tuple[tuple[int, ...], ...]

    @property
    def video(self) -> bool:
        """Whether the outputs are videos ``(batch, frames, H, W, C)`` of one length (frames weighable)."""
        return _one_length_video(self.shapes)

    @classmethod
    def of(cls, reference: list[torch.Tensor], outputs: list[torch.Tensor]) -> Errors:
        """Measure `outputs` against `reference` (one float64 tensor per call, same shapes)."""
        peak = max(float(a.abs().max()) for a in reference)
        shapes = tuple(sorted({tuple(a.shape) for a in reference}))
        frames = shapes[0][1] if _one_length_video(shapes) else 1
        squared, values = [], []
        for a, b in zip(reference, outputs, strict=True):
            squared.append(((a - b) ** 2).reshape(a.shape[0], frames, -1).sum(dim=-1))
            values += [a[0].numel() // frames] * a.shape[0]
        counts = torch.tensor(values, dtype=torch.float64)
        return cls(torch.cat(squared), counts, 1.0 if peak <= 1.0 else peak, shapes)

    @classmethod
    def joined(cls, parts: Sequence[Errors]) -> Errors:
        """Return the errors of several measurements together (calls measured one at a time)."""
        shapes = tuple(sorted({shape for part in parts for shape in part.shapes}))
        peak = max(part.peak for part in parts)
        if len({int(part.squared.shape[1]) for part in parts}) > 1:  # videos of other lengths: pooled
            squared = torch.cat([p.squared.sum(dim=1, keepdim=True) for p in parts])
            values = torch.cat([p.values * p.squared.shape[1] for p in parts])
            return cls(squared, values, peak, shapes)
        return cls(torch.cat([p.squared for p in parts]), torch.cat([p.values for p in parts]), peak, shapes)

    def pick(self, samples: torch.Tensor) -> Errors:
        """Return the errors of the samples at these indices (repeats allowed: a bootstrap resample)."""
        return dataclasses.replace(self, squared=self.squared[samples], values=self.values[samples])

    def psnr(self, frames: Frames = "pooled") -> float:
        """Return the PSNR of these samples, scored as `frame_psnr` says."""
        if isinstance(frames, str) and frames == "pooled":
            return _db(self.peak, float(self.squared.sum() / (self.values.sum() * self.squared.shape[1])))
        if not self.video:
            raise ValueError(
                f"tune: `frames` {frames!r} scores videos (batch, frames, H, W, C); the outputs have shapes "
                f"{list(self.shapes)}: use 'pooled'"
            )
        per_frame = [float(v / self.values.sum()) for v in self.squared.sum(dim=0)]
        if isinstance(frames, str):  # "worst"
            return min(_db(self.peak, mse) for mse in per_frame)
        if len(frames) != len(per_frame):
            raise ValueError(
                f"tune: `frames` must give one weight per frame ({len(per_frame)}), got {len(frames)}"
            )
        mse = sum(w * m for w, m in zip(frames, per_frame, strict=True)) / sum(frames)
        return _db(self.peak, mse)


def frame_psnr(
    reference: list[torch.Tensor], outputs: list[torch.Tensor], frames: Frames = "pooled"
) -> float:
    """Return the paired PSNR of outputs against the reference outputs of the same calls.

    Args:
        reference: Full compute's outputs, one float64 tensor per call.
        outputs: The candidate's outputs, same shapes.
        frames: ``"pooled"``, ``"worst"`` or per-frame weights (see the module docstring). Default
            ``"pooled"``.

    Returns:
        The PSNR in dB (``inf`` for identical outputs).

    Raises:
        ValueError: `frames` other than ``"pooled"`` for outputs that are not videos
            ``(batch, frames, H, W, C)``, or weights not one per frame.

    """
    return Errors.of(reference, outputs).psnr(frames)


def output(result: Any) -> torch.Tensor:
    """Return the generated values of a pipeline output as a float64 tensor (images, frames or latents)."""
    for name in ("images", "frames", "latents", "audios", "sample"):
        value = getattr(result, name, None)
        if value is not None:
            break
    else:
        value = result[0] if isinstance(result, tuple) else result
    if isinstance(value, list) and value and not isinstance(value[0], (torch.Tensor, np.ndarray)):
        value = np.stack([np.asarray(v) for v in value])
    if isinstance(value, list):
        value = np.stack([np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for v in value])
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    return tensor.detach().to("cpu", torch.float64)
