"""A schedule of computed steps on the normalised timeline, so one tuned schedule holds at any step count."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from forecache.accel._checks import check_instance
from forecache.accel.policies.base import Decision, register_policy

if TYPE_CHECKING:
    from forecache.accel.state import ContextState

__all__ = ["Timeline", "timeline_steps"]


@functools.cache
def timeline_steps(points: tuple[float, ...], num_steps: int) -> frozenset[int]:
    """Return the computed steps of a `Timeline` schedule at `num_steps` steps.

    The schedule keeps its compute ratio ``num_steps / len(computed)`` and its shape: with ``C`` the
    piecewise-linear cumulative share of computed steps through the tuned positions (``C(p_k) =
    k / (K - 1)``), the ``M = round(len(points) * num_steps / n_tuned)`` computed steps sit at
    ``u = C^-1(i / (M - 1))``, i.e. at the same quantiles of the tuned density; at the tuned
    step count this gives back exactly the tuned steps.

    Args:
        points: The tuned positions in [0, 1] (increasing, the first 0), plus the tuned step
            count in the last entry's place: see `Timeline`.
        num_steps: Steps in this generation (or this context's share of it).

    """
    *positions, tuned_steps = points
    count = len(positions)
    wanted = min(num_steps, max(1, round(count * num_steps / tuned_steps)))
    if wanted == 1 or count == 1:
        return frozenset({0})
    steps = set()
    for i in range(wanted):
        q = i / (wanted - 1) * (count - 1)  # position on the cumulative axis, in units of tuned points
        k = min(math.floor(q), count - 2)
        u = positions[k] + (q - k) * (positions[k + 1] - positions[k])
        steps.add(round(u * (num_steps - 1)))
    return frozenset(steps)


@register_policy("timeline")
@dataclass(frozen=True)
class Timeline:
    """Computed steps at fixed positions of the normalised timeline ``u = step / (num_steps - 1)``.

    What `forecache.tune` writes: its schedule, found for one step count, expressed so that it
    holds at others. At the tuned count the computed steps are exactly the tuned ones; at another
    count the same share of steps is computed, spread with the same density along the timeline
    (see `timeline_steps`). Without a known step count, the tuned count is assumed.

    Args:
        positions: Increasing positions in [0, 1] of the computed steps; the first must be 0.0
            (a forecast needs a computed step before it). E.g. ``(0.0, 0.2, 0.5, 0.8, 1.0)``.
        steps: The step count the positions were tuned at (>= 2).

    """

    positions: tuple[float, ...]
    steps: int

    def __post_init__(self) -> None:
        check_instance("Timeline", "positions", self.positions, (tuple,))
        check_instance("Timeline", "steps", self.steps, (int,))
        if self.steps < 2 or isinstance(self.steps, bool):
            raise ValueError(f"Timeline: `steps` must be an int >= 2, got {self.steps!r}")
        values = self.positions
        if not values or any(isinstance(p, bool) or not isinstance(p, (int, float)) for p in values):
            raise TypeError(f"Timeline: `positions` must be a non-empty tuple of floats, got {values!r}")
        if values[0] != 0 or any(b <= a for a, b in itertools.pairwise(values)) or values[-1] > 1:
            raise ValueError(
                f"Timeline: `positions` must increase strictly from 0.0 to at most 1.0, got {values!r}"
            )
        object.__setattr__(self, "positions", tuple(float(p) for p in values))

    @classmethod
    def from_steps(cls, computed: list[int] | tuple[int, ...], num_steps: int) -> Timeline:
        """Return the timeline of computed step indices ``computed`` (0 among them) out of `num_steps`."""
        ordered = sorted(set(computed))
        return cls(tuple(i / (num_steps - 1) for i in ordered), num_steps)

    @property
    def probe_blocks(self) -> int:
        """Blocks that always run (none: the decision needs no probe)."""
        return 0

    def computed_steps(self, num_steps: int | None) -> frozenset[int]:
        """Return the computed step indices at `num_steps` (the tuned count when None)."""
        return timeline_steps((*self.positions, float(self.steps)), num_steps or self.steps)

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Compute the steps of the schedule at this step count; forecast the rest."""
        computed = self.computed_steps(num_steps)
        if step in computed or step >= (num_steps or self.steps):
            return Decision.COMPUTE
        return Decision.FORECAST

    def observe(self, ctx: ContextState, probe: Tensor) -> None:
        """Never called: the timeline probes nothing."""
