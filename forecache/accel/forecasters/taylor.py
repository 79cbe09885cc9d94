"""Taylor-series forecasting (TaylorSeer, arXiv:2503.06923) with derivatives from divided differences."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forecache.accel._checks import check_choice, check_int
from forecache.accel.forecasters.base import (
    COORDINATES,
    MAX_ORDER,
    Coordinate,
    Guard,
    History,
    Memo,
    TensorHistory,
    register_forecaster,
)

__all__ = ["Taylor", "TaylorHistory"]


@register_forecaster("taylor")
@dataclass(frozen=True)
class Taylor:
    """Taylor-series forecast (TaylorSeer, arXiv:2503.06923), derivatives from finite differences.

    Keeps ``order + 1`` factors per cached tensor: the feature and its divided differences over
    the last computed steps, rewritten in place at every computed step. The prediction is the
    series in Newton form, which reproduces any polynomial trajectory of degree <= `order`
    exactly, on uniform and non-uniform grids of the chosen coordinate.

    Args:
        order: Series order m in [0, 8]; 0 is reuse. Default 1. Each order costs one feature of
            memory per cached tensor; orders above 2 rarely help at intervals above 4.
        coordinate: ``"step"`` (step index, as the paper) or ``"timestep"`` (the scheduler's real
            timestep, which follows shifted or Karras grids). Default ``"step"``.

    """

    order: int = 1
    coordinate: Coordinate = "step"

    def __post_init__(self) -> None:
        check_int("Taylor", "order", self.order, 0, MAX_ORDER)
        check_choice("Taylor", "coordinate", self.coordinate, COORDINATES)

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the divided-difference history of one cached tensor."""
        return TaylorHistory(self.order, dtype, memo, track_peak)


def newton_scales(xs: tuple[float, ...], x: float) -> tuple[float, ...]:
    """Return the update's scales ``1 / (x - xs[-1 - i])``: order ``i + 1`` of the new divided differences."""
    return tuple(1.0 / (x - xs[-1 - i]) for i in range(len(xs)))


def newton_weights(xs: tuple[float, ...], x: float) -> tuple[float, ...]:
    """Return the weights of the stored divided differences at `x`: ``prod_{j < i} (x - xs[-1 - j])``."""
    weights = [1.0]
    for i in range(1, len(xs)):
        weights.append(weights[-1] * (x - xs[-i]))
    return tuple(weights)


class TaylorHistory(TensorHistory):
    """Newton divided differences of the last ``order + 1`` computed features, updated in one pass."""

    def __init__(self, order: int, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> None:
        super().__init__(order + 1, dtype, memo, track_peak)
        self.order = order

    def update(self, feature: Tensor, x: float) -> None:
        """Fold `feature` at `x` into the divided differences (one fused pass, the peak included)."""
        ops = self.prepare(feature, x)
        known = self.xs[-self.order :] if self.order else ()
        if len(self.slots) < len(known) + 1:
            self.slots.append(self.new_slot())
        key = ("taylor-update", known, x)
        scales = self.memo.get(key)
        if scales is None:
            scales = self.memo[key] = newton_scales(known, x)
        ops.taylor_update_(self.slots[: len(known) + 1], feature, scales, self.peak)
        self.xs = (*known, x)

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the series at `x` (falls back, per refused element, to the last computed feature)."""
        key = ("taylor", self.xs, x)
        weights = self.memo.get(key)
        if weights is None:
            weights = self.memo[key] = newton_weights(self.xs, x)
        return self.combine(weights, 0, guard, addend)
