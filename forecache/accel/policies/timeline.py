"""Schedules on the normalised timeline: tuned positions (`Timeline`) and a shaped density (`Shaped`)."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from forecache.accel._checks import check_choice, check_float, check_instance
from forecache.accel.policies.base import Decision, Policy, register_policy

__all__ = ["Shaped", "Timeline", "shaped_levels", "shaped_steps", "timeline_steps"]

MAX_LEAD = 1000.0
"""The largest `Shaped.lead` accepted."""


@functools.cache
def timeline_steps(positions: tuple[float, ...], num_steps: int) -> frozenset[int]:
    """Return the steps nearest to `positions` (in [0, 1]) on a timeline of `num_steps` steps."""
    return frozenset(round(p * (num_steps - 1)) for p in positions)


@functools.cache
def _timeline_schedule(
    positions: tuple[float, ...], partial: tuple[float, ...], num_steps: int
) -> tuple[frozenset[int], frozenset[int]]:
    """Return a `Timeline`'s computed steps (its partial ones among them) and its partial steps.

    A step that is both a full and a partial one is full. Cached: once per step count.
    """
    full = timeline_steps(positions, num_steps)
    parts = timeline_steps(partial, num_steps) - full
    return full | parts, parts


def _split_lead(lead: float) -> tuple[int, float]:
    """Return the lead's whole steps and the share of the blocks its partial step runs (0.0: none)."""
    whole = math.floor(lead)
    return whole, lead - whole


def _lead_plan(num_steps: int, ratio: float, lead: float, limit: int) -> tuple[int, int, frozenset[int]]:
    """Return the full steps at `ratio`, the whole lead steps among them, and the partial lead step.

    At most `limit` full steps, and at least 2: ``round(num_steps / ratio)`` of them without a
    partial step; with one, counted as the share of the blocks it runs, the count that brings the
    total nearest ``num_steps / ratio``, a tie to the faster schedule (at 50 steps and 5x: 9 full
    steps and the partial one, not 10). No partial step where the whole lead steps take the count.
    """
    whole, share = _split_lead(lead)
    if share:
        full = max(2, min(limit, math.ceil(num_steps / ratio - share - 0.5)))
        if whole < full:
            return full, whole, frozenset({whole})
    full = max(2, min(limit, round(num_steps / ratio)))
    return full, min(whole, full), frozenset()


@functools.cache
def shaped_steps(ratio: float, shape: float, num_steps: int, lead: float = 1.0) -> frozenset[int]:
    """Return about ``num_steps / ratio`` steps at ``1 - (1 - u) ** shape``, u evenly spaced in [0, 1].

    With ``lead >= 2`` the first ``floor(lead)`` steps are computed and take the place of the
    spread's last ones; a fractional `lead` adds step ``floor(lead)`` as a partial step, counted in
    the ratio as that fraction of a step (`Shaped`).
    """
    count, lead_steps, partial = _lead_plan(num_steps, ratio, lead, num_steps)
    spread = range(count) if lead_steps == 1 else range(1, count - lead_steps + 1)
    positions = {round((1 - (1 - i / (count - 1)) ** shape) * (num_steps - 1)) for i in spread}
    return frozenset(range(lead_steps)) | positions | partial


@functools.cache
def shaped_levels(ratio: float, shape: float, levels: tuple[float, ...], lead: float = 1.0) -> frozenset[int]:
    """Return the lead steps and about ``len(levels) / ratio`` in all, spread on the noise scale.

    For ``u = i / count`` (``i = 1, 2, ...``), the free step nearest to the noise level
    ``(1 - u) ** shape`` (`levels` as `Policy.decide_on` gives them, 1.0 first), so the count holds
    where a shifted schedule's last levels lie far apart. The last step is left to the forecast,
    which ends there on the smoothest stretch of the trajectory, and its compute is spent earlier.
    Whole lead steps past the first take the place of the spread's last (lowest-noise) ones; a
    fractional lead's partial step (`Shaped`) is counted as its fraction of a step and is never
    one of the spread's.
    """
    n = len(levels)
    count, lead_steps, partial = _lead_plan(n, ratio, lead, n - 1)
    chosen = set(range(lead_steps))
    for i in range(1, count - len(chosen) + 1):
        target = (1 - i / count) ** shape
        free = [k for k in range(1, n - 1) if k not in chosen and k not in partial]
        if not free:  # two or three steps: all but the last are computed
            break
        chosen.add(min(free, key=lambda k: abs(levels[k] - target)))
    return frozenset(chosen | partial)


@register_policy("timeline")
@dataclass(frozen=True)
class Timeline(Policy):
    """Computed steps at fixed positions of the normalised timeline ``u = step / (num_steps - 1)``.

    What `forecache.tune` writes: its schedule, found for one step count, expressed so that it
    holds at others. At the tuned count the computed steps are exactly the tuned ones; at another
    count the steps nearest to the same positions are computed: the same points of the denoising
    trajectory, so the forecasts span the same stretches and the quality holds (the compute
    ratio scales with the step count: a 50-step schedule computing 6 steps is 8.3x at 50 steps
    and 4.7x at 28). Without a known step count, the tuned count is assumed.

    Partial steps spend compute between whole step counts: at 28 steps, 4 computed steps are 6.9x
    and 5 are 5.5x, so a 6x budget leaves most of a fifth step unused. A partial step runs every
    block of the stack but `partial_blocks`, whose residual it forecasts (from the full steps), and
    feeds the forecast histories like a computed step: the forecasts after it start from a nearly
    computed point. With the ``"blocks"`` target only.

    Args:
        positions: Increasing positions in [0, 1] of the computed steps; the first must be 0.0
            (a forecast needs a computed step before it). E.g. ``(0.0, 0.2, 0.5, 0.8, 1.0)``.
        steps: The step count the positions were tuned at (>= 2).
        partial: Increasing positions in (0, 1] of partial steps, none of them in `positions`.
            Default none.
        partial_blocks: ``(first, end)``: the blocks of the stack (0 its first) a partial step
            forecasts, ``0 <= first < end``, leaving at least one to run (checked when applied),
            when `partial` is given; ``(0, 0)`` without. Default ``(0, 0)``.

    """

    positions: tuple[float, ...]
    steps: int
    partial: tuple[float, ...] = ()
    partial_blocks: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        check_instance("Timeline", "positions", self.positions, (tuple,))
        check_instance("Timeline", "steps", self.steps, (int,))
        if self.steps < 2 or isinstance(self.steps, bool):
            raise ValueError(f"Timeline: `steps` must be an int >= 2, got {self.steps!r}")
        values = self.positions
        if not values or any(isinstance(p, bool) or not isinstance(p, (int, float)) for p in values):
            raise TypeError(f"Timeline: `positions` must be a non-empty tuple of floats, got {values!r}")
        finite = all(math.isfinite(p) for p in values)
        if (
            not finite
            or values[0] != 0
            or any(b <= a for a, b in itertools.pairwise(values))
            or values[-1] > 1
        ):
            raise ValueError(
                f"Timeline: `positions` must increase strictly from 0.0 to at most 1.0 (finite numbers), "
                f"got {values!r}"
            )
        object.__setattr__(self, "positions", tuple(float(p) for p in values))
        check_instance("Timeline", "partial", self.partial, (tuple,))
        partial = self.partial
        if any(isinstance(p, bool) or not isinstance(p, (int, float)) for p in partial):
            raise TypeError(f"Timeline: `partial` must be a tuple of floats, got {partial!r}")
        if partial and (
            not all(math.isfinite(p) and 0 < p <= 1 for p in partial)
            or any(b <= a for a, b in itertools.pairwise(partial))
            or set(partial) & set(self.positions)
        ):
            raise ValueError(
                "Timeline: `partial` must increase strictly within (0.0, 1.0] and share no position "
                f"with `positions`, got {partial!r}"
            )
        object.__setattr__(self, "partial", tuple(float(p) for p in partial))
        check_instance("Timeline", "partial_blocks", self.partial_blocks, (tuple,))
        span = self.partial_blocks
        valid = len(span) == 2 and all(isinstance(b, int) and not isinstance(b, bool) for b in span)
        if not valid or (partial and not 0 <= span[0] < span[1]) or (not partial and span != (0, 0)):
            raise ValueError(
                "Timeline: `partial_blocks` must be two ints (first, end) with 0 <= first < end with "
                f"`partial` steps, and (0, 0) without, got {span!r} with partial={partial!r}"
            )

    @classmethod
    def from_steps(
        cls,
        computed: list[int] | tuple[int, ...],
        num_steps: int,
        partial: list[int] | tuple[int, ...] = (),
        partial_blocks: tuple[int, int] = (0, 0),
    ) -> Timeline:
        """Return the timeline of computed step indices ``computed`` (0 among them) out of `num_steps`.

        `partial` and `partial_blocks`: step indices of partial steps and the blocks they forecast.
        """
        ordered = sorted(set(computed))
        parts = sorted(set(partial) - set(ordered))
        return cls(
            tuple(i / (num_steps - 1) for i in ordered),
            num_steps,
            tuple(i / (num_steps - 1) for i in parts),
            tuple(partial_blocks) if parts else (0, 0),  # type: ignore[arg-type]
        )

    def computed_steps(self, num_steps: int | None) -> frozenset[int]:
        """Return the computed step indices at `num_steps` (the tuned count when None), partial ones too."""
        return _timeline_schedule(self.positions, self.partial, num_steps or self.steps)[0]

    def partial_steps(self, num_steps: int | None) -> frozenset[int]:
        """Return the partial step indices at `num_steps` (a step that is also a full one is full)."""
        return _timeline_schedule(self.positions, self.partial, num_steps or self.steps)[1]

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Compute the steps of the schedule at this step count; forecast the rest."""
        computed = self.computed_steps(num_steps)
        if step in computed or step >= (num_steps or self.steps):
            return Decision.COMPUTE
        return Decision.FORECAST

    def partial_span(self, stack: int) -> tuple[int, int]:
        """Return the tuned span, `partial_blocks`, whatever the stack's size (the session checks it)."""
        return self.partial_blocks

    def is_partial(self, step: int, num_steps: int | None) -> bool:
        """Whether computed step `step` is one of the partial ones."""
        return step in self.partial_steps(num_steps)


@register_policy("shaped")
@dataclass(frozen=True)
class Shaped(Policy):
    """A compute ratio held at every step count, its computed steps denser late (or early).

    At ``n`` steps, ``round(n / ratio)`` steps are computed, spread by `shape` along `axis`:

    - ``"step"``: at ``1 - (1 - u) ** shape`` of the normalised timeline for ``u`` evenly spaced
      in [0, 1] (the first and last step included);
    - ``"noise"``: at the steps nearest to the noise levels ``(1 - u) ** shape`` (each step's
      timestep over the first's, from the scheduler's schedule; `shaped_levels`), the first step
      included and the last forecast. A shifted flow-matching schedule (FLUX's, SD3's, Wan's)
      falls slowly at first and fast at the end, so the same `shape` computes fewer early steps
      there than on an unshifted one, where the two axes agree. When the schedule is not known
      (no scheduler, or one whose timesteps do not fall), the step axis is used.

    ``shape = 1`` is an even spacing; larger puts more computed steps late, where errors are no
    longer corrected by later steps, and fewer early, where the features change little between
    steps. What `forecache.TimelineConfig` uses.

    `lead`: the first steps always computed, counted in the ratio. A model whose first output (from
    pure noise) is no guide to the next few steps is spoiled by forecasting them from it: the
    six-stage scenes reference model's block stack changed by 47 % of its norm from step 0 to step 1
    (6 % at the median step). ``lead = 2`` computes step 1 too, in place of the spread's last step: 40.9 dB
    against 34.1 on the scenes model (28 steps, 5.5x, 64 held-out prompts, with reuse), but the
    digit models, whose spread it thins, lose 6-13 dB. A fractional lead adds step ``floor(lead)``
    as a partial step instead: it runs that fraction of the stack's blocks (the first and last
    ones) and forecasts the middle ones from the step before (a middle span costs least; see
    BENCHMARKS.md, "Partial steps"). ``lead = 1.5`` (`forecache.TimelineConfig`'s default) keeps the
    whole spread for about half a step more compute (28 steps: 5.03x against 5.52x): 41.1 dB on
    the scenes model against 34.1 (64 held-out prompts), and the worst of four reference models
    36.1 dB against 32.9, at a cost of 1-2 dB on the flux-digits models; see BENCHMARKS.md, "A
    partial lead step". Whether the slope across the lead steps is a guide depends on the model:
    the scenes model holds 41.1 dB with it and 37.1 with `Reuse` there, the six-stage scenes model
    shipped before it 34.1 and 40.3 (`Damped` takes one damping per stretch). Partial steps need
    the ``"blocks"`` target.

    Args:
        ratio: Steps over computed steps (> 1), a partial step counted as its fraction of the
            blocks (with one, a tie rounds to the faster schedule). Default 5.5.
        shape: Density exponent in (0, 10]. Default 1.3.
        axis: ``"step"`` (default) or ``"noise"``.
        lead: The first steps always computed (a number >= 1): ``floor(lead)`` whole ones, and with
            a fractional part one partial step after them that runs that fraction of the blocks.
            Default 1.

    """

    ratio: float = 5.5
    shape: float = 1.3
    axis: str = "step"
    lead: float = 1.0

    def __post_init__(self) -> None:
        check_float("Shaped", "ratio", self.ratio, 1.0, 1000.0)
        check_float("Shaped", "shape", self.shape, 0.0, 10.0)
        check_choice("Shaped", "axis", self.axis, ("step", "noise"))
        lead = self.lead
        if isinstance(lead, bool) or not isinstance(lead, (int, float)):
            raise TypeError(f"Shaped: `lead` must be a number >= 1, got {lead!r} ({type(lead).__name__})")
        if not 1 <= lead <= MAX_LEAD:
            raise ValueError(f"Shaped: `lead` must be a number in [1, {MAX_LEAD}], got {lead!r}")
        object.__setattr__(self, "lead", float(lead))

    def partial_span(self, stack: int) -> tuple[int, int]:
        """Return the middle blocks a fractional lead's partial step forecasts (it runs the rest)."""
        share = _split_lead(self.lead)[1]
        forecast = stack - max(1, round(stack * share)) if share else 0
        if forecast < 1:
            return (0, 0)
        first = (stack - forecast) // 2
        return (first, first + forecast)

    def is_partial(self, step: int, num_steps: int | None) -> bool:
        """Whether computed step `step` is a fractional lead's partial step, ``floor(lead)``."""
        whole, share = _split_lead(self.lead)
        return bool(share) and step == whole

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Compute the shaped schedule's steps at this step count (50 when unknown); forecast the rest."""
        steps = num_steps or 50
        if step >= steps or step in shaped_steps(self.ratio, self.shape, steps, self.lead):
            return Decision.COMPUTE
        return Decision.FORECAST

    def decide_on(self, step: int, levels: tuple[float, ...], run_length: int) -> Decision:
        """With ``axis="noise"``, place the computed steps on `levels`; else as `decide`."""
        if self.axis != "noise":
            return self.decide(step, len(levels), run_length)
        if step >= len(levels) or step in shaped_levels(self.ratio, self.shape, levels, self.lead):
            return Decision.COMPUTE
        return Decision.FORECAST
