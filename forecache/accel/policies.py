"""Policies: at which denoising steps the cached part of the transformer really runs.

A policy is a frozen spec with a pure decision function. `Interval` and `StepMask` decide before
the step starts; `ConfidenceGate` runs its probe blocks first and decides from the error of the
probe's forecast (CG-Taylor, "Forecasting When to Forecast").
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from forecache.accel._checks import check_float, check_instance, check_int

__all__ = ["ConfidenceGate", "Decision", "Interval", "PolicySpec", "StepMask"]


class Decision(enum.Enum):
    """What one transformer call does with the cached part."""

    COMPUTE = "compute"
    FORECAST = "forecast"
    PROBE = "probe"


def _in_cooldown(step: int, num_steps: int | None, cooldown: int) -> bool:
    return num_steps is not None and step >= num_steps - cooldown


@dataclass(frozen=True)
class Interval:
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

    @property
    def probe_blocks(self) -> int:
        """Blocks that always run (none: the decision needs no probe)."""
        return 0

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step` (0-based) of `num_steps` (None if unknown).

        `run_length` (forecasts in a row so far) is ignored by this policy.
        """
        if step < self.warmup or _in_cooldown(step, num_steps, self.cooldown):
            return Decision.COMPUTE
        return Decision.COMPUTE if (step - self.warmup) % self.every == 0 else Decision.FORECAST


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


@dataclass(frozen=True)
class ConfidenceGate:
    """Forecast only when the probe blocks' own forecast is accurate (CG-Taylor).

    At every step that is not forced, the first `probe_blocks` blocks run; their output is
    compared with its forecast from the same history as the rest. If the relative L1 error
    ``mean|forecast - actual| / mean|actual|`` (the largest over the batch) is under `threshold`
    the remaining blocks are forecast, otherwise they run.

    Args:
        threshold: Relative L1 error in (0, 10] under which the rest is forecast. Default 0.1.
            Larger is faster and lossier.
        max_consecutive: Cap on forecast steps in a row (>= 1). Default 4.
        warmup: Leading steps always computed (>= 1). Default 2.
        cooldown: Trailing steps always computed (>= 1: the last step always runs). Default 1.
        probe_blocks: Blocks that always run and feed the gate (>= 1). Default 1. Each probe
            block costs its full compute at every step.
        reduce_across_ranks: Under `torch.distributed` with context parallelism (one sequence
            sharded across ranks), all-reduce the error's sums over the default process group so
            every rank takes the same decision. Default False; when True every rank must call the
            transformer in lockstep, and the gate costs one small all-reduce per probed step.

    """

    threshold: float = 0.1
    max_consecutive: int = 4
    warmup: int = 2
    cooldown: int = 1
    probe_blocks: int = 1
    reduce_across_ranks: bool = False

    def __post_init__(self) -> None:
        check_instance("ConfidenceGate", "reduce_across_ranks", self.reduce_across_ranks, (bool,))
        check_float("ConfidenceGate", "threshold", self.threshold, 0.0, 10.0)
        check_int("ConfidenceGate", "max_consecutive", self.max_consecutive, 1)
        check_int("ConfidenceGate", "warmup", self.warmup, 1)
        check_int("ConfidenceGate", "cooldown", self.cooldown, 1)
        check_int("ConfidenceGate", "probe_blocks", self.probe_blocks, 1)

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step` given `run_length` forecasts in a row so far; PROBE defers to `accept`."""
        if (
            step < self.warmup
            or _in_cooldown(step, num_steps, self.cooldown)
            or run_length >= self.max_consecutive
        ):
            return Decision.COMPUTE
        return Decision.PROBE

    def accept(self, error: float) -> bool:
        """Return True if a probe error allows forecasting the rest (NaN never does)."""
        return math.isfinite(error) and error < self.threshold


PolicySpec = Interval | StepMask | ConfidenceGate
