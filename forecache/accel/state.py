"""Per-transformer cache state: contexts (one per guidance branch), their histories and counters.

A `CacheSession` belongs to one hooked transformer. Every transformer call opens a step in one
`ContextState`: the pipeline's `cache_context` name when it sets one, otherwise the order of the
calls within one timestep (first call ``branch0``, second ``branch1``). State resets when a
wrapped pipeline call starts, when the timestep jumps back up (a new trajectory) and after a call
that raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from forecache.accel._compile import compiler_disable
from forecache.accel.clock import ScheduleClock
from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import History, make_history
from forecache.accel.policies import ConfidenceGate, Decision
from forecache.accel.stats import CacheStats, ContextStats
from forecache.accel.tree import TreeSpec, flatten, unflatten
from forecache.kernels import relative_l1

__all__ = ["CacheSession", "ContextState", "FeatureCache", "Placeholder"]


def gate_error(forecast: torch.Tensor, actual: torch.Tensor, reduce_across_ranks: bool) -> float:
    """Return the largest per-sample relative L1 error ``sum|f - a| / sum|a|`` over the batch.

    With `reduce_across_ranks` and an initialised `torch.distributed`, both sums are all-reduced
    over the default group first (shards of one sequence), so all ranks get the same value.
    """
    if not (reduce_across_ranks and torch.distributed.is_available() and torch.distributed.is_initialized()):
        return float(relative_l1(forecast, actual, per_sample=True).max())
    sums = torch.stack(
        [(forecast - actual).abs().flatten(1).float().sum(1), actual.abs().flatten(1).float().sum(1)]
    )
    torch.distributed.all_reduce(sums)
    return float((sums[0] / sums[1]).max())


class FeatureCache:
    """The forecast history of one cached site: one `History` per tensor of its output."""

    def __init__(
        self, config: CacheConfig, where: str, refusals: Callable[[torch.device], torch.Tensor]
    ) -> None:
        self._config = config
        self._where = where
        self._refusals = refusals
        self._spec: TreeSpec = None
        self._histories: list[History] = []
        self._limits: list[torch.Tensor] = []  # margin x the largest magnitude computed, per tensor

    def update(self, value: Any, x: float) -> None:
        """Record the site's output `value` computed at coordinate `x`."""
        leaves, spec = flatten(value, self._where)
        if spec != self._spec or len(leaves) != len(self._histories):
            self._spec = spec
            self._histories = [
                make_history(self._config.forecaster, self._config.storage_dtype) for _ in leaves
            ]
            self._limits = []
        for history, leaf in zip(self._histories, leaves, strict=True):
            history.update(leaf.detach(), x)
        margin = self._config.fallback_margin
        if margin is not None:
            limits = [_peak(leaf.detach()) * margin for leaf in leaves]
            if self._limits:
                limits = [torch.maximum(old, new) for old, new in zip(self._limits, limits, strict=True)]
            self._limits = limits

    def predict(self, x: float) -> Any:
        """Return the forecast of the site's output at coordinate `x`, structured like the output.

        With a fallback margin, the forecast is guarded in the same fused pass: an element that is
        not finite or exceeds the margin times the largest magnitude the site had at the computed
        steps takes its last computed value and is counted on the device (the context's step
        counter; see `ContextState.refusals`).
        """
        if self._config.fallback_margin is None:
            forecasts = [history.predict(x) for history in self._histories]
        else:
            forecasts = [
                history.predict(x, (limit, self._refusals(limit.device)))
                for history, limit in zip(self._histories, self._limits, strict=True)
            ]
        return unflatten(self._spec, forecasts)

    @property
    def nbytes(self) -> int:
        """Bytes held by this site's histories."""
        return sum(history.nbytes for history in self._histories)


def _peak(value: torch.Tensor) -> torch.Tensor:
    """Largest magnitude of `value` as a float32 scalar on its device (one reduction, no temporary)."""
    return torch.linalg.vector_norm(value, float("inf"), dtype=torch.float32)


class Placeholder:
    """Zeros shaped like a skipped module's last output, without allocating (expanded scalars)."""

    def __init__(self, value: Any, where: str) -> None:
        leaves, self._spec = flatten(value, where)
        self._leaves = [(leaf.shape, leaf.dtype, leaf.device) for leaf in leaves]

    def build(self) -> Any:
        """Return the zero placeholder."""
        zeros = [
            torch.zeros((), dtype=dtype, device=device).expand(shape) for shape, dtype, device in self._leaves
        ]
        return unflatten(self._spec, zeros)


class ContextState:
    """State of one guidance branch within one generation."""

    def __init__(self, name: str, config: CacheConfig) -> None:
        self.config = config
        self.stats = ContextStats(name)
        self.step = -1
        self.timestep = 0.0
        self.decision = Decision.COMPUTE
        self.run_length = 0
        self.sites: dict[str, FeatureCache] = {}
        self.placeholders: dict[str, Placeholder] = {}
        self.templates: dict[int, Any] = {}
        self.stack_input: list[torch.Tensor | None] = []
        self.step_refusals: dict[torch.device, torch.Tensor] = {}
        self.pending_fallbacks: torch.Tensor | None = None
        self.first_index = 0

    @property
    def x(self) -> float:
        """The forecaster's time coordinate of the current step."""
        return float(self.step) if self.config.forecaster.coordinate == "step" else self.timestep

    def site(self, key: str) -> FeatureCache:
        """Return the history of site `key`, created on first use."""
        cache = self.sites.get(key)
        if cache is None:
            cache = self.sites[key] = FeatureCache(self.config, key, self.refusals)
        return cache

    def refusals(self, device: torch.device) -> torch.Tensor:
        """Return the int32 counter of elements refused this step on `device` (created on first use)."""
        counter = self.step_refusals.get(device)
        if counter is None:
            counter = self.step_refusals[device] = torch.zeros((), dtype=torch.int32, device=device)
        return counter

    def refused_step(self) -> torch.Tensor | None:
        """Return a device-side 0/1: whether this step refused any element (None: nothing guarded)."""
        counters = list(self.step_refusals.values())
        self.step_refusals = {}
        if not counters:
            return None
        if len(counters) > 1:  # a model split over devices: gather without a host read
            counters = [torch.stack([c.to(counters[0].device, non_blocking=True) for c in counters]).sum()]
        return (counters[0] > 0).to(torch.int64)

    def count_refused(self) -> None:
        """Add this forecast step to the device-side fallback count if it refused anything (no sync)."""
        refused = self.refused_step()
        if refused is not None:
            pending = self.pending_fallbacks
            self.pending_fallbacks = refused if pending is None else pending + refused

    def settle(self) -> None:
        """Fold the device-side fallback count into `stats.fallbacks` (one host read, if any pending)."""
        if self.pending_fallbacks is not None:
            self.stats.fallbacks += int(self.pending_fallbacks)
            self.pending_fallbacks = None

    def release(self) -> None:
        """Drop every tensor held (histories, templates, inputs); keep the counters."""
        self.settle()
        self.sites.clear()
        self.placeholders.clear()
        self.templates.clear()
        self.stack_input = []
        self.step_refusals = {}


class CacheSession:
    """All cache state of one hooked transformer.

    Args:
        config: The resolved configuration.
        units_per_block: Cached units of each block in execution order (1 per block, or the
            number of cached sub-modules for the ``"modules"`` target).
        num_inference_steps: Steps per generation when known up front (bare transformers).

    """

    def __init__(
        self, config: CacheConfig, units_per_block: list[int], num_inference_steps: int | None
    ) -> None:
        self.config = config
        self.units_per_block = units_per_block
        self.units_per_step = sum(units_per_block)
        self.num_blocks = len(units_per_block)
        self.probe_blocks = config.policy.probe_blocks
        self.num_inference_steps = num_inference_steps
        self.clock: ScheduleClock | None = None
        self.undo: list[Callable[[], None]] = []  # restores blocks whose compile was moved inside
        self.check_compiled: Callable[[], None] | None = None  # moves compiles done after `apply`
        self.contexts: dict[str, ContextState] = {}
        self.current: ContextState | None = None
        self._last_timestep: float | None = None
        self._branch = 0
        self._ended = False

    @property
    def unit(self) -> str:
        """What a unit is: ``"module"`` for the modules target, else ``"block"``."""
        return "module" if self.config.target == "modules" else "block"

    def reset(self) -> None:
        """Forget every context: histories, counters and the step clock."""
        if self.clock is not None:
            self.clock.verify()
        self.contexts = {}
        self.current = None
        self._last_timestep = None
        self._branch = 0
        self._ended = False

    def release(self) -> None:
        """End the generation: free every tensor, keep the counters until the next call starts."""
        if self.clock is not None:
            self.clock.verify()
        for ctx in self.contexts.values():
            ctx.release()
        self.current = None
        self._ended = True

    def stats(self) -> CacheStats:
        """Statistics of the current or last generation (reads pending fallback counts: one sync)."""
        for ctx in self.contexts.values():
            ctx.settle()
        return CacheStats(unit=self.unit, contexts=dict((n, c.stats) for n, c in self.contexts.items()))

    @compiler_disable
    def begin_call(
        self,
        timestep: float,
        context_name: str | None,
        context_steps: int | None,
        context_index: int | None = None,
    ) -> ContextState:
        """Open the step of one transformer call and decide what it does.

        Args:
            timestep: The call's timestep on the host.
            context_name: The pipeline's `cache_context` name, None without one.
            context_steps: The context's `num_inference_steps` (the pipeline's loop length), if set.
            context_index: The context's `step_index` (the loop index), if set.

        """
        if self._ended or (self.clock is not None and self.clock.lost_trust):
            if self.clock is not None:
                self.clock.lost_trust = False
            self.reset()
        if context_name is None:
            if self._last_timestep is not None and timestep == self._last_timestep:
                self._branch += 1
            else:
                if self._last_timestep is not None and timestep > self._last_timestep:
                    self.reset()
                self._branch = 0
            context_name = f"branch{self._branch}"
        else:
            known = self.contexts.get(context_name)
            if known is not None and known.step >= 0 and timestep > known.timestep:
                self.reset()
        self._last_timestep = timestep
        ctx = self.contexts.get(context_name)
        if ctx is None:
            ctx = self.contexts[context_name] = ContextState(context_name, self.config)
            # where this context joined the loop (a second expert, an img2img start), counted in the
            # frame of the step count used below: the pipeline's loop if it tells, else the scheduler's
            if context_steps is not None:
                ctx.first_index = context_index or 0
            elif self.clock is not None:
                ctx.first_index = self.clock.index() or 0
        ctx.step += 1
        ctx.timestep = timestep
        ctx.step_refusals = {}
        num_steps = context_steps or self.num_inference_steps
        if num_steps is None and self.clock is not None:
            num_steps = self.clock.num_steps()
        if num_steps is not None:
            num_steps = max(num_steps - ctx.first_index, 1)  # the steps this context will see
        decision = self.config.policy.decide(ctx.step, num_steps, ctx.run_length)
        if ctx.step == 0:
            decision = Decision.COMPUTE
        ctx.decision = decision
        ctx.stats.total_units += self.units_per_step
        self.current = ctx
        return ctx

    @compiler_disable
    def end_call(self, ctx: ContextState) -> None:
        """Close the step: counters, run length and peak cache memory."""
        if ctx.decision is Decision.FORECAST:
            ctx.count_refused()
            ctx.stats.decisions.append("F")
            ctx.run_length += 1
        else:
            ctx.stats.decisions.append("C")
            ctx.run_length = 0
            held = sum(site.nbytes for site in ctx.sites.values())
            ctx.stats.cache_bytes = max(ctx.stats.cache_bytes, held)
        self.current = None

    @compiler_disable
    def forecasts_accepted(self, ctx: ContextState) -> bool:
        """Return False if any forecast of this step was not finite or left its site's computed range.

        Only with the ``"recompute"`` fallback: the step's refusal counters (filled by the guarded
        forecasts of `FeatureCache.predict`) are read here with one host synchronisation per
        forecast step; the caller then recomputes the step. With ``"reuse"`` the refused elements
        already hold their last computed values, and `end_call` counts the step on the device.
        """
        if self.config.fallback == "reuse":
            return True
        refused = ctx.refused_step()
        return refused is None or not bool(refused)

    @compiler_disable
    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first non-probe block: run the gate, feed the probe history, keep the stack input.

        Args:
            ctx: The current context.
            streams: The block's input streams ``[hidden, encoder?]``; ``streams[0]`` is the probe
                blocks' output.

        """
        policy = self.config.policy
        if isinstance(policy, ConfidenceGate):
            if streams[0] is None:
                raise ValueError(
                    "forecache: the first non-probe block received no hidden_states; cannot gate"
                )
            probe = ctx.site("probe")
            if ctx.decision is Decision.PROBE:
                forecast = probe.predict(ctx.x)
                error = gate_error(forecast, streams[0].detach(), policy.reduce_across_ranks)
                ctx.stats.gate_errors.append((ctx.step, error))
                ctx.decision = Decision.FORECAST if policy.accept(error) else Decision.COMPUTE
            if ctx.decision is Decision.COMPUTE:
                probe.update(streams[0], ctx.x)
        if ctx.decision is Decision.COMPUTE and self.config.target == "blocks":
            ctx.stack_input = [None if s is None else s.detach().clone() for s in streams]

    def update_residual(self, ctx: ContextState, outputs: list[torch.Tensor | None]) -> None:
        """At the last block of a computed step: record the stack's residual per stream."""
        for i, (out, inp) in enumerate(zip(outputs, ctx.stack_input, strict=False)):
            if out is not None and inp is not None:
                ctx.site(f"residual.{i}").update(out - inp, ctx.x)
        ctx.stack_input = []

    def forecast_residual(
        self, ctx: ContextState, streams: list[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        """At the last block of a forecast step: input streams plus the forecast residuals."""
        result: list[torch.Tensor | None] = []
        for i, stream in enumerate(streams):
            site = ctx.sites.get(f"residual.{i}")
            result.append(stream if stream is None or site is None else stream + site.predict(ctx.x))
        return result
