"""Forecast-then-calibrate: BDF2 prediction with a Heun correction (FoCa, arXiv:2508.16211)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from forecache.accel._checks import check_choice
from forecache.accel.forecasters.base import (
    COORDINATES,
    Coordinate,
    Guard,
    History,
    Memo,
    TensorHistory,
    register_forecaster,
)

__all__ = ["FoCa", "FoCaHistory", "foca_weights"]

Vector = tuple[float, float, float]


@register_forecaster("foca")
@dataclass(frozen=True)
class FoCa:
    r"""Forecast then calibrate: BDF2 prediction, Heun correction (FoCa, Zheng et al., arXiv:2508.16211).

    FoCa treats a cached feature as the solution of an ODE and steps it through the skipped steps
    one at a time, from the two most recent values (computed or forecast), ``F_{k-1}`` at
    ``y_{k-1}`` and ``F_k`` at ``y_k``, towards ``y_{k+1} = y_k + h``:

    - forecast (BDF2, the paper's eq. 7, with the derivative lagged to ``y_k``): ``F^ = 4/3 F_k -
      1/3 F_{k-1} + 2h/3 F'_k``, ``F'_k = (F_k - F_{k-1}) / (y_k - y_{k-1})``. With that
      derivative it is linear extrapolation through the two values, ``F^ = F_k + h F'_k``; the
      variable-step BDF2 weights ``((1+w)^2 F_k - w^2 F_{k-1} + (1+w) h F'_k) / (1+2w)``,
      ``w = h / (y_k - y_{k-1})``, give the same line, so any grid is handled;
    - calibrate (Heun's trapezoid, eq. 8, anchored at the last computed step ``a``): ``F_{k+1} =
      F_k + h/2 (F'_a + F'_{k+1})``, with ``F'_a = (F_a - F_p) / (x_a - x_p)`` the slope between
      the last two computed features (the reliable derivative) and ``F'_{k+1}`` the BDF2 slope of
      the forecast, ``(3 F^ - 4 F_k + F_{k-1}) / 2h = F'_k``.

    The recursion starts from the anchor and the value visited just before it (the last forecast
    of the previous run, or the previous computed feature). It is linear in the stored features:
    after a computed predecessor it is exactly `Taylor(order=1)`; after a forecast run, with unit
    steps, ``F_{a+j} = F_a + j F'_a + (s_a - F'_a)(1 - 2^{-j})``, ``s_a = F_a - F_{a-1}`` the
    one-step slope at the anchor measured against the previous forecast. So the calibration adds
    a bounded correction that carries the local slope (and the previous run's forecast error)
    into the next run, where Taylor uses the secant over the whole interval.

    Speed/quality: it wins at short intervals and fails at long ones: the one-step slope at the
    anchor also carries the previous forecast's error, which the next run extrapolates (measured:
    BENCHMARKS.md, "Forecasters and probing policies").

    Three history tensors per cached tensor (the anchor, the previous computed feature, the value
    before the anchor); a forecast is one fused weighted sum of them (weights from the
    coordinates alone, memoised per step), a computed step one weighted sum (the value before the
    anchor) and one copy. cache-dit 1.5.3's calibrator of the same name simplifies the step size
    to 1 and advances ``F_full + elapsed/2 (F_full - F_full_prev + F_k - F_{k-1})`` without
    dividing the anchor difference by the interval; this module follows the paper's equations.

    Args:
        coordinate: ``"step"`` (default, the paper's step sizes) or ``"timestep"``.

    """

    coordinate: Coordinate = "step"

    def __post_init__(self) -> None:
        check_choice("FoCa", "coordinate", self.coordinate, COORDINATES)

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the anchor / previous / before-anchor history of one cached tensor."""
        return FoCaHistory(dtype, memo, track_peak)


def _axpy(a: Vector, scale: float, b: Vector) -> Vector:
    """Return ``a + scale * b``."""
    return (a[0] + scale * b[0], a[1] + scale * b[1], a[2] + scale * b[2])


def _slope(new: Vector, old: Vector, dx: float) -> Vector:
    """Return ``(new - old) / dx``."""
    return ((new[0] - old[0]) / dx, (new[1] - old[1]) / dx, (new[2] - old[2]) / dx)


def foca_weights(
    x_prev: float, x_before: float, x_anchor: float, visited: Sequence[float], x: float
) -> Vector:
    """Weights of (anchor, previous computed, value before the anchor) for the FoCa forecast at `x`.

    Each value of the recursion is a vector of weights over the three stored features.

    Args:
        x_prev: Coordinate of the previous computed feature ``F_p``.
        x_before: Coordinate of the value visited just before the anchor (``x_prev`` when that
            was the previous computed feature).
        x_anchor: Coordinate of the last computed feature ``F_a``.
        visited: Coordinates forecast since the anchor, in order (the recursion passes them).
        x: Target coordinate.

    """
    anchor, prev, before = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    slope_anchor = _slope(anchor, prev, x_anchor - x_prev)  # Heun's reliable derivative F'_a
    last, y_last, current, y = before, x_before, anchor, x_anchor
    for target in (*visited, x):
        slope = _slope(current, last, y - y_last)  # BDF2's F'_{k+1} (= the lagged F'_k)
        corrected = _axpy(current, (target - y) / 2.0, _axpy(slope_anchor, 1.0, slope))
        last, y_last, current, y = current, y, corrected, target
    return current


class FoCaHistory(TensorHistory):
    """The anchor, the previous computed feature and the value visited before the anchor.

    ``slots`` is ``[anchor, previous]`` plus the before-anchor value when it differs from the
    previous feature; ``visited`` the coordinates forecast since the anchor.
    """

    def __init__(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> None:
        super().__init__(3, dtype, memo, track_peak)
        self.x_before: float | None = None
        self.visited: tuple[float, ...] = ()
        self._pool: list[Tensor] = []

    def _free_buffer(self, keep: Sequence[Tensor]) -> Tensor:
        for buffer in self._pool:
            if all(buffer is not k for k in keep):
                return buffer
        buffer = self.new_slot()
        self._pool.append(buffer)
        return buffer

    def update(self, feature: Tensor, x: float) -> None:
        """Make `feature` the anchor; keep the old anchor and the value visited just before the new one."""
        ops = self.prepare(feature, x)
        if not self.slots:  # first feature, or restarted by `prepare`
            self._pool, self.visited, self.x_before = [], (), None
        slots, xs = self.slots, self.xs
        if not slots:
            kept: list[Tensor] = []
        else:
            anchor, x_anchor = slots[0], xs[-1]
            between = [v for v in self.visited if (v - x_anchor) * (x - v) > 0]
            if between and len(slots) > 1:  # the last forecast before `x` becomes the before-anchor value
                weights = self._weights(between[-1], tuple(between[:-1]))
                inputs = list(slots)
                target = slots[2] if len(slots) > 2 else self._free_buffer([anchor, slots[1]])
                before = ops.weighted_sum(inputs, weights[: len(inputs)], out=target)
                kept, self.x_before = [anchor, before], between[-1]
            else:  # the anchor itself was visited last: the previous feature is also the before-anchor one
                kept, self.x_before = [anchor], x_anchor
        new = self._free_buffer(kept)
        ops.taylor_update_([new], feature, (), self.peak)  # a copy, with the guard's peak
        self.slots = [new, *kept]
        self.xs = (self.xs[-1], x) if self.xs else (x,)
        self.visited = ()

    def _weights(self, x: float, visited: tuple[float, ...]) -> tuple[float, ...]:
        xs = self.xs
        if len(xs) < 2:
            return (1.0,)
        assert self.x_before is not None
        key = ("foca", len(self.slots), xs, self.x_before, visited, x)
        weights = self.memo.get(key)
        if weights is None:
            w = foca_weights(xs[0], self.x_before, xs[1], visited, x)
            weights = self.memo[key] = w if len(self.slots) > 2 else (w[0], w[1] + w[2])
        return weights

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the calibrated forecast at `x` (one fused pass; refused elements take the anchor)."""
        if not self.visited or self.visited[-1] != x:
            self.visited = (*[v for v in self.visited if v != x], x)
        return self.combine(self._weights(x, self.visited[:-1]), 0, guard, addend)

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage tensors (each buffer once)."""
        return sum(t.numel() * t.element_size() for t in self._pool)
