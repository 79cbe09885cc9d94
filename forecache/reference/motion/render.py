"""Rasterise motion clips into RGB videos with the scenes' drawing primitives, with seeded jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from forecache.reference.motion.grammar import FRAMES, ClipSpec, path
from forecache.reference.scenes.render import background, paint, pool, shape_mask

__all__ = ["JITTER", "RenderedClip", "render_clip", "render_clips", "tracks"]

JITTER = 1.0
"""Largest shift in pixels of an object's whole path (one offset per object and clip)."""

_STRIPE_PERIOD = 6.0
_SUPERSAMPLE = 4


def tracks(
    clip: ClipSpec, offsets: list[tuple[float, float]] | None = None, frames: int = FRAMES
) -> np.ndarray:
    """Return every object's centre and radius at every frame.

    Args:
        clip (`ClipSpec`): The clip.
        offsets (`list[tuple[float, float]]`, *optional*): Per object (dx, dy) added to its path.
        frames (`int`, defaults to `FRAMES`): Frames of the clip.

    Returns:
        `np.ndarray` of shape `(objects, frames, 3)`: (cx, cy, r) in pixels, float64.

    """
    offsets = offsets or [(0.0, 0.0)] * len(clip.objects)
    out = np.zeros((len(clip.objects), frames, 3))
    for i, (obj, (dx, dy)) in enumerate(zip(clip.objects, offsets, strict=True)):
        for f in range(frames):
            cx, cy, r = path(obj, f / (frames - 1))
            out[i, f] = (cx + dx, cy + dy, r)
    return out


@dataclass(frozen=True)
class RenderedClip:
    """A drawn clip.

    Args:
        video (`np.ndarray`): `(frames, 3, 32, 32)` float32 in [-1, 1].
        tracks (`np.ndarray`): The objects' drawn centres and radii, `(objects, frames, 3)` (see `tracks`).
        objects (`np.ndarray`): `(frames, 32, 32)` float32 in [0, 1], how much of each pixel the
            objects cover (the anti-aliased union of their masks).

    """

    video: np.ndarray
    tracks: np.ndarray
    objects: np.ndarray


def render_clip(clip: ClipSpec, rng: random.Random | None = None, frames: int = FRAMES) -> RenderedClip:
    """Draw one clip.

    Args:
        clip (`ClipSpec`): What to draw.
        rng (`random.Random`, *optional*): Shifts each object's whole path by up to `JITTER` pixels
            and the stripes; without it every path is exact.
        frames (`int`, defaults to `FRAMES`): Frames to draw, evenly over the clip's time.

    Returns:
        The `RenderedClip`: its video, the objects' tracks and coverage.

    """
    phase = rng.uniform(0.0, _STRIPE_PERIOD) if rng is not None and clip.texture == "striped" else 0.0
    offsets = [
        (rng.uniform(-JITTER, JITTER), rng.uniform(-JITTER, JITTER)) if rng is not None else (0.0, 0.0)
        for _ in clip.objects
    ]
    where = tracks(clip, offsets, frames)
    ground = background(clip.background, clip.texture, phase)
    video = np.empty((frames, 3, 32, 32), dtype=np.float32)
    cover = np.empty((frames, 32, 32), dtype=np.float32)
    for f in range(frames):
        canvas = ground.copy()
        union = np.zeros(canvas.shape[1:], dtype=bool)
        for obj, (cx, cy, r) in zip(clip.objects, where[:, f], strict=True):
            mask = shape_mask(obj.shape, cx, cy, r)
            paint(canvas, mask, obj.colour)
            union |= mask
        video[f] = pool(canvas)
        cover[f] = union.reshape(32, _SUPERSAMPLE, 32, _SUPERSAMPLE).mean(axis=(1, 3))
    return RenderedClip(video, where, cover)


def render_clips(clips: list[ClipSpec], rng: random.Random | None = None) -> torch.Tensor:
    """Draw clips into one batch in WanPipeline's layout.

    Args:
        clips (`list[ClipSpec]`): What to draw.
        rng (`random.Random`, *optional*): Jitter, as in `render_clip`.

    Returns:
        `torch.Tensor` of shape `(len(clips), 3, FRAMES, 32, 32)` (channels before frames, as
        `AutoencoderKLWan` takes videos), float32 in [-1, 1].

    """
    videos = np.stack([render_clip(clip, rng).video for clip in clips])
    return torch.from_numpy(videos).permute(0, 2, 1, 3, 4).contiguous()
