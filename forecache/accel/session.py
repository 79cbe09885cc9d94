"""One hooked transformer's cache: the `CacheSession` that attaches its hooks, runs the steps, undoes it.

A `CacheSession` is built whole by its constructor: it lays out the blocks, lets the configured
target plan and register its hooks, puts the `RootHook` on the transformer and moves block
compiles under the hooks; `close` undoes exactly that. Every transformer call opens a step in one
`ContextState`: the pipeline's `cache_context` name when it sets one, otherwise the order of the
calls within one timestep (first call ``branch0``, second ``branch1``). State resets when a new
generation starts (the scheduler's schedule is set anew, the calling pipeline's scheduler is
another one, or the timestep jumps back up), and after a call that raised. The generation state
is kept per thread (`forecache.accel.runs`): concurrent generations on one transformer each have
their own. Where a policy probes, the session has the probe's forecast error measured once per
step and handed to the policy, which returns the step's decision (`forecache.accel.probe`).
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel._compile import compiler_disable, move_compile_inside
from forecache.accel._private import (
    compiled_call,
    context_parallel_group,
    context_receiver,
    invalidate_child_registries,
    mark_stateful,
    read_cache_context,
)
from forecache.accel.clock import ScheduleClock, host_timestep
from forecache.accel.config import CacheConfig
from forecache.accel.context import ContextState
from forecache.accel.layout import ModelLayout, TimeArgument, time_argument
from forecache.accel.policies import Decision
from forecache.accel.probe import judge_probe
from forecache.accel.runs import Run, ThreadRuns
from forecache.accel.stats import CacheStats
from forecache.accel.streams import ArgReader
from forecache.accel.targets import TARGETS, blocks_of

__all__ = ["ROOT_HOOK", "CacheSession", "Experts", "RootHook", "session_of"]

ROOT_HOOK = "forecache_root"
_SESSION_ATTR = "_forecache_session"


def session_of(transformer: torch.nn.Module) -> CacheSession | None:
    """Return the cache session attached to `transformer`, or None."""
    return getattr(transformer, _SESSION_ATTR, None)


class Experts:
    """The sessions of one pipeline's transformers (Wan 2.2's two experts) and the last schedule they saw.

    The schedule is kept per thread: the first expert to see a new one (a new pipeline call) starts
    every expert over.
    """

    def __init__(self) -> None:
        self.sessions: list[CacheSession] = []
        self._local = threading.local()

    def new_schedule(self, schedule: Any) -> bool:
        """Record `schedule` for the calling thread; return whether it is new."""
        if getattr(self._local, "schedule", None) is schedule:
            return False
        self._local.schedule = schedule
        return True


class CacheSession:
    """All cache state of one hooked transformer, attached by the constructor and undone by `close`.

    The target named by ``config.target`` chooses and registers the block and sub-module hooks;
    nothing here depends on which target or policy it is.

    Args:
        transformer: The diffusers transformer (its blocks are found through `layout`).
        config: The resolved cache configuration.
        layout: Where the blocks and cached sub-modules are.
        num_inference_steps: Steps per generation if known up front (bare transformers: places
            the cool-down). Default None.
        scheduler_source: Returns the scheduler of the pipeline making the call (or the loop's
            scheduler), or None. Default None: the timesteps alone place the calls.
        experts: The sessions of the other transformers of the same pipeline, which this one
            joins. Default None: alone.

    Raises:
        RuntimeError: If forecache is already attached to `transformer`.
        ValueError: If the layout does not match the model, or the probe blocks leave nothing to cache.

    """

    def __init__(
        self,
        transformer: torch.nn.Module,
        config: CacheConfig,
        layout: ModelLayout,
        num_inference_steps: int | None = None,
        scheduler_source: Callable[[], Any] | None = None,
        experts: Experts | None = None,
    ) -> None:
        name = type(transformer).__name__
        if session_of(transformer) is not None:
            raise RuntimeError(
                f"forecache is already applied to this {name}; call forecache.remove(...) first"
            )
        blocks = blocks_of(transformer, layout)
        self.config = config
        self.policy = config.policy
        self.probe_blocks = config.policy.probe_blocks
        if self.probe_blocks >= len(blocks):
            raise ValueError(
                f"{type(config.policy).__name__}: `probe_blocks` must be < the {len(blocks)} blocks of "
                f"{name}, got {self.probe_blocks}"
            )
        self.target = TARGETS.get(config.target)()
        stack = len(blocks) - self.probe_blocks
        first, end = self.partial_blocks = config.policy.partial_span(stack)
        if end and not self.target.partial_steps:
            raise ValueError(
                f"{type(config.policy).__name__}: partial steps need a target that runs "
                f"part of the block stack: ['blocks'], got target={config.target!r}"
            )
        if end and (end > stack or end - first >= stack):
            raise ValueError(
                f"{type(config.policy).__name__}: `partial_blocks` must lie within the {stack} blocks of "
                f"{name}'s cached stack and leave one to run, got {(first, end)}"
            )
        self.units_per_block = self.target.plan(blocks, self.probe_blocks, name)
        self.units_per_step = sum(self.units_per_block)
        self.units_at_forecast = self.target.forecast_units(self.units_per_block, self.probe_blocks)
        self.units_at_partial = self.units_per_step - sum(
            self.units_per_block[self.probe_blocks + first : self.probe_blocks + end]
        )
        # a policy that judges steps sees the stack's input at every step: its probe blocks' output,
        # or (no probe blocks, ``observes_stack``) what the embeddings hand the first block
        self.observes = bool(self.probe_blocks) or config.policy.observes_stack
        self.num_inference_steps = num_inference_steps
        self.scheduler_source = scheduler_source
        self.experts = experts or Experts()
        self.runs = ThreadRuns()
        self._name = name
        self._model = weakref.ref(transformer)  # parallelism may be enabled after `apply`
        self._blocks = blocks
        self._hooks: list[tuple[torch.nn.Module, ModelHook, str]] = []
        self._undo: list[Callable[[], None]] = []
        try:
            self._register(transformer, RootHook(self, layout.timestep_arg), ROOT_HOOK)
            self.target.attach(self, blocks, self._register)
            invalidate_child_registries(HookRegistry.check_if_exists_or_initialize(transformer))
            self.check_compiled()
        except BaseException:
            self.close()
            raise
        self.experts.sessions.append(self)
        setattr(transformer, _SESSION_ATTR, self)

    def _register(self, module: torch.nn.Module, hook: ModelHook, name: str) -> None:
        """Attach `hook` to `module` under `name`, removably (the target's `Register`)."""
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)
        self._hooks.append((module, hook, name))

    def check_compiled(self) -> None:
        """Move `Module.compile()` of any hooked block (compiled before or since `apply`) under its hook."""
        on_block = {id(module): hook for module, hook, _ in self._hooks}
        for block in self._blocks:
            if compiled_call(block.module) is not None:
                restore = move_compile_inside(
                    block.module,
                    on_block.get(id(block.module)),
                    f"{self._name}.{block.name}",
                    self.target.allows_fullgraph,
                )
                if restore is not None:
                    self._undo.append(restore)

    def close(self) -> None:
        """Remove every hook, give compiled blocks back their compiled call: the model computes as before."""
        model = self._model()
        while self._hooks:
            module, _, name = self._hooks.pop()
            HookRegistry.check_if_exists_or_initialize(module).remove_hook(name, recurse=False)
        while self._undo:  # after the hooks are gone
            self._undo.pop()()
        if model is not None:
            invalidate_child_registries(HookRegistry.check_if_exists_or_initialize(model))
            if session_of(model) is self:
                delattr(model, _SESSION_ATTR)
        if self in self.experts.sessions:
            self.experts.sessions.remove(self)

    def parallel_group(self) -> Any:
        """Return the process group of the ranks sharing this model's sequence (context parallel), or None."""
        return context_parallel_group(self._model())

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
                others = [s for s in self.experts.sessions if s is not self]
                if others and self.experts.new_schedule(clock.schedule):
                    # the first expert to see this schedule: a new pipeline call, every expert starts over
                    for other in others:
                        other.reset()
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
            config = self.config
            ctx = run.contexts[context_name] = ContextState(
                context_name,
                config.forecaster,
                config.storage_dtype,
                config.fallback_margin,
                num_steps,
                self.target.new_context_state(),
                self.parallel_group(),
            )
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
        levels = None
        if num_steps is not None and isinstance(run.clock, ScheduleClock):
            levels = run.clock.levels(ctx.first_index, num_steps)
        if levels is not None:
            decision = self.policy.decide_on(ctx.step, levels, ctx.run_length)
        else:
            decision = self.policy.decide(ctx.step, num_steps, ctx.run_length)
        ctx.decision = Decision.COMPUTE if ctx.step == 0 else decision
        ctx.partial = (
            self.partial_blocks[1] > 0
            and ctx.step > 0
            and ctx.decision is Decision.COMPUTE
            and self.policy.is_partial(ctx.step, len(levels) if levels is not None else num_steps)
        )
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
        """Close the step: its decision, the units that ran, the run length, the memory held."""
        if ctx.decision is Decision.FORECAST:
            ctx.stats.decisions.append("F")
            ctx.stats.executed_units += self.units_at_forecast
            ctx.run_length += 1
        else:
            ctx.stats.decisions.append("P" if ctx.partial else "C")
            ctx.stats.executed_units += self.units_at_partial if ctx.partial else self.units_per_step
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
        ``"reuse"`` the refused elements already hold their last computed values, and the
        counters are read once, at the end.
        """
        if self.config.fallback == "reuse" or ctx.guard is None:
            return True
        return not ctx.guard.refused_now(ctx.group)

    @compiler_disable
    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first non-probe block: settle a probed step, then let the target see the stack's input.

        Args:
            ctx: The current context.
            streams: The block's input streams ``[hidden, encoder?]``; ``streams[0]`` is the probe
                blocks' output (or the stack's input, for a policy that observes it).

        Raises:
            ValueError: If a probing policy gets no image stream to judge.

        """
        if self.observes:
            if streams[0] is None:
                raise ValueError(
                    "forecache: the first non-probe block received no hidden_states; cannot gate"
                )
            judge_probe(ctx, self.policy, streams[0])
        self.target.enter_stack(ctx, streams)


@mark_stateful
class RootHook(ModelHook):
    """Opens every transformer call as a step of its `CacheSession` and hands it to the target."""

    def __init__(self, session: CacheSession, timestep_arg: str | tuple[str, ...] | TimeArgument) -> None:
        super().__init__()
        self.session = session
        self.time = time_argument(timestep_arg)
        self.receiver = context_receiver()  # diffusers' `cache_context` sets its context, per thread
        self._args: ArgReader | None = None

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        """Read the transformer's signature once."""
        self._args = ArgReader(type(module).forward)
        return module

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        """End the generation (diffusers pipelines call this through `maybe_free_model_hooks`).

        Frees the cached tensors but keeps the counters, so `forecache.stats` still reports the
        call that just finished; the next transformer call starts a fresh generation.
        """
        self.session.release()
        return module

    def _time(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Return the call's time: the first time argument passed, negated if it rises."""
        assert self._args is not None
        value = None
        for name in self.time.names:
            value = self._args.get(name, args, kwargs)
            if value is not None:
                break
        if value is None:
            names = " or ".join(f"`{name}`" for name in self.time.names)
            raise ValueError(f"forecache: the transformer was called without {names}; cannot place the step")
        return -value if self.time.rises else value

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run, or forecast, one transformer call."""
        session = self.session
        if getattr(module, "is_cache_enabled", False):
            raise RuntimeError(
                f"forecache is applied to this {type(module).__name__} and diffusers' own cache was enabled "
                "on it since (`enable_cache`); use one: `disable_cache()` or `forecache.remove(...)`"
            )
        name, steps, index = read_cache_context(self.receiver)
        session.enter()  # the calling pipeline's scheduler, in the calling thread's state
        timestep = host_timestep(self._time(args, kwargs), session.clock)
        ctx = session.begin_call(timestep, name, steps, index)
        if ctx.step == 0 and not torch.compiler.is_compiling():
            session.check_compiled()  # a block compiled since `apply` or the last generation

        def forward() -> Any:
            return self.fn_ref.original_forward(*args, **kwargs)

        try:
            output = session.target.run_call(ctx, forward)
            if ctx.decision is Decision.FORECAST and not session.forecasts_accepted(ctx):
                ctx.decision = Decision.COMPUTE  # the "recompute" fallback: the step runs instead
                output = session.target.run_call(ctx, forward)
        except BaseException:
            session.reset()
            raise
        session.end_call(ctx)
        return output
