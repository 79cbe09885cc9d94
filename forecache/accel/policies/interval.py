"""A fixed interval between computed steps, after a warm-up and before a cool-down (TaylorSeer, FORA)."""

from __future__ import annotations

from dataclasses import dataclass

from forecache.accel._checks import check_int
from forecache.accel.policies.base import Decision, Policy, in_cooldown, register_policy

__all__ = ["Interval"]


@register_policy("interval")
@dataclass(frozen=True)
class Interval(Policy):
    """Compute every `every`-th step after `warmup` full steps, and the last `cooldown` steps.

    Compute ratio at 50 steps is about ``50 / (warmup + cooldown + (50 - warmup - cooldown) / every)``.

    Args:
        every: Interval N >= 1 between computed steps; 1 computes every step. Default 5. Larger
            is faster; error grows with the distance to the last computed step.
        warmup: Leading steps always computed (>= 1; they shape the whole image). Default 3.
        cooldown: Trailing steps always computed (fine detail is settled there). Default 1. Needs
            the number of steps: known inside a wrapped pipeline, otherwise pass
            ``num_inference_steps`` to `forecache.apply`.

    """

    every: int = 5
    warmup: int = 3
    cooldown: int = 1

    def __post_init__(self) -> None:
        check_int("Interval", "every", self.every, 1)
        check_int("Interval", "warmup", self.warmup, 1)
        check_int("Interval", "cooldown", self.cooldown, 0)

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step` (0-based) of `num_steps` (None if unknown); `run_length` is ignored."""
        if step < self.warmup or in_cooldown(step, num_steps, self.cooldown):
            return Decision.COMPUTE
        return Decision.COMPUTE if (step - self.warmup) % self.every == 0 else Decision.FORECAST
