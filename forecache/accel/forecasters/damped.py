"""Linear extrapolation with a damped slope, one damping per stretch: what the tuner fits to its schedule."""

from __future__ import annotations

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
    register_forecaster,
)
from forecache.accel.forecasters.taylor import TaylorHistory

__all__ = ["Damped", "DampedHistory"]

MAX_DAMPING = 2.0


@register_forecaster("damped")
@dataclass(frozen=True)
class Damped:
    """Linear extrapolation whose slope is scaled by a damping of its own on each forecast stretch.

    After the k-th computed step (k = 0 the first) the forecast at ``x`` is
    ``F_k + damping[k] * (x - x_k) * (F_k - F_{k-1}) / (x_k - x_{k-1})``: reuse at damping 0,
    `Taylor` order 1 (TaylorSeer, arXiv:2503.06923) at 1, and at a single value in between the
    damped slope of `Hermite` order 1 (HiCache, arXiv:2508.16984; ``damping = 2 sigma^2``). After the
    first computed step there is no slope and the feature is reused; past the end of `damping` its
    last value holds. A partial step (`forecache.Timeline`) counts as a computed step.

    One value for the whole trajectory is a poor fit where the trajectory bends: the slope between
    the first two computed steps of a model whose first output (from pure noise) is no guide to the
    next ones overshoots the next stretch, where a later, straighter stretch wants most of it.
    `forecache.tune` fits one damping per stretch of its chosen schedule by least squares on the
    recorded trajectory (`forecache.calibrate.damping`) and keeps it where a real run confirms it.
    Measured on the six-stage scenes model (64 held-out prompts, the tuner's 6x schedule at 28
    steps): reuse 38.7 dB, Taylor 1 26.1 dB, a damping of 0.1 throughout 40.1 dB; see BENCHMARKS.md,
    "Damped slopes".

    Speed/quality: the cost of `Taylor` order 1 (two history tensors per cached site, one fused
    weighted sum per forecast).

    Args:
        damping: The slope's factor on each stretch, in [0, 2]: one float for all, or a tuple
            indexed by the computed step that starts the stretch (its first entry, the stretch
            after the first computed step, has no slope to scale). Default 0.5.
        coordinate: ``"step"`` (default) or ``"timestep"``.

    """

    damping: tuple[float, ...] | float = 0.5
    coordinate: Coordinate = "step"

    def __post_init__(self) -> None:
        value = self.damping
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            kind = type(value).__name__
            raise TypeError(f"Damped: `damping` must be a float or a tuple of floats, got {value!r} ({kind})")
        if not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= MAX_DAMPING for v in value
        ):
            raise ValueError(
                f"Damped: `damping` must be a float or a non-empty tuple of floats in [0, {MAX_DAMPING:g}], "
                f"got {self.damping!r}"
            )
        object.__setattr__(self, "damping", tuple(float(v) for v in value))
        check_choice("Damped", "coordinate", self.coordinate, COORDINATES)

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create a two-point divided-difference history that knows which stretch it forecasts."""
        assert isinstance(self.damping, tuple)
        return DampedHistory(self.damping, dtype, memo, track_peak)


class DampedHistory(TaylorHistory):
    """`Taylor` order 1's history, counting its computed steps to pick each stretch's damping."""

    def __init__(
        self, damping: tuple[float, ...], dtype: torch.dtype | None, memo: Memo, track_peak: bool = False
    ) -> None:
        super().__init__(1, dtype, memo, track_peak)
        self.damping = damping
        self.count = 0

    def update(self, feature: Tensor, x: float) -> None:
        """Fold `feature` in; a history that started over (new shape, repeated `x`) counts from 1 again."""
        super().update(feature, x)
        self.count = 1 if len(self.xs) == 1 else self.count + 1

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the last computed feature plus the damped slope times the distance to it."""
        if len(self.xs) < 2:
            return self.combine((1.0,), 0, guard, addend)
        damping = self.damping[min(self.count - 1, len(self.damping) - 1)]
        return self.combine((1.0, damping * (x - self.xs[-1])), 0, guard, addend)
