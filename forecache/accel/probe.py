"""The probe of a judging policy: its forecast error, measured once per step by the engine and handed over.

A policy with probe blocks (or one that observes the stack's input) answers `Decision.PROBE`;
at the first block after the probes the engine forecasts what that block receives from the
history of earlier computed steps, measures the relative L1 error against what it really
receives, records it in ``stats().gate_errors`` and asks the policy's `judge` for the decision.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.accel.context import ContextState
from forecache.accel.policies import Decision, Policy
from forecache.kernels import relative_l1

__all__ = ["PROBE_SITE", "judge_probe", "probe_error"]

PROBE_SITE = "probe"


def probe_error(forecast: torch.Tensor, actual: torch.Tensor, group: Any = None) -> float:
    """Return the largest per-sample relative L1 error ``sum|f - a| / sum|a|`` over the batch.

    With a `group` (a `torch.distributed` process group whose ranks hold shards of one sequence),
    both sums are all-reduced over it first, so all its ranks get the same value. One host read.
    """
    if group is None:
        return float(relative_l1(forecast, actual, per_sample=True).max())
    sums = torch.stack(
        [(forecast - actual).abs().flatten(1).float().sum(1), actual.abs().flatten(1).float().sum(1)]
    )
    torch.distributed.all_reduce(sums, group=group)
    return float((sums[0] / sums[1]).max())


def _group(ctx: ContextState, policy: Policy) -> Any:
    """Return the ranks to reduce the error over (None: judge alone).

    The context's (diffusers' context parallelism), else every rank where the policy says
    ``reduce_across_ranks``; never data-parallel replicas.
    """
    if ctx.group is not None:
        return ctx.group
    if policy.reduce_across_ranks and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.group.WORLD
    return None


def judge_probe(ctx: ContextState, policy: Policy, probe: torch.Tensor) -> None:
    """Settle a probed step of `ctx` from `probe`'s forecast error; record `probe` at computed steps.

    Args:
        ctx: The current context; its decision is PROBE (settled here), COMPUTE or FORECAST.
        policy: The judging policy.
        probe: What the first block after the probes receives (the probe blocks' output, or the
            stack's input).

    """
    site = ctx.site(PROBE_SITE)
    if ctx.decision is Decision.PROBE:
        forecast = site.predict(ctx.x, guarded=False)  # a measurement, not an output
        error = probe_error(forecast, probe.detach(), _group(ctx, policy))
        errors = ctx.stats.gate_errors
        run = [e for _, e in errors[len(errors) - ctx.run_length :]] if ctx.run_length else []
        errors.append((ctx.step, error))
        ctx.decision = policy.judge(error, run)
    if ctx.decision is Decision.COMPUTE:
        site.update(probe, ctx.x)
