"""An explicit schedule of computed and forecast steps (hand-placed, or written by the tuner)."""

from __future__ import annotations

from dataclasses import dataclass

from forecache.accel._checks import check_instance
from forecache.accel.policies.base import Decision, Policy, register_policy

__all__ = ["StepMask"]


@register_policy("mask")
@dataclass(frozen=True)
class StepMask(Policy):
    """An explicit schedule: ``mask[i]`` True computes step i, False forecasts it.

    Steps past the end of the mask are computed. The first entry must be True (a forecast needs
    a computed step before it).

    Args:
        mask: Tuple of bools, one per step, e.g. from a schedule tuned in the notebook.

    """

    mask: tuple[bool, ...]

    def __post_init__(self) -> None:
        check_instance("StepMask", "mask", self.mask, (tuple,))
        if not self.mask or any(not isinstance(m, bool) for m in self.mask):
            raise TypeError(f"StepMask: `mask` must be a non-empty tuple of bools, got {self.mask!r}")
        if not self.mask[0]:
            raise ValueError(
                f"StepMask: `mask[0]` must be True (the first step is computed), got {self.mask[0]!r}"
            )

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step`; `num_steps` and `run_length` are ignored."""
        if step >= len(self.mask) or self.mask[step]:
            return Decision.COMPUTE
        return Decision.FORECAST
