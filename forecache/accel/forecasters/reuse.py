"""Order-0 forecasting: a skipped step reuses the last computed feature (FORA, DeepCache, FBCache)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from forecache.accel.forecasters.adams_bashforth import RingHistory
from forecache.accel.forecasters.base import Coordinate, History, Memo, register_forecaster

__all__ = ["Reuse"]


@register_forecaster("reuse")
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

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create a one-slot ring."""
        return RingHistory(1, dtype, memo, track_peak)
