"""Adams-Bashforth / polynomial extrapolation on the real timestep grid (AB-Cache, arXiv:2504.10540)."""

from __future__ import annotations

from collections.abc import Sequence
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

__all__ = ["AdamsBashforth", "RingHistory", "lagrange_weights"]


@register_forecaster("ab")
@dataclass(frozen=True)
class AdamsBashforth:
    """Adams-Bashforth / polynomial extrapolation (AB-Cache, arXiv:2504.10540).

    Keeps the last `order` computed features and combines them with the k-step extrapolation
    weights of the real, non-uniform grid (Lagrange basis at the target coordinate), so the local
    error is O(h^k) and a trajectory that is a polynomial of degree < `order` is reproduced
    exactly. With equal coordinates it predicts the same polynomial as `Taylor(order - 1)`; it
    stores raw features instead of differences and combines them in one fused weighted sum.

    Args:
        order: Number of past computed steps k in [1, 8]; 1 is reuse. Default 2.
        coordinate: ``"timestep"`` (default, the paper's real grid) or ``"step"``.

    """

    order: int = 2
    coordinate: Coordinate = "timestep"

    def __post_init__(self) -> None:
        check_int("AdamsBashforth", "order", self.order, 1, MAX_ORDER)
        check_choice("AdamsBashforth", "coordinate", self.coordinate, COORDINATES)

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the ring of the last `order` features of one cached tensor."""
        return RingHistory(self.order, dtype, memo, track_peak)


def lagrange_weights(xs: Sequence[float], x: float) -> list[float]:
    """Weights w_j with sum_j w_j f(xs[j]) = p(x), p the polynomial through all points.

    Args:
        xs: Distinct coordinates of the known points.
        x: Target coordinate.

    """
    weights = []
    for j, xj in enumerate(xs):
        w = 1.0
        for m, xm in enumerate(xs):
            if m != j:
                w *= (x - xm) / (xj - xm)
        weights.append(w)
    return weights


class RingHistory(TensorHistory):
    """Ring of the last `capacity` computed features, combined with Lagrange weights at forecast steps."""

    def update(self, feature: Tensor, x: float) -> None:
        """Copy `feature` into the oldest slot (one fused pass with the peak), newest last."""
        ops = self.prepare(feature, x)
        if len(self.slots) < self.capacity:
            self.slots.append(self.new_slot())
            self.xs = (*self.xs, x)
        else:
            self.slots.append(self.slots.pop(0))
            self.xs = (*self.xs[1:], x)
        ops.taylor_update_(self.slots[-1:], feature, (), self.peak)  # one factor: a copy

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the polynomial through the stored features at `x` (falls back to the newest one)."""
        key = ("lagrange", self.xs, x)
        weights = self.memo.get(key)
        if weights is None:
            weights = self.memo[key] = tuple(lagrange_weights(self.xs, x))
        return self.combine(weights, len(self.slots) - 1, guard, addend)
