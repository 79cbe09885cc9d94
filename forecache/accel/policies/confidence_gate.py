"""Forecast only when the probe blocks' own forecast is accurate (CG-Taylor)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from forecache.accel._checks import check_float, check_instance, check_int
from forecache.accel.policies.base import Decision, in_cooldown, register_policy
from forecache.kernels import relative_l1

if TYPE_CHECKING:
    from forecache.accel.state import ContextState

__all__ = ["ConfidenceGate", "gate_error", "judging_group"]

PROBE_SITE = "probe"


def judging_group(ctx: ContextState, reduce_across_ranks: bool) -> Any:
    """Return the process group a judging policy reduces its error over, or None to judge alone.

    The ranks that hold shards of one sequence under diffusers' context parallelism (the model's
    context-parallel mesh, found by forecache itself); else, with `reduce_across_ranks` and an
    initialised `torch.distributed`, every rank of the default group. Data-parallel replicas
    (ranks each with a whole sequence of their own) are never reduced over: each decides alone.
    """
    if ctx.group is not None:
        return ctx.group
    if reduce_across_ranks and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.group.WORLD
    return None


def gate_error(forecast: Tensor, actual: Tensor, group: Any = None) -> float:
    """Return the largest per-sample relative L1 error ``sum|f - a| / sum|a|`` over the batch.

    With a `group` (see `judging_group`), both sums are all-reduced over it first (shards of one
    sequence), so all its ranks get the same value. One host read per call.
    """
    if group is None:
        return float(relative_l1(forecast, actual, per_sample=True).max())
    sums = torch.stack(
        [(forecast - actual).abs().flatten(1).float().sum(1), actual.abs().flatten(1).float().sum(1)]
    )
    torch.distributed.all_reduce(sums, group=group)
    return float((sums[0] / sums[1]).max())


@register_policy("gate")
@dataclass(frozen=True)
class ConfidenceGate:
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
        """Decide step `step` given `run_length` forecasts in a row so far; PROBE defers to `observe`."""
        if (
            step < self.warmup
            or in_cooldown(step, num_steps, self.cooldown)
            or run_length >= self.max_consecutive
        ):
            return Decision.COMPUTE
        return Decision.PROBE

    def accept(self, error: float) -> bool:
        """Return True if a probe error allows forecasting the rest (NaN never does)."""
        return math.isfinite(error) and error < self.threshold

    def observe(self, ctx: ContextState, probe: Tensor) -> None:
        """Judge a probed step by the probe's forecast error; record the probe output at computed steps."""
        site = ctx.site(PROBE_SITE)
        if ctx.decision is Decision.PROBE:
            forecast = site.predict(ctx.x, guarded=False)  # a measurement, not an output
            error = gate_error(forecast, probe.detach(), judging_group(ctx, self.reduce_across_ranks))
            ctx.stats.gate_errors.append((ctx.step, error))
            ctx.decision = Decision.FORECAST if self.accept(error) else Decision.COMPUTE
        if ctx.decision is Decision.COMPUTE:
            site.update(probe, ctx.x)
