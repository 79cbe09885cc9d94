"""An explicit schedule of computed and forecast steps (hand-placed, or written by the tuner)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from forecache.accel._checks import check_instance
from forecache.accel.policies.base import Decision, register_policy

if TYPE_CHECKING:
    from forecache.accel.state import ContextState

__all__ = ["StepMask"]


@register_policy("mask")
@dataclass(frozen=True)
class StepMask:
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

    @property
    def probe_blocks(self) -> int:
        """Blocks that always run (none: the decision needs no probe)."""
        return 0

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step`; `num_steps` and `run_length` are ignored."""
        if step >= len(self.mask) or self.mask[step]:
            return Decision.COMPUTE
        return Decision.FORECAST

    def observe(self, ctx: ContextState, probe: Tensor) -> None:
        """Never called: the mask probes nothing."""
