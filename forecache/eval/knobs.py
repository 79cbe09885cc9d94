"""The one knob of each method that trades quality for compute, and its range, for matched-speed runs.

`forecache bench --match 2,3,4` turns each method's knob until its compute ratio (linear-layer
FLOPs of the baseline over the method's) lands on each target. A knob is either discrete (an
integer range or an ordered list of choices: scanned) or continuous (bisected in log space). In
both cases larger knob values are expected to skip more, which holds for every knob here: the
forecast interval, a gate's or a cache's error threshold, cache-dit's step-mask policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["KNOBS", "Knob", "knob_for"]


@dataclass(frozen=True)
class Knob:
    """A method's speed knob.

    Attributes:
        field: The parameter it sets (``"interval"``, ``"threshold"``...).
        values: Discrete knobs: every allowed value, from the one that skips least to the one that
            skips most. Empty for continuous knobs.
        low: Continuous knobs: the smallest value tried (skips least).
        high: Continuous knobs: the largest value tried.
        start: Continuous knobs: the first value tried (the method's own default).

    """

    field: str
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    start: float = 0.0

    def __post_init__(self) -> None:
        if not self.values and not 0.0 < self.low < self.start <= self.high:
            raise ValueError(
                f"Knob `{self.field}`: a continuous knob needs 0 < low < start <= high, got "
                f"low={self.low}, start={self.start}, high={self.high}"
            )

    @property
    def discrete(self) -> bool:
        """Whether the knob is scanned over `values` (else bisected between `low` and `high`)."""
        return bool(self.values)

    def describe(self) -> str:
        """One line for reports: the field and its range."""
        if self.discrete:
            shown = self.values if len(self.values) <= 6 else (*self.values[:2], "...", self.values[-1])
            return f"{self.field} in {{{', '.join(map(str, shown))}}}"
        return f"{self.field} in [{self.low:g}, {self.high:g}]"


def _interval(steps: int) -> Knob:
    return Knob("interval", values=tuple(range(1, max(steps, 2) + 1)))


def _cache_knob(config: Any, steps: int) -> Knob:
    """Return the knob of the general ``cache`` method: its policy's interval or its gate's threshold."""
    fields = {f.name for f in dataclasses.fields(config.policy)}
    if "interval" in fields:
        return _interval(steps)
    if "threshold" in fields:
        return Knob("threshold", low=0.005, high=10.0, start=config.policy.threshold)
    raise ValueError(
        f"cache: `policy` {type(config.policy).__name__} has no knob to match (matching tunes an "
        "interval or a threshold); give the steps it computes, or drop --match"
    )


KNOBS: dict[str, Callable[[Any, int], Knob]] = {
    "taylorseer": lambda config, steps: _interval(steps),
    "ab": lambda config, steps: _interval(steps),
    "cg": lambda config, steps: Knob("threshold", low=0.005, high=10.0, start=config.threshold),
    "cache": _cache_knob,
    "tuned": lambda config, steps: Knob("ratio", low=1.2, high=float(steps), start=4.0),
    "timeline": lambda config, steps: Knob("ratio", low=1.2, high=float(steps), start=config.ratio),
    "diffusers.taylorseer": lambda config, steps: Knob("cache_interval", values=tuple(range(1, steps + 1))),
    "diffusers.fbcache": lambda config, steps: Knob("threshold", low=0.002, high=4.0, start=0.05),
    "diffusers.magcache": lambda config, steps: Knob("threshold", low=0.002, high=4.0, start=0.06),
    "cachedit.dbcache": lambda config, steps: Knob(
        "residual_diff_threshold", low=0.002, high=8.0, start=0.08
    ),
    "cachedit.foca": lambda config, steps: Knob("residual_diff_threshold", low=0.002, high=8.0, start=0.08),
    "cachedit.dmd": lambda config, steps: Knob("residual_diff_threshold", low=0.002, high=8.0, start=0.08),
    "cachedit.scm": lambda config, steps: Knob("mask_policy", values=("slow", "medium", "fast", "ultra")),
}
"""Method name -> ``knob(config, steps)``: the knob of that method (config: the built preset, or None)."""


def knob_for(name: str, config: Any, steps: int) -> Knob:
    """Return the knob of method `name` at `steps` denoising steps.

    Raises:
        ValueError: If the method has no knob (the baseline), naming the methods that have one.

    """
    if name not in KNOBS:
        raise ValueError(f"`match`: method {name!r} has no speed knob; methods with one: {list(KNOBS)}")
    return KNOBS[name](config, steps)
