"""Find, for each target compute ratio, the knob setting of a method that lands on it.

The search only sees ``evaluate(value) -> measured ratio`` (real runs of the first batch in the
harness, cached by the caller so a setting never runs twice) and assumes the ratio grows with the
knob. Discrete knobs (intervals, ordered choices) are searched by interpolation over their index
until the two neighbours around the target are known; continuous knobs (thresholds) by regula falsi
in (log value, log ratio), bracketing first by factors of 4 from the method's default (a knob whose
value is the ratio aimed at, `Knob.is_ratio`, tries the target itself and steps onto it). A target is
"matched" when some setting lands within `tolerance` (relative) of it, else "cannot reach": beyond
the knob's range, or in a jump of the ratio between two settings closer than 4% (a gate whose
decisions flip together), or past a cap (a 4x larger setting raises the ratio by under 1%).
The setting closest to the target is reported either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forecache.eval.methods import Knob

__all__ = ["MATCHED", "UNREACHABLE", "Choice", "Search", "search"]

MATCHED = "matched"
UNREACHABLE = "cannot reach"
_GROW = math.log(4.0)
_MIN_WIDTH = math.log(1.04)
"""A bracket of knob values narrower than this (4 %) whose ratios straddle the target is a jump."""


@dataclass(frozen=True)
class Choice:
    """The outcome for one target.

    Attributes:
        target: The target ratio.
        status: `MATCHED` or `UNREACHABLE`.
        value: The knob value whose ratio is closest to the target (None if nothing ran).
        ratio: Its measured ratio.
        reason: Why a target is unreachable (empty when matched).

    """

    target: float
    status: str
    value: Any
    ratio: float | None
    reason: str = ""


@dataclass
class Search:
    """Every setting evaluated (value -> ratio, in evaluation order) and the choice per target."""

    knob: Knob
    evaluated: dict[Any, float] = field(default_factory=dict)
    choices: list[Choice] = field(default_factory=list)


def _off(ratio: float, target: float) -> float:
    return abs(math.log(ratio / target))


class _Searcher:
    def __init__(
        self, knob: Knob, evaluate: Callable[[Any], float], tolerance: float, max_evals: int
    ) -> None:
        self.knob, self._evaluate, self.max_evals = knob, evaluate, max_evals
        self.tolerance = tolerance
        # stop refining within half the tolerance; after two runs for a target, within all of it
        self.goals = [math.log1p(tolerance / 2)] * 2 + [math.log1p(tolerance)] * max(max_evals - 2, 1)
        if knob.discrete:  # neighbouring settings are the finest step there is: fewer refinements
            self.goals = self.goals[: max(max_evals - 1, 1)]
        self.result = Search(knob)
        self.capped = False  # a continuous knob whose ratio stopped growing

    def ratio(self, value: Any) -> float:
        if value not in self.result.evaluated:
            self.result.evaluated[value] = float(self._evaluate(value))
        return self.result.evaluated[value]

    def closest(self, target: float, values: Sequence[Any]) -> Choice:
        known = [(v, self.result.evaluated[v]) for v in values if v in self.result.evaluated]
        if not known:
            return Choice(target, UNREACHABLE, None, None, "nothing could be evaluated")
        value, ratio = min(known, key=lambda vr: _off(vr[1], target))
        if abs(ratio / target - 1.0) <= self.tolerance:
            return Choice(target, MATCHED, value, ratio)
        field_name = self.knob.field
        below = [(v, r) for v, r in known if r < target]
        above = [(v, r) for v, r in known if r >= target]
        if not above:
            v_top, r_top = max(below, key=lambda vr: vr[1])
            if self._range_end_tried():
                reason = f"at most {r_top:.2f}x ({field_name}={v_top}; {self.knob.describe()})"
            else:
                reason = (
                    f"not reached in the runs allowed per target; highest {r_top:.2f}x ({field_name}={v_top})"
                )
        else:
            (v_lo, r_lo), (v_hi, r_hi) = max(below, key=self._order), min(above, key=self._order)
            low, high = f"{r_lo:.2f}x ({field_name}={v_lo})", f"{r_hi:.2f}x ({field_name}={v_hi})"
            if self._neighbours(v_lo, v_hi):
                reason = f"the ratio jumps from {low} to {high}"
            else:
                reason = f"not reached in the runs allowed per target; between {low} and {high}"
        return Choice(target, UNREACHABLE, value, ratio, reason)

    def _order(self, point: tuple[Any, float]) -> float:
        """Position of a setting along the knob (its index for discrete knobs)."""
        return float(self.knob.values.index(point[0])) if self.knob.discrete else float(point[0])

    def _range_end_tried(self) -> bool:
        knob, tried = self.knob, self.result.evaluated
        if knob.discrete:
            return knob.values[-1] in tried
        return self.capped or max(tried, default=0.0) >= knob.high * (1 - 1e-9)

    def _neighbours(self, low: Any, high: Any) -> bool:
        if self.knob.discrete:
            values = list(self.knob.values)
            return values.index(high) - values.index(low) == 1
        return math.log(high / low) < _MIN_WIDTH + 1e-9

    # discrete knobs: interpolate on the index -----------------------------------------------
    def discrete(self, target: float) -> Choice:
        values = self.knob.values
        index = {v: i for i, v in enumerate(values)}
        for goal in self.goals:
            known = sorted((index[v], r) for v, r in self.result.evaluated.items())
            near = [i for i, r in known if _off(r, target) <= goal]
            if near:
                return self.closest(target, [values[i] for i in near])
            below = [(i, r) for i, r in known if r < target]
            above = [(i, r) for i, r in known if r >= target]
            lo = max(below, default=(-1, 1.0))
            hi = min(above, default=None)
            if hi is not None and hi[0] == lo[0] + 1:
                break
            if hi is None and lo[0] == len(values) - 1:
                break
            self.ratio(values[self._next_index(lo, hi, below, target)])
        return self.closest(target, values)

    def _next_index(
        self,
        lo: tuple[int, float],
        hi: tuple[int, float] | None,
        below: list[tuple[int, float]],
        target: float,
    ) -> int:
        values = self.knob.values
        n = len(values)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if hi is None:
            if len(below) >= 2 and below[-1][1] > below[-2][1] * 1.001:
                (i0, r0), (i1, r1) = below[-2], below[-1]
                guess = i1 + (target - r1) * (i1 - i0) / (r1 - r0)
            elif len(below) >= 2:  # flat: only the end of the range can tell whether the target is there
                guess = n - 1
            elif numeric and lo[0] >= 0 and lo[1] > 1.0:  # ratio ~ proportional to the value
                wanted = values[lo[0]] * target / lo[1] * 1.1
                guess = min(range(n), key=lambda i: abs(values[i] - wanted))
            elif numeric and lo[0] < 0:  # first try: warm-up steps make the ratio lag the value
                guess = min(range(n), key=lambda i: abs(values[i] - 1.2 * target))
            else:
                guess = 2 * lo[0] + 2 if lo[0] >= 0 else n // 2
            return int(min(n - 1, max(lo[0] + 1, round(guess))))
        span = hi[1] - lo[1]
        guess = lo[0] + (target - lo[1]) * (hi[0] - lo[0]) / span if span > 0 else (lo[0] + hi[0]) / 2
        return int(min(hi[0] - 1, max(lo[0] + 1, round(guess))))

    @staticmethod
    def _plateau(below: list[tuple[float, float]]) -> bool:
        """Whether the last x4 step of the knob raised a ratio above 1 by under 1%: a cap."""
        if len(below) < 2:
            return False
        (x_prev, r_prev), (x_top, r_top) = below[-2], below[-1]
        return r_top > 1.02 and x_top - x_prev >= _GROW - 1e-9 and r_prev * 1.01 > r_top

    # continuous knobs: regula falsi in log-log ------------------------------------------------
    def continuous(self, target: float) -> Choice:
        knob = self.knob
        x_low, x_high = math.log(knob.low), math.log(knob.high)
        sides: list[bool] = []  # whether each run for this target landed above it
        for goal in self.goals:
            known = sorted((math.log(v), r) for v, r in self.result.evaluated.items())
            if any(_off(r, target) <= goal for _, r in known):
                break
            below = [(x, r) for x, r in known if r < target]
            above = [(x, r) for x, r in known if r >= target]
            lo = max(below, default=(x_low, 1.0))
            hi = min(above, default=None)
            if hi is None:
                if not known and not knob.is_ratio:
                    x = math.log(knob.start)
                elif lo[0] >= x_high - 1e-9:
                    break
                elif self._plateau(below):
                    self.capped = True
                    break
                elif knob.is_ratio and math.log(target) > lo[0] + 1e-9:  # the target itself
                    x = min(x_high, math.log(target))
                elif knob.is_ratio:  # landed below it: as if the ratio grew like the value
                    x = min(x_high, lo[0] + min(_GROW, max(_MIN_WIDTH, math.log(target / lo[1]))))
                else:
                    x = min(x_high, lo[0] + _GROW)
            else:
                width = hi[0] - lo[0]
                if width < _MIN_WIDTH:
                    break
                span = math.log(hi[1]) - math.log(max(lo[1], 1e-9))
                frac = (math.log(target) - math.log(max(lo[1], 1e-9))) / span if span > 0 else 0.5
                if len(sides) >= 2 and sides[-1] == sides[-2]:  # stuck on one side: bisect
                    frac = 0.5
                x = lo[0] + min(0.85, max(0.15, frac)) * width
            sides.append(self.ratio(float(f"{math.exp(x):.4g}")) >= target)
        return self.closest(target, list(self.result.evaluated))


def search(
    knob: Knob,
    evaluate: Callable[[Any], float],
    targets: Sequence[float],
    tolerance: float = 0.10,
    max_evals: int = 5,
) -> Search:
    """Find the knob setting for each target ratio.

    Args:
        knob: The method's knob.
        evaluate: Runs the method at a knob value and returns its measured compute ratio. Called at
            most once per value. Exceptions propagate (the method failed).
        targets: Target compute ratios (> 1), searched in increasing order so each target starts
            from what the previous ones measured.
        tolerance: Relative distance within which a target counts as matched. Default 0.10. The
            search refines until within half of it, or until `max_evals` more runs.
        max_evals: New evaluations allowed per target (one fewer for discrete knobs). Default 5.

    Returns:
        The `Search`: every evaluated setting and one `Choice` per target, in the order given.

    """
    searcher = _Searcher(knob, evaluate, tolerance, max_evals)
    found = {}
    for target in sorted(targets):
        found[target] = searcher.discrete(target) if knob.discrete else searcher.continuous(target)
    searcher.result.choices = [found[t] for t in targets]
    return searcher.result
