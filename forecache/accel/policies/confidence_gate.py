"""Forecast only when the probe blocks' own forecast is accurate (CG-Taylor)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from forecache.accel._checks import check_float, check_instance, check_int
from forecache.accel.policies.base import Decision, Policy, in_cooldown, register_policy

__all__ = ["ConfidenceGate"]


@register_policy("gate")
@dataclass(frozen=True)
class ConfidenceGate(Policy):
    """Forecast only when the probe blocks' own forecast is accurate (CG-Taylor).

    At every step that is not forced, the first `probe_blocks` blocks run; their output is
    compared with its forecast from the same history as the rest. If the relative L1 error
    ``mean|forecast - actual| / mean|actual|`` (the largest over the batch) is under `threshold`
    the remaining blocks are forecast, otherwise they run.

    Speed/quality: each probe block costs ``1 / blocks`` of the model at every step, forecast
    steps included, and the cap forces a computed step after `max_consecutive` forecasts. Where the
    probe errors stay small, every threshold above them accepts every probe and the cap alone
    decides (measured: BENCHMARKS.md, "Forecasters and probing policies"). `Verify` sums the
    errors over a run instead of capping it, and can check the stack's input at no block cost.

    Args:
        threshold: Relative L1 error in (0, 10] under which the rest is forecast. Default 0.1.
            Larger is faster and lossier.
        max_consecutive: Cap on forecast steps in a row (>= 1). Default 4.
        warmup: Leading steps always computed (>= 1). Default 2.
        cooldown: Trailing steps always computed (>= 1: the last step always runs). Default 1.
        probe_blocks: Blocks that always run and feed the gate (>= 1). Default 1. Each probe
            block costs its full compute at every step.
        reduce_across_ranks: All-reduce the error's sums over the default `torch.distributed`
            group, for a sequence sharded across all ranks by other means than diffusers. Under
            diffusers' context parallelism (``enable_parallelism``) the error is reduced over the
            context-parallel ranks by itself, whatever this says, and never over data-parallel
            replicas. Default False. Reducing costs one small all-reduce per probed step, and every
            rank of the group must call the transformer in lockstep.

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
        """Decide step `step` given `run_length` forecasts in a row so far; PROBE defers to `judge`."""
        if (
            step < self.warmup
            or in_cooldown(step, num_steps, self.cooldown)
            or run_length >= self.max_consecutive
        ):
            return Decision.COMPUTE
        return Decision.PROBE

    def judge(self, error: float, run: Sequence[float]) -> Decision:
        """Forecast the rest when this step's probe error is under the threshold (NaN never is)."""
        return Decision.FORECAST if math.isfinite(error) and error < self.threshold else Decision.COMPUTE
