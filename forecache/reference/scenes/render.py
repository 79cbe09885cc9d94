"""Rasterise scenes into RGB images: anti-aliased shapes on a plain or striped background, seeded jitter.

`background`, `shape_mask`, `paint` and `pool` are the drawing primitives `render` is made of; the
motion clips (`forecache.reference.motion.render`) draw their frames with them.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from forecache.reference.scenes.grammar import BACKGROUNDS, COLOURS, SceneObject, SceneSpec

__all__ = ["IMAGE_SIZE", "background", "paint", "pool", "render", "render_batch", "shape_mask"]

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


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Return the supersampled boolean mask of one shape of radius `r` centred on pixel (cx, cy).

    Args:
        shape (`str`): One of `SHAPES` (a circle; a square of half side 0.85 r; a triangle pointing
            up, apex at -r, base at +0.8 r; a cross of arms 0.33 r wide).
        cx (`float`): Centre, in output pixels from the left edge.
        cy (`float`): Centre, in output pixels from the top edge.
        r (`float`): Radius in output pixels.

    Returns:
        `np.ndarray` of shape `(4 * IMAGE_SIZE, 4 * IMAGE_SIZE)`, bool.

    """
    x, y = _X - cx, _Y - cy
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        half = 0.85 * r
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if shape == "triangle":  # pointing up, apex at -r, base at +0.8 r
        top, bottom = -r, 0.8 * r
        half_width = (y - top) / (bottom - top) * r
        return (y >= top) & (y <= bottom) & (np.abs(x) <= half_width)
    arm = 0.33 * r  # cross: a plus sign
    return ((np.abs(x) <= arm) & (np.abs(y) <= r)) | ((np.abs(y) <= arm) & (np.abs(x) <= r))


def _mask(obj: SceneObject, dx: float, dy: float) -> np.ndarray:
    """Return the supersampled boolean mask of one object, centred on its cell plus (dx, dy)."""
    row, col = divmod(obj.cell, 3)
    return shape_mask(obj.shape, (col + 0.5) * _CELL + dx, (row + 0.5) * _CELL + dy, _RADIUS[obj.size])


def background(name: str, texture: str, phase: float = 0.0) -> np.ndarray:
    """Return the supersampled background canvas, `(3, 4 * IMAGE_SIZE, 4 * IMAGE_SIZE)` float32 in [0, 255].

    Args:
        name (`str`): One of `BACKGROUNDS`.
        texture (`str`): One of `TEXTURES`; stripes run diagonally, darker on light grounds.
        phase (`float`, defaults to 0): Shift of the stripes in pixels, in [0, 6).

    """
    grey = float(BACKGROUNDS[name])
    canvas = np.full((3, *_X.shape), grey, dtype=np.float32)
    if texture == "striped":
        stripes = np.where(((_X + _Y + phase) % _STRIPE_PERIOD) < _STRIPE_PERIOD / 2, 1.0, -1.0)
        sign = -1.0 if grey > 128 else 1.0
        canvas += (sign * _STRIPE_CONTRAST * (stripes + 1.0) / 2.0).astype(np.float32)
    return canvas


def paint(canvas: np.ndarray, mask: np.ndarray, colour: str) -> None:
    """Paint `mask` of a supersampled canvas (in place) in one of `COLOURS`."""
    canvas[:, mask] = np.asarray(COLOURS[colour], dtype=np.float32)[:, None]


def pool(canvas: np.ndarray) -> np.ndarray:
    """Average a supersampled canvas down to `(3, IMAGE_SIZE, IMAGE_SIZE)` float32 in [-1, 1]."""
    s = _SUPERSAMPLE
    pooled = canvas.reshape(3, IMAGE_SIZE, s, IMAGE_SIZE, s).mean(axis=(2, 4))
    return (pooled / 127.5 - 1.0).astype(np.float32)


def render(scene: SceneSpec, rng: random.Random | None = None) -> np.ndarray:
    """Draw one scene.

    Args:
        scene (`SceneSpec`): What to draw.
        rng (`random.Random`, *optional*): Jitters each object by up to one pixel and shifts the
            stripes; without it every object sits on its cell's centre.

    Returns:
        `np.ndarray` of shape `(3, IMAGE_SIZE, IMAGE_SIZE)`, float32 in [-1, 1].

    """
    phase = rng.uniform(0.0, _STRIPE_PERIOD) if rng is not None and scene.texture == "striped" else 0.0
    canvas = background(scene.background, scene.texture, phase)
    for obj in scene.objects:
        dx, dy = (rng.uniform(-_JITTER, _JITTER), rng.uniform(-_JITTER, _JITTER)) if rng else (0.0, 0.0)
        paint(canvas, _mask(obj, dx, dy), obj.colour)
    return pool(canvas)


def render_batch(scenes: list[SceneSpec], rng: random.Random | None = None) -> torch.Tensor:
    """Draw scenes into one batch.

    Args:
        scenes (`list[SceneSpec]`): What to draw.
        rng (`random.Random`, *optional*): Jitter, as in `render`.

    Returns:
        `torch.Tensor` of shape `(len(scenes), 3, IMAGE_SIZE, IMAGE_SIZE)`, float32 in [-1, 1].

    """
    return torch.from_numpy(np.stack([render(scene, rng) for scene in scenes]))
