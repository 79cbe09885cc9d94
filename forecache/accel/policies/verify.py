"""Forecast, verify cheaply, accept or compute (in the spirit of SpeCa, arXiv:2509.11628)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from forecache.accel._checks import check_float, check_instance, check_int
from forecache.accel.policies.base import Decision, Policy, in_cooldown, register_policy

__all__ = ["Verify"]


@register_policy("verify")
@dataclass(frozen=True)
class Verify(Policy):
    """Speculate the forecast, verify it cheaply, accept it or compute the step (after SpeCa).

    SpeCa (Liu et al., arXiv:2509.11628) forecasts features with TaylorSeer and checks each
    speculated step with a cheap error measure before accepting it, falling back to a full step
    when the check fails. Here the check is the forecast error of what the first cached block
    receives: with ``probe_blocks >= 1`` the output of the probe blocks, which run at every step
    (and are counted in the compute ratio like any block); with ``probe_blocks = 0`` the input
    of the block stack itself, which the model's embeddings produce anyway, so the check costs
    no block: one forecast and one relative-L1 reduction of that input per step, and one host
    read. The input (or probe output) is recorded at computed steps and forecast with the cache's
    own forecaster; the error is ``sum|forecast - actual| / sum|actual|`` (the largest over the
    batch). With `accumulate` the errors of the current run are summed, so a run whose steps are
    each a little off stops, where `ConfidenceGate` judges each step alone and needs a cap.

    Speed/quality: with ``probe_blocks = 0`` it places the computed steps where the forecast
    drifts, at the cost of one forecast and one reduction of the stack's input per step (against
    fixed intervals at the same ratio: BENCHMARKS.md, "Forecasters and probing policies"). A probe
    block costs ``1 / blocks`` of the model at every step (1/6 on the digit models, 1/57 on
    FLUX.1-dev), so with probes the ratio cannot pass ``blocks / probe_blocks``, and on shallow
    models a fixed schedule of the same cost computes more steps and wins. Lower `threshold` is
    slower and closer to full compute; 0 never forecasts (bitwise full compute).

    Args:
        threshold: Largest accepted error, >= 0: the summed errors of the run (`accumulate`) or
            each step's. Its scale depends on what is checked: 0.01-0.1 for the stack input
            (``probe_blocks = 0``), 0.1-0.5 for a probe block's output. Default 0.2.
        accumulate: Sum the errors over the current run of forecasts. Default True.
        max_consecutive: Cap on forecasts in a row; 0 for none (the gate's cap, which is >= 1).
            Default 0. Config files may still call it ``max_run``, its former name.
        warmup: Leading steps always computed (>= 1). Default 2.
        cooldown: Trailing steps always computed (>= 1: the last step always runs). Default 1.
        probe_blocks: Blocks that always run and are checked (>= 0; 0 checks the stack input).
            Default 1.
        reduce_across_ranks: All-reduce the error's sums over the default `torch.distributed`
            group (a sequence sharded across all ranks by other means than diffusers). Under
            diffusers' context parallelism the error is reduced over the context-parallel ranks by
            itself. Default False.

    """

    threshold: float = 0.2
    accumulate: bool = True
    max_consecutive: int = 0
    warmup: int = 2
    cooldown: int = 1
    probe_blocks: int = 1
    reduce_across_ranks: bool = False

    def __post_init__(self) -> None:
        check_instance("Verify", "accumulate", self.accumulate, (bool,))
        check_instance("Verify", "reduce_across_ranks", self.reduce_across_ranks, (bool,))
        if self.threshold != 0:
            check_float("Verify", "threshold", self.threshold, 0.0, 10.0)
        check_int("Verify", "max_consecutive", self.max_consecutive, 0)
        check_int("Verify", "warmup", self.warmup, 1)
        check_int("Verify", "cooldown", self.cooldown, 1)
        check_int("Verify", "probe_blocks", self.probe_blocks, 0)

    @property
    def observes_stack(self) -> bool:
        """Whether `judge` sees the stack input at every step (no block probes)."""
        return self.probe_blocks == 0

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Compute forced steps (warm-up, cool-down, the cap, threshold 0); verify the others."""
        forced = (
            step < self.warmup
            or in_cooldown(step, num_steps, self.cooldown)
            or (self.max_consecutive > 0 and run_length >= self.max_consecutive)
            or self.threshold == 0
        )
        return Decision.COMPUTE if forced else Decision.PROBE

    def judge(self, error: float, run: Sequence[float]) -> Decision:
        """Forecast when the error (with `accumulate`, plus those of the run so far) is under the threshold.

        Args:
            error: This step's error (``stats().gate_errors`` records it).
            run: The errors of the steps forecast in the current run.

        """
        total = error + sum(run) if self.accumulate else error
        return Decision.FORECAST if math.isfinite(total) and total < self.threshold else Decision.COMPUTE
