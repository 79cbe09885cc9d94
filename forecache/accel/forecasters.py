"""Forecasters: how a skipped step's feature is predicted from the steps that were computed.

Each forecaster is a frozen spec (what users configure) and a runtime history (one per cached
tensor) registered against it. A history is fed ``update(feature, x)`` at computed steps and asked
``predict(x)`` at skipped ones, where ``x`` is the time coordinate: the step index or the
scheduler's real timestep (sigma), chosen per spec.

Speed/quality: every order adds one history tensor per cached site (memory and bandwidth of one
feature each); higher orders follow curved trajectories better but amplify noise when the
computed steps are far apart. Order 1-2 is the usual sweet spot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from forecache.accel._checks import check_choice, check_int
from forecache.kernels import guarded_weighted_sum, taylor_update_, weighted_sum

__all__ = [
    "COORDINATES",
    "AdamsBashforth",
    "ForecasterSpec",
    "Guard",
    "History",
    "Reuse",
    "Taylor",
    "make_history",
]

Coordinate = Literal["step", "timestep"]
COORDINATES: tuple[str, ...] = ("step", "timestep")
_MAX_ORDER = 8


@dataclass(frozen=True)
class Reuse:
    """Order-0 forecast: a skipped step reuses the last computed feature (FORA, DeepCache, FBCache).

    Cheapest (one history tensor) and the least faithful: the error grows linearly with the
    distance to the last computed step.
    """

    @property
    def coordinate(self) -> Coordinate:
        """The time coordinate (irrelevant for reuse, reported as the step index)."""
        return "step"


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
        check_int("Taylor", "order", self.order, 0, _MAX_ORDER)
        check_choice("Taylor", "coordinate", self.coordinate, COORDINATES)


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
        check_int("AdamsBashforth", "order", self.order, 1, _MAX_ORDER)
        check_choice("AdamsBashforth", "coordinate", self.coordinate, COORDINATES)


ForecasterSpec = Reuse | Taylor | AdamsBashforth
Guard = tuple[torch.Tensor, torch.Tensor]
"""``(limit, refused)``: the largest accepted magnitude (float32) and an int32 count of refusals."""


def _combine(
    tensors: list[torch.Tensor], weights: list[float], fallback: int, guard: Guard | None
) -> torch.Tensor:
    """Return the history's weighted sum; guarded, elements past the limit take `tensors[fallback]`."""
    if guard is None:
        return weighted_sum(tensors, weights)
    return guarded_weighted_sum(tensors, weights, fallback, *guard)


class History(Protocol):
    """Per-tensor forecast state: fed at computed steps, queried at skipped ones."""

    def update(self, feature: torch.Tensor, x: float) -> None:
        """Record `feature` computed at coordinate `x` (copied, never aliased)."""

    def predict(self, x: float, guard: Guard | None = None) -> torch.Tensor:
        """Return a new tensor forecasting the feature at coordinate `x`, in the feature's dtype.

        With a `guard`, elements that are not finite or exceed its limit take the last computed
        value instead and are counted, in the same fused pass.
        """

    @property
    def nbytes(self) -> int:
        """Bytes held by the history tensors."""


def _empty(feature: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Return a contiguous uninitialised tensor shaped like `feature` (strides are never inherited)."""
    return torch.empty(feature.shape, dtype=dtype or feature.dtype, device=feature.device)


class _TaylorHistory:
    """Newton divided differences of the last ``order + 1`` computed features."""

    def __init__(self, order: int, dtype: torch.dtype | None) -> None:
        self.order = order
        self.dtype = dtype
        self.factors: list[torch.Tensor] = []
        self.xs: list[float] = []
        self.out_dtype = torch.float32

    def update(self, feature: torch.Tensor, x: float) -> None:
        self.out_dtype = feature.dtype
        if self.xs and any(x == old for old in self.xs):
            self.factors, self.xs = [], []
        known = min(len(self.xs), self.order)
        if len(self.factors) < known + 1:
            self.factors.append(_empty(feature, self.dtype))
        inv_dt = [1.0 / (x - self.xs[-1 - i]) for i in range(known)]
        taylor_update_(self.factors[: known + 1], feature, inv_dt)
        self.xs = [*self.xs, x][-(self.order + 1) :]

    def predict(self, x: float, guard: Guard | None = None) -> torch.Tensor:
        weights = [1.0]
        for i in range(1, len(self.factors)):
            weights.append(weights[-1] * (x - self.xs[-i]))
        return _combine(self.factors, weights, 0, guard).to(self.out_dtype)  # factors[0]: last feature

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.factors)


def lagrange_weights(xs: list[float], x: float) -> list[float]:
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


class _AdamsBashforthHistory:
    """Ring of the last `order` computed features and their coordinates."""

    def __init__(self, order: int, dtype: torch.dtype | None) -> None:
        self.order = order
        self.dtype = dtype
        self.ring: list[torch.Tensor] = []
        self.xs: list[float] = []
        self.out_dtype = torch.float32

    def update(self, feature: torch.Tensor, x: float) -> None:
        self.out_dtype = feature.dtype
        if self.xs and any(x == old for old in self.xs):
            self.ring, self.xs = [], []
        if len(self.ring) < self.order:
            self.ring.append(_empty(feature, self.dtype).copy_(feature))
            self.xs.append(x)
            return
        oldest = self.ring.pop(0)
        oldest.copy_(feature)
        self.ring.append(oldest)
        self.xs = [*self.xs[1:], x]

    def predict(self, x: float, guard: Guard | None = None) -> torch.Tensor:
        weights = lagrange_weights(self.xs, x)
        return _combine(self.ring, weights, len(self.ring) - 1, guard).to(self.out_dtype)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.ring)


_HISTORIES: dict[type, Callable[[ForecasterSpec, torch.dtype | None], History]] = {
    Reuse: lambda spec, dtype: _AdamsBashforthHistory(1, dtype),
    Taylor: lambda spec, dtype: _TaylorHistory(spec.order, dtype),  # type: ignore[union-attr]
    AdamsBashforth: lambda spec, dtype: _AdamsBashforthHistory(spec.order, dtype),  # type: ignore[union-attr]
}


def make_history(spec: ForecasterSpec, dtype: torch.dtype | None = None) -> History:
    """Create the runtime history of a forecaster spec.

    Args:
        spec: A `Reuse`, `Taylor` or `AdamsBashforth` spec.
        dtype: Storage dtype of the history tensors; None keeps each feature's dtype.

    Raises:
        TypeError: If `spec` is not a registered forecaster spec.

    """
    factory = _HISTORIES.get(type(spec))
    if factory is None:
        known = [t.__name__ for t in _HISTORIES]
        raise TypeError(f"`forecaster` must be one of {known}, got {spec!r} ({type(spec).__name__})")
    return factory(spec, dtype)
