"""Per-transformer cache state: contexts (one per guidance branch), their sites and counters.

A `CacheSession` belongs to one hooked transformer. Every transformer call opens a step in one
`ContextState`: the pipeline's `cache_context` name when it sets one, otherwise the order of the
calls within one timestep (first call ``branch0``, second ``branch1``). State resets when a new
generation starts (the scheduler's schedule is set anew, the calling pipeline's scheduler is
another one, or the timestep jumps back up), and after a call that raised. The generation state
is kept per thread (`forecache.accel.runs`): concurrent generations on one transformer each have
their own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from forecache.accel._compile import compiler_disable
from forecache.accel.clock import ScheduleClock
from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import Guard, Memo
from forecache.accel.policies import Decision
from forecache.accel.runs import Run, SharedSchedule, ThreadRuns
from forecache.accel.sites import FeatureCache, Placeholder
from forecache.accel.stats import CacheStats, ContextStats

if TYPE_CHECKING:
    from forecache.accel.targets import Target

__all__ = ["CacheSession", "ContextState", "FeatureCache", "Placeholder"]


class ContextState:
    """State of one guidance branch within one generation.

    Attributes:
        config: The resolved configuration.
        stats: The branch's counters.
        step: The branch's step index (0-based; -1 before its first call).
        timestep: The current call's timestep on the host.
        decision: What the current call does.
        run_length: Forecast steps in a row so far.
        sites: The forecast histories by site name.
        placeholders: Zero outputs of skipped sub-modules by name.
        memo: Weights memoised for the current step, shared by every site.
        guard: The divergence guard (None when ``fallback_margin`` is None).
        target_state: What the target keeps per branch (e.g. the block stack's input).
        first_index: Where this context joined the loop (a second expert, an img2img start).
        group: The process group of the ranks holding shards of this sequence (diffusers' context
            parallelism), over which judging policies and the ``"recompute"`` fallback reduce so
            every rank decides alike; None without one.

    """

    def __init__(self, name: str, config: CacheConfig, target: Target, num_steps: int | None) -> None:
        self.config = config
        self.stats = ContextStats(name)
        self.step = -1
        self.timestep = 0.0
        self.decision = Decision.COMPUTE
        self.run_length = 0
        self.sites: dict[str, FeatureCache] = {}
        self.placeholders: dict[str, Placeholder] = {}
        self.memo: Memo = {}
        margin = config.fallback_margin
        self.guard = None if margin is None else Guard(margin, num_steps or 64)
        self.target_state = target.new_context_state()
        self.first_index = 0
        self.group: Any = None
        self._step_coordinate = config.forecaster.coordinate == "step"

    @property
    def x(self) -> float:
        """The forecaster's time coordinate of the current step."""
        return float(self.step) if self._step_coordinate else self.timestep

    def site(self, key: str) -> FeatureCache:
        """Return the history of site `key`, created on first use."""
        cache = self.sites.get(key)
        if cache is None:
            cache = self.sites[key] = FeatureCache(self, key)
        return cache

    def settle(self) -> None:
        """Read the device-side refusal counters into `stats.fallbacks` (one host read)."""
        if self.guard is not None:
            refused = self.guard.refused_steps()
            if refused is not None:
                self.stats.fallbacks = int(refused)

    def release(self) -> None:
        """Drop every tensor held (histories, placeholders, target state); keep the counters."""
        self.settle()
        self.sites.clear()
        self.placeholders.clear()
        self.memo.clear()
        self.guard = None
        self.target_state = None


class CacheSession:
    """All cache state of one hooked transformer.

    Args:
        config: The resolved configuration.
        target: The target object (what is cached, its hooks).
        units_per_block: Cached units of each block in execution order (1 per block, or the
            number of cached sub-modules for the ``"modules"`` target).
        num_inference_steps: Steps per generation when known up front (bare transformers).

    """

    def __init__(
        self, config: CacheConfig, target: Target, units_per_block: list[int], num_inference_steps: int | None
    ) -> None:
        self.config = config
        self.target = target
        self.policy = config.policy
        self.units_per_block = units_per_block
        self.units_per_step = sum(units_per_block)
        self.units_at_forecast = target.forecast_units(units_per_block, config.policy.probe_blocks)
        self.num_blocks = len(units_per_block)
        self.probe_blocks = config.policy.probe_blocks
        # a policy that judges steps sees the stack's input at every step: its probe blocks' output,
        # or (no probe blocks, ``observes_stack``) what the embeddings hand the first block
        self.observes = bool(self.probe_blocks) or bool(getattr(config.policy, "observes_stack", False))
        self.num_inference_steps = num_inference_steps
        #: returns the scheduler of the pipeline making the call (set by `forecache.apply`), or None
        self.scheduler_source: Callable[[], Any] | None = None
        self.siblings: list[CacheSession] = []  # other experts of the same pipeline (Wan 2.2)
        self.siblings_schedule = SharedSchedule()  # shared with the siblings: the last schedule seen
        self.undo: list[Callable[[], None]] = []  # restores blocks whose compile was moved inside
        self.check_compiled: Callable[[], None] | None = None  # moves compiles done after `apply`
        self.runs = ThreadRuns()
        #: the process group of the ranks sharing this model's sequence (context parallelism), or None
        self.parallel_group: Callable[[], Any] = lambda: None

    # ------------------------------------------------------------------ the calling thread's run

    @property
    def run(self) -> Run:
        """The calling thread's generation state."""
        return self.runs.get()

    @property
    def clock(self) -> ScheduleClock | None:
        """The calling thread's scheduler clock (following the default scheduler until a call says)."""
        run = self.runs.get()
        if run.clock is None and self.scheduler_source is not None:
            run.follow(self.scheduler_source())
        return run.clock

    @clock.setter
    def clock(self, clock: ScheduleClock | None) -> None:
        run = self.runs.get()
        run.clock, run.clock_for = clock, None

    @property
    def contexts(self) -> dict[str, ContextState]:
        """The calling thread's contexts (guidance branches) of the current or last generation."""
        return self.runs.get().contexts

    @property
    def current(self) -> ContextState | None:
        """The context of the calling thread's call in progress (None between calls)."""
        return self.runs.get().current

    @compiler_disable
    def enter(self) -> None:
        """At a call's start: follow the scheduler of the calling pipeline (another one: a new generation)."""
        if self.scheduler_source is not None and self.runs.get().follow(self.scheduler_source()):
            self.reset()

    @property
    def unit(self) -> str:
        """What a unit is: ``"module"`` or ``"block"`` (the target says)."""
        return self.target.unit

    def reset(self) -> None:
        """Forget every context of the calling thread: histories, counters and the branch order."""
        run = self.runs.get()
        run.contexts = {}
        run.current = None
        run.last_timestep = None
        run.branch = 0
        run.ended = False

    def release(self) -> None:
        """End the calling thread's generation: free every tensor, keep the counters until the next one."""
        run = self.runs.get()
        if run.clock is not None:
            run.clock.verify()
        for ctx in run.contexts.values():
            ctx.release()
        run.current = None
        run.ended = True

    def stats(self) -> CacheStats:
        """Statistics of the current or last generation (reads the refusal counters: one sync).

        The calling thread's, or, in a thread that never ran this transformer, the generation that
        started last in any thread.
        """
        contexts = self.runs.for_stats().contexts
        for ctx in contexts.values():
            ctx.settle()
        return CacheStats(unit=self.unit, contexts=dict((n, c.stats) for n, c in contexts.items()))

    def _new_generation(self, run: Run) -> bool:
        """Whether this call starts a generation: the schedule was set anew, or the last one ended."""
        clock = run.clock
        if clock is not None:
            clock.follow()
            if clock.lost_trust:  # the times read from now on are the calls' own: watch them afresh
                clock.lost_trust = False
                run.watch.reset()
                return True
            if clock.generation != run.generation:
                run.generation = clock.generation
                shared = self.siblings_schedule
                if self.siblings and clock.schedule is not shared.schedule:
                    # the first expert to see this schedule: a new pipeline call, every expert starts over
                    shared.schedule = clock.schedule
                    for sibling in self.siblings:
                        sibling.reset()
                return True
        return run.ended

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
        run = self.runs.get()
        if self._new_generation(run):
            self.reset()
            self.runs.latest = run
        run.started = True
        if context_name is None:
            if run.last_timestep is not None and timestep == run.last_timestep:
                run.branch += 1
            else:
                if run.last_timestep is not None and timestep > run.last_timestep:
                    self.reset()
                run.branch = 0
            context_name = f"branch{run.branch}"
        else:
            known = run.contexts.get(context_name)
            if known is not None and known.step >= 0 and timestep > known.timestep:
                self.reset()
        run.last_timestep = timestep
        num_steps = context_steps or self.num_inference_steps
        if num_steps is None and run.clock is not None:
            num_steps = run.clock.num_steps()
        ctx = run.contexts.get(context_name)
        if ctx is None:
            ctx = run.contexts[context_name] = ContextState(context_name, self.config, self.target, num_steps)
            ctx.group = self.parallel_group()
            # where this context joined the loop (a second expert, an img2img start), counted in the
            # frame of the step count used below: the pipeline's loop if it tells, else the scheduler's
            if context_steps is not None:
                ctx.first_index = context_index or 0
            elif run.clock is not None:
                ctx.first_index = run.clock.index() or 0
        ctx.step += 1
        ctx.timestep = timestep
        ctx.memo.clear()
        if ctx.guard is not None:
            ctx.guard.slot = ctx.step
        if num_steps is not None:
            num_steps = max(num_steps - ctx.first_index, 1)  # the steps this context will see
        decision = self.policy.decide(ctx.step, num_steps, ctx.run_length)
        ctx.decision = Decision.COMPUTE if ctx.step == 0 else decision
        ctx.stats.total_units += self.units_per_step
        run.current = ctx
        self._watch(run, ctx, num_steps)
        return ctx

    def _watch(self, run: Run, ctx: ContextState, num_steps: int | None) -> None:
        """Warn once when calls keep starting fresh contexts though the policy would forecast."""

        def would_forecast(k: int) -> bool:
            return any(
                self.policy.decide(step, num_steps, 0) is not Decision.COMPUTE for step in range(1, k + 1)
            )

        schedule = run.clock.generation if isinstance(run.clock, ScheduleClock) else -1
        message = run.watch.observe(ctx.step, ctx.timestep, schedule, would_forecast)
        if message is not None:
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    @compiler_disable
    def end_call(self, ctx: ContextState) -> None:
        """Close the step: decisions, executed units (all, or what runs when forecast), run length, memory."""
        if ctx.decision is Decision.FORECAST:
            ctx.stats.decisions.append("F")
            ctx.stats.executed_units += self.units_at_forecast
            ctx.run_length += 1
        else:
            ctx.stats.decisions.append("C")
            ctx.stats.executed_units += self.units_per_step
            ctx.run_length = 0
            held = sum(site.nbytes for site in ctx.sites.values())
            ctx.stats.cache_bytes = max(ctx.stats.cache_bytes, held)
        self.runs.get().current = None

    @compiler_disable
    def forecasts_accepted(self, ctx: ContextState) -> bool:
        """Return False if any forecast of this step was not finite or left its site's computed range.

        Only with the ``"recompute"`` fallback: the step's refusal counters (filled by the guarded
        forecasts of `FeatureCache.predict`) are read here with one host synchronisation per
        forecast step (and, under context parallelism, one all-reduce over the ranks sharing the
        sequence, so all of them recompute alike); the caller then recomputes the step. With
        ``"reuse"`` the refused elements
        already hold their last computed values, and the counters are read once, at the end.
        """
        if self.config.fallback == "reuse" or ctx.guard is None:
            return True
        return not ctx.guard.refused_now(ctx.group)

    @compiler_disable
    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first non-probe block: let a judging policy settle the step, then the target.

        Args:
            ctx: The current context.
            streams: The block's input streams ``[hidden, encoder?]``; ``streams[0]`` is the probe
                blocks' output.

        Raises:
            ValueError: If a probing policy gets no image stream to judge.

        """
        if self.observes:
            if streams[0] is None:
                raise ValueError(
                    "forecache: the first non-probe block received no hidden_states; cannot gate"
                )
            self.policy.observe(ctx, streams[0])
        self.target.enter_stack(ctx, streams)
