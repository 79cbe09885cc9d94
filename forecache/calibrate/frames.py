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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["FRAME_SCORES", "Frames", "check_frames", "frame_psnr"]

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
    peak = max(float(a.abs().max()) for a in reference)
    peak = 1.0 if peak <= 1.0 else peak
    if isinstance(frames, str) and frames == "pooled":
        squared = sum(float(((a - b) ** 2).sum()) for a, b in zip(reference, outputs, strict=True))
        count = sum(a.numel() for a in reference)
        return _db(peak, squared / max(count, 1))
    shapes = {tuple(a.shape) for a in reference}
    if any(len(shape) != 5 for shape in shapes):
        raise ValueError(
            f"tune: `frames` {frames!r} scores videos (batch, frames, H, W, C); the outputs have shapes "
            f"{sorted(shapes)}: use 'pooled'"
        )
    per_call = [((a - b) ** 2).sum(dim=(0, 2, 3, 4)) for a, b in zip(reference, outputs, strict=True)]
    count = sum(a[:, 0].numel() for a in reference)
    per_frame = [float(v) / count for v in torch.stack(per_call).sum(dim=0)]
    if isinstance(frames, str):  # "worst"
        return min(_db(peak, mse) for mse in per_frame)
    if len(frames) != len(per_frame):
        raise ValueError(
            f"tune: `frames` must give one weight per frame ({len(per_frame)}), got {len(frames)}"
        )
    mse = sum(w * m for w, m in zip(frames, per_frame, strict=True)) / sum(frames)
    return _db(peak, mse)
