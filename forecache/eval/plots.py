"""Pictures of the outputs, drawn with Pillow: the comparison grid and the difference heat maps.

Images keep their own aspect ratio. Large outputs are downscaled with a Lanczos filter to a
readable height; small ones (the 16x16 reference digits) are enlarged by a whole factor with
nearest-neighbour, so every pixel stays a crisp square. A last column shows a crop of the first
sample at full resolution (1:1 pixels), where a downscaled thumbnail would hide the artefacts a
cache leaves. Videos show a strip of frames of one clip (the report picks the worst) instead of one
image per seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["difference_maps", "display_size", "image_grid"]

_PAD = 6
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_HEADER = 22
_TARGET = 128  # readable thumbnail height in pixels
_MAX = 192


def _font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font only
        return ImageFont.load_default()


def display_size(height: int, width: int) -> tuple[int, int]:
    """Return the thumbnail ``(height, width)``: small images enlarged by a whole factor, big ones reduced."""
    if height > _MAX:
        scale = _MAX / height
    else:
        scale = max(1, _TARGET // height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_pil(image: np.ndarray) -> Image.Image:
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def _thumbnail(image: np.ndarray) -> Image.Image:
    pil = _to_pil(image)
    height, width = display_size(pil.height, pil.width)
    flt = Image.Resampling.NEAREST if height >= pil.height else Image.Resampling.LANCZOS
    return pil.resize((width, height), flt)


def _crop(image: np.ndarray, side: int) -> Image.Image:
    pil = _to_pil(image)
    w, h = min(side, pil.width), min(side, pil.height)
    left, top = (pil.width - w) // 2, (pil.height - h) // 2
    return pil.crop((left, top, left + w, top + h))


def _columns(images: np.ndarray, max_columns: int, clip: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Return the pictures of one row and the full-resolution source of its crop."""
    if images.ndim == 5:  # (batch, frames, H, W, C): a strip of frames of one clip
        frames = images[clip]
        picks = np.unique(np.linspace(0, len(frames) - 1, min(max_columns, len(frames))).round().astype(int))
        return [frames[i] for i in picks], frames[len(frames) // 2]
    return [images[i] for i in range(min(max_columns, len(images)))], images[0]


def image_grid(
    rows: Sequence[tuple[str, np.ndarray]],
    seeds: Sequence[int],
    max_columns: int = 8,
    crop: int = 128,
    clip: int = 0,
) -> Image.Image:
    """One row per method (the baseline first), one column per seed (same seed, same column).

    Args:
        rows: ``(label, outputs)`` per method: images ``(batch, H, W, C)`` or videos
            ``(batch, frames, H, W, C)`` in [0, 1].
        seeds: The seed of each sample.
        max_columns: Samples (or video frames) shown per row. Default 8.
        crop: Side of the full-resolution crop of the first sample (the middle frame of a video),
            shown last in each row. Default 128 pixels.
        clip: Videos: the clip whose frames every row shows (the report passes the worst one,
            `forecache.eval.temporal.worst_clip`). Default 0.

    """
    if not rows:
        return Image.new("RGB", (320, 40), _WHITE)
    font = _font()
    video = rows[0][1].ndim == 5
    columns = min(len(_columns(images, max_columns, clip)[0]) for _, images in rows)
    sample = _thumbnail(_columns(rows[0][1], max_columns, clip)[0][0])
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    crop_w = max(min(crop, rows[0][1].shape[-2]), int(measure.textlength("1:1 crop", font=font)) + _PAD)
    crop_h = min(crop, rows[0][1].shape[-3])
    label_w = 16 + max(int(measure.textlength(label, font=font)) for label, _ in rows)
    cell_h = max(sample.height, crop_h) + _PAD
    width = label_w + columns * (sample.width + _PAD) + crop_w + 3 * _PAD
    canvas = Image.new("RGB", (width, _HEADER + len(rows) * cell_h + _PAD), _WHITE)
    draw = ImageDraw.Draw(canvas)
    if video:
        count = rows[0][1].shape[1]
        picks = np.unique(np.linspace(0, count - 1, min(max_columns, count)).round().astype(int))
        titles = [
            f"seed {seeds[clip]}, frame {i}" if i == picks[0] else f"frame {i}" for i in picks[:columns]
        ]
    else:
        titles = [f"seed {seeds[c]}" for c in range(columns)]
    for c, title in enumerate(titles):
        draw.text((label_w + c * (sample.width + _PAD), 3), title, fill=_BLACK, font=font)
    draw.text((label_w + columns * (sample.width + _PAD) + _PAD, 3), "1:1 crop", fill=_BLACK, font=font)
    for r, (label, images) in enumerate(rows):
        top = _HEADER + r * cell_h
        draw.text((_PAD, top + sample.height // 2 - 7), label, fill=_BLACK, font=font)
        pictures, source = _columns(images, max_columns, clip)
        for c, picture in enumerate(pictures[:columns]):
            canvas.paste(_thumbnail(picture), (label_w + c * (sample.width + _PAD), top))
        canvas.paste(_crop(source, crop), (label_w + columns * (sample.width + _PAD) + _PAD, top))
    return canvas


_HEAT = np.array(
    [[0, 0, 4], [60, 15, 110], [150, 40, 100], [230, 90, 40], [252, 200, 50], [252, 255, 164]],
    dtype=np.float64,
)  # dark to bright, like matplotlib's "inferno"


def _heat(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] to RGB along `_HEAT`."""
    x = np.clip(values, 0.0, 1.0) * (len(_HEAT) - 1)
    low = np.floor(x).astype(int).clip(0, len(_HEAT) - 2)
    frac = (x - low)[..., None]
    return ((1 - frac) * _HEAT[low] + frac * _HEAT[low + 1]).astype(np.uint8)


_FLOOR = 1e-3  # a quarter of one 8-bit level


def _log_scale(diff: np.ndarray) -> np.ndarray:
    """Map |difference| in [0, 1] to [0, 1] logarithmically: `_FLOOR` and below -> 0, 1 -> 1."""
    return (np.log10(np.maximum(diff, _FLOOR)) - np.log10(_FLOOR)) / -np.log10(_FLOOR)


def difference_maps(
    baseline: np.ndarray,
    rows: Sequence[tuple[str, np.ndarray]],
    seeds: Sequence[int],
    max_columns: int = 8,
    clip: int = 0,
) -> Image.Image:
    """Heat maps of |method - baseline| per pixel (mean over channels), one row per method.

    All rows share one logarithmic colour scale (black: a difference under a quarter of an 8-bit
    level; bright yellow: the full range), so small differences stay visible next to large ones and
    a brighter map is a worse method. Videos: the frames of clip `clip`.
    """
    diffs = []
    for label, images in rows:
        diff = np.abs(images.astype(np.float64) - baseline.astype(np.float64)).mean(axis=-1, keepdims=True)
        diffs.append((label, diff))
    coloured = [(label, _heat(_log_scale(d[..., 0])).astype(np.float32) / 255.0) for label, d in diffs]
    grid = (
        image_grid(coloured, seeds, max_columns, clip=clip)
        if coloured
        else Image.new("RGB", (320, 40), _WHITE)
    )
    canvas = Image.new("RGB", (grid.width, grid.height + _HEADER), _WHITE)
    canvas.paste(grid, (0, _HEADER))
    ImageDraw.Draw(canvas).text(
        (_PAD, 3),
        f"|method - baseline| per pixel, log scale shared by all rows: black <= {_FLOOR:g}, "
        "bright = 1 (the full range)",
        fill=_BLACK,
        font=_font(),
    )
    return canvas
