"""Pareto fronts of (speed, quality) points: which configurations no other one beats on both."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pareto_front"]


def pareto_front(
    points: Sequence[tuple[float | None, float | None]], higher_is_better: bool = True
) -> list[int]:
    """Return the indices of the non-dominated points, sorted by speed.

    A point is dominated when another is at least as fast and at least as good, and strictly better
    in one of the two. Points with a missing or NaN coordinate are never on the front.

    Args:
        points: ``(speed, quality)`` pairs; speed is higher-is-better.
        higher_is_better: Whether quality is higher-is-better (PSNR, SSIM) or lower (FID, LPIPS).
            Default True.

    Returns:
        Indices into `points`, in increasing speed.

    """
    sign = 1.0 if higher_is_better else -1.0
    valid = [
        (i, float(s), sign * float(q))
        for i, (s, q) in enumerate(points)
        if s is not None and q is not None and not math.isnan(s) and not math.isnan(q)
    ]
    front = []
    for i, s, q in valid:
        dominated = any((s2 >= s and q2 >= q) and (s2 > s or q2 > q) for j, s2, q2 in valid if j != i)
        if not dominated:
            front.append((s, i))
    return [i for _, i in sorted(front)]
