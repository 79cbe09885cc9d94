"""Figures drawn with Pillow (matplotlib is not a dependency): the image grid and the Pareto plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from forecache.eval.pareto import pareto_front

__all__ = ["ParetoPoint", "image_grid", "pareto_plot"]

_LABEL_W = 220
_PAD = 4
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GRAY = (150, 150, 150)
_RED = (200, 30, 30)


def _to_pil(image: np.ndarray, size: int) -> Image.Image:
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
    return Image.fromarray(pixels, "RGB").resize((size, size), Image.Resampling.NEAREST)


def image_grid(
    rows: Sequence[tuple[str, np.ndarray]], seeds: Sequence[int], max_columns: int = 8, cell: int = 64
) -> Image.Image:
    """One row per method (the baseline first), one column per seed, same seed in the same column.

    Args:
        rows: ``(label, images (batch, H, W, C) in [0, 1])`` per method.
        seeds: The seed of each column.
        max_columns: Samples shown per row. Default 8.
        cell: Side of each shown image in pixels (nearest-neighbour upscaling). Default 64.

    """
    columns = min(max_columns, min((len(images) for _, images in rows), default=0))
    header = 16
    width = _LABEL_W + columns * (cell + _PAD) + _PAD
    height = header + len(rows) * (cell + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for c in range(columns):
        draw.text((_LABEL_W + c * (cell + _PAD) + _PAD, 2), f"seed {seeds[c]}", fill=_BLACK, font=font)
    for r, (label, images) in enumerate(rows):
        top = header + r * (cell + _PAD) + _PAD
        draw.text((_PAD, top + cell // 2 - 6), label[:34], fill=_BLACK, font=font)
        for c in range(columns):
            canvas.paste(_to_pil(images[c], cell), (_LABEL_W + c * (cell + _PAD) + _PAD, top))
    return canvas


@dataclass(frozen=True)
class ParetoPoint:
    """One method in the Pareto plot: its label, speed-up and qualities (None: not plotted)."""

    label: str
    speedup: float | None
    psnr: float | None
    fid: float | None


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    points: Sequence[tuple[str, float, float]],
    y_title: str,
    higher_is_better: bool,
    x_title: str,
) -> None:
    left, top, right, bottom = box
    font = ImageFont.load_default()
    draw.rectangle(box, outline=_BLACK)
    draw.text((left, top - 16), f"{y_title} vs {x_title}", fill=_BLACK, font=font)
    if not points:
        draw.text((left + 10, top + 10), "no data", fill=_BLACK, font=font)
        return
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    x0, x1 = min([*xs, 1.0]), max([*xs, 1.0])
    y0, y1 = min(ys), max(ys)
    x0, x1 = (x0 - 0.5, x1 + 0.5) if x1 - x0 < 1e-9 else (x0 - 0.05 * (x1 - x0), x1 + 0.05 * (x1 - x0))
    y0, y1 = (y0 - 1.0, y1 + 1.0) if y1 - y0 < 1e-9 else (y0 - 0.08 * (y1 - y0), y1 + 0.08 * (y1 - y0))

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for tx in _ticks(x0, x1):
        px, _ = at(tx, y0)
        draw.line([(px, bottom), (px, bottom + 4)], fill=_BLACK)
        draw.text((px - 12, bottom + 6), f"{tx:.2f}", fill=_BLACK, font=font)
    for ty in _ticks(y0, y1):
        _, py = at(x0, ty)
        draw.line([(left - 4, py), (left, py)], fill=_BLACK)
        draw.text((left - 48, py - 6), f"{ty:.1f}", fill=_BLACK, font=font)
    draw.text(((left + right) // 2 - 30, bottom + 22), x_title, fill=_BLACK, font=font)
    front = pareto_front([(p[1], p[2]) for p in points], higher_is_better)
    if len(front) > 1:
        draw.line([at(points[i][1], points[i][2]) for i in front], fill=_RED, width=2)
    for i, (label, x, y) in enumerate(points):
        px, py = at(x, y)
        on_front = i in front
        draw.ellipse(
            [px - 4, py - 4, px + 4, py + 4],
            fill=_RED if on_front else None,
            outline=_RED if on_front else _GRAY,
        )
        draw.text((px + 6, py - 6), label[:24], fill=_BLACK if on_front else _GRAY, font=font)


def pareto_plot(points: Sequence[ParetoPoint], x_title: str = "speedup (denoising loop)") -> Image.Image:
    """Two panels: speed-up against PSNR (higher is better) and against FID (lower is better).

    The Pareto front of each panel is drawn in red (filled markers joined by a line); dominated
    methods are gray. An infinite PSNR (the baseline) is drawn 3 dB above the best finite one.
    """
    width, height = 1000, 460
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    finite = [p.psnr for p in points if p.psnr is not None and math.isfinite(p.psnr)]
    cap = (max(finite) if finite else 0.0) + 3.0
    psnr_points = [
        (p.label + (" (inf)" if math.isinf(p.psnr) else ""), p.speedup, min(p.psnr, cap))
        for p in points
        if p.speedup is not None and p.psnr is not None
    ]
    fid_points = [(p.label, p.speedup, p.fid) for p in points if p.speedup is not None and p.fid is not None]
    _panel(draw, (70, 40, 480, 400), psnr_points, "PSNR dB vs baseline (higher better)", True, x_title)
    _panel(draw, (580, 40, 990, 400), fid_points, "FID (lower better)", False, x_title)
    return canvas
