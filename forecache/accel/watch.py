"""Notice a generation that forecasts nothing because every call starts over, and say why.

The cache tells guidance branches, steps and generations apart by the time each call receives:
the same time again is another branch of the same step, a later (lower) time the next step, a
higher time a new generation. A model called with a time that never changes, or that runs the
other way (rises where diffusers' schedulers fall), or a loop whose scheduler is set anew at
every call, makes every call the first step of a new context: everything is computed, silently.
`StallWatch` counts those calls and, once the policy would have forecast at least one of them
had they been steps of one generation, returns one warning naming the likely cause.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

__all__ = ["CAUSES", "StallWatch"]

#: Calls in a row at one time before it counts as constant (no pipeline runs 4 branches per step).
SAME_TIME_CALLS = 4
#: Fresh starts in a row (at changing times, or on new schedules) before the generation counts as stalled.
FRESH_CALLS = 3

CAUSES = {
    "constant": (
        "the time argument is the same at every call (constant time), so every call is taken for "
        "another guidance branch of the first step; pass the step's real timestep, or give "
        "forecache.apply the loop's scheduler (scheduler=...)"
    ),
    "rising": (
        "the time runs the other way (it rises from call to call where diffusers' schedulers fall), "
        "so every call is taken for a new generation; register the model's layout with "
        "TimeArgument(..., rises=True)"
    ),
    "clock": (
        "the calls do not follow the scheduler's clock (its schedule is set anew at every call, or "
        "its step index does not match the calls), so every call starts a new generation; set the "
        "schedule once per generation, or apply forecache to a bare transformer without scheduler="
    ),
}


class StallWatch:
    """Count the calls in a row that open a fresh context, and warn once per stalled generation."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.schedules: list[int] = []
        self.warned = False

    def reset(self) -> None:
        """Forget the current streak (a context went past its first step)."""
        self.times, self.schedules = [], []
        self.warned = False

    def observe(
        self, step: int, timestep: float, schedule: int, would_forecast: Callable[[int], bool]
    ) -> str | None:
        """Record one call; return the warning text the first time a stall is evident, else None.

        Args:
            step: The step the call's context is at (0: it just started).
            timestep: The call's time on the host.
            schedule: The clock's generation counter (-1 without a clock).
            would_forecast: ``would_forecast(k)`` tells whether the policy would forecast (or
                probe) at one of steps 1..k of one generation.

        """
        if step > 0:
            self.reset()
            return None
        if self.warned and schedule != self.schedules[-1] and self.schedules.count(self.schedules[-1]) >= 2:
            # a new pipeline call after a stalled one (whose schedule held for several calls): a new
            # generation, which may warn again; a schedule set anew at every call warns once
            self.times, self.schedules, self.warned = [], [], False
        self.times.append(timestep)
        self.schedules.append(schedule)
        cause = self._cause()
        if self.warned or cause is None or not would_forecast(len(self.times) - 1):
            return None
        self.warned = True
        return (
            f"forecache: {len(self.times)} calls in a row each started a new context, so nothing was "
            f"forecast though the policy would have: {CAUSES[cause]}"
        )

    def _cause(self) -> str | None:
        times, schedules = self.times, self.schedules
        if (
            len(times) >= FRESH_CALLS
            and len(set(schedules[-FRESH_CALLS:])) == FRESH_CALLS
            and schedules[-1] >= 0
        ):
            return "clock"
        if len(times) >= SAME_TIME_CALLS and len(set(times)) == 1:
            return "constant"
        if len(times) >= FRESH_CALLS and len(set(times)) > 1:
            return "rising" if all(b >= a for a, b in itertools.pairwise(times)) else "clock"
        return None
