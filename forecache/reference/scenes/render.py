"""Rasterise scenes into RGB images: anti-aliased shapes on a plain or striped background, seeded jitter."""

from __future__ import annotations

import random

import numpy as np
import torch

from forecache.reference.scenes.grammar import BACKGROUNDS, COLOURS, SceneObject, SceneSpec

__all__ = ["IMAGE_SIZE", "render", "render_batch"]

IMAGE_SIZE = 32
"""Height and width of a scene image in pixels."""

_SUPERSAMPLE = 4
_CELL = IMAGE_SIZE / 3
_RADIUS = {"small": 3.0, "large": 5.0}
_JITTER = 1.0
_STRIPE_PERIOD = 6.0
_STRIPE_CONTRAST = 14.0

# Pixel-centre coordinates of the supersampled grid, in output pixels.
_AXIS = (np.arange(IMAGE_SIZE * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
_X, _Y = np.meshgrid(_AXIS, _AXIS)


def _mask(obj: SceneObject, dx: float, dy: float) -> np.ndarray:
    """Return the supersampled boolean mask of one object, centred on its cell plus (dx, dy)."""
    row, col = divmod(obj.cell, 3)
    cx, cy = (col + 0.5) * _CELL + dx, (row + 0.5) * _CELL + dy
    r = _RADIUS[obj.size]
    x, y = _X - cx, _Y - cy
    if obj.shape == "circle":
        return x * x + y * y <= r * r
    if obj.shape == "square":
        half = 0.85 * r
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if obj.shape == "triangle":  # pointing up, apex at -r, base at +0.8 r
        top, bottom = -r, 0.8 * r
        half_width = (y - top) / (bottom - top) * r
        return (y >= top) & (y <= bottom) & (np.abs(x) <= half_width)
    arm = 0.33 * r  # cross: a plus sign
    return ((np.abs(x) <= arm) & (np.abs(y) <= r)) | ((np.abs(y) <= arm) & (np.abs(x) <= r))


def render(scene: SceneSpec, rng: random.Random | None = None) -> np.ndarray:
    """Draw one scene.

    Args:
        scene (`SceneSpec`): What to draw.
        rng (`random.Random`, *optional*): Jitters each object by up to one pixel and shifts the
            stripes; without it every object sits on its cell's centre.

    Returns:
        `np.ndarray` of shape `(3, IMAGE_SIZE, IMAGE_SIZE)`, float32 in [-1, 1].

    """
    grey = float(BACKGROUNDS[scene.background])
    canvas = np.full((3, *_X.shape), grey, dtype=np.float32)
    if scene.texture == "striped":
        phase = rng.uniform(0.0, _STRIPE_PERIOD) if rng is not None else 0.0
        stripes = np.where(((_X + _Y + phase) % _STRIPE_PERIOD) < _STRIPE_PERIOD / 2, 1.0, -1.0)
        sign = -1.0 if grey > 128 else 1.0
        canvas += (sign * _STRIPE_CONTRAST * (stripes + 1.0) / 2.0).astype(np.float32)
    for obj in scene.objects:
        dx, dy = (rng.uniform(-_JITTER, _JITTER), rng.uniform(-_JITTER, _JITTER)) if rng else (0.0, 0.0)
        mask = _mask(obj, dx, dy)
        canvas[:, mask] = np.asarray(COLOURS[obj.colour], dtype=np.float32)[:, None]
    s = _SUPERSAMPLE
    pooled = canvas.reshape(3, IMAGE_SIZE, s, IMAGE_SIZE, s).mean(axis=(2, 4))
    return (pooled / 127.5 - 1.0).astype(np.float32)


def render_batch(scenes: list[SceneSpec], rng: random.Random | None = None) -> torch.Tensor:
    """Draw scenes into one batch.

    Args:
        scenes (`list[SceneSpec]`): What to draw.
        rng (`random.Random`, *optional*): Jitter, as in `render`.

    Returns:
        `torch.Tensor` of shape `(len(scenes), 3, IMAGE_SIZE, IMAGE_SIZE)`, float32 in [-1, 1].

    """
    return torch.from_numpy(np.stack([render(scene, rng) for scene in scenes]))
