"""The diffusers `ModelHook`s that run, skip or forecast the transformer, its blocks and sub-modules.

Attached per instance through diffusers' `HookRegistry` (so they are removable and compose with
diffusers' own hooks), each with one role chosen at attach time by the target:

- `RootHook` on the transformer reads each call's timestep and cache context, opens the step in
  the `CacheSession` and hands the call to the target (the ``"output"`` target forecasts it all);
- `StackBlockHook` on the blocks after the probes where the target needs one: the first (the stack
  head) lets the policy and the target see the stack's input; at forecast steps its `BlockRole`
  decides what the block returns (executed units are counted per call, in `CacheSession.end_call`);
- `ModuleHook` on a cached sub-module returns its forecast; `SkipHook` on a sub-module that only
  feeds cached ones returns zeros.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.hooks import ModelHook

from forecache.accel._private import context_receiver, mark_stateful, read_cache_context
from forecache.accel.clock import host_timestep
from forecache.accel.layout import TimeArgument, time_argument
from forecache.accel.policies import Decision
from forecache.accel.state import CacheSession, ContextState, Placeholder
from forecache.accel.streams import ArgReader, StreamIO
from forecache.accel.targets.base import BlockRole

__all__ = [
    "BLOCK_HOOK",
    "HOOK_NAMES",
    "MODULE_HOOK",
    "ROOT_HOOK",
    "SKIP_HOOK",
    "ModuleHook",
    "RootHook",
    "SkipHook",
    "StackBlockHook",
]

ROOT_HOOK = "forecache_root"
BLOCK_HOOK = "forecache_block"
MODULE_HOOK = "forecache_module"
SKIP_HOOK = "forecache_skip"
HOOK_NAMES = (ROOT_HOOK, BLOCK_HOOK, MODULE_HOOK, SKIP_HOOK)


@mark_stateful
class RootHook(ModelHook):
    """Opens every transformer call as a step and hands it to the target."""

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
        assert self._args is not None
        session.enter()  # the calling pipeline's scheduler, in the calling thread's state
        timestep = host_timestep(self._time(args, kwargs), session.clock)
        ctx = session.begin_call(timestep, name, steps, index)
        if ctx.step == 0 and session.check_compiled is not None and not torch.compiler.is_compiling():
            session.check_compiled()  # a block compiled since `apply` or the last generation

        def forward() -> Any:
            return self.fn_ref.original_forward(*args, **kwargs)

        try:
            output = session.target.run_call(session, ctx, forward)
            if ctx.decision is Decision.FORECAST and not session.forecasts_accepted(ctx):
                ctx.decision = Decision.COMPUTE  # the "recompute" fallback: the step runs instead
                output = session.target.run_call(session, ctx, forward)
        except BaseException:
            session.reset()
            raise
        session.end_call(ctx)
        return output


class StackBlockHook(ModelHook):
    """A block after the probes: runs at computed steps; its `BlockRole` handles forecast steps.

    Args:
        session: The cache session.
        index: The block's position in execution order.
        io: Reads and rebuilds the block's streams.
        role: What the block does at forecast steps (and records at computed ones).
        head: Whether this is the first block after the probes (where the policy and the target
            see the stack's input).

    """

    def __init__(self, session: CacheSession, index: int, io: StreamIO, role: BlockRole, head: bool) -> None:
        super().__init__()
        self.session = session
        self.index = index
        self.io = io
        self.role = role
        self.head = head

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run the block, or let its role stand in for it."""
        ctx = self.session.current
        if ctx is None:
            return self.fn_ref.original_forward(*args, **kwargs)
        if self.head:
            self.session.enter_stack(ctx, self.io.inputs(args, kwargs))
        if ctx.decision is Decision.COMPUTE:
            output = self.fn_ref.original_forward(*args, **kwargs)
            self.role.computed(ctx, self.io, output)
            return output

        def run() -> Any:
            return self.fn_ref.original_forward(*args, **kwargs)

        return self.role.forecast(ctx, self.io, run, args, kwargs)


class _SubmoduleHook(ModelHook):
    """Runs a sub-module and records it at computed steps; replaces its call at forecast steps."""

    def __init__(self, session: CacheSession, key: str) -> None:
        super().__init__()
        self.session = session
        self.key = key

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run and record, or replace, the sub-module."""
        ctx = self.session.current
        if ctx is not None and ctx.decision is Decision.FORECAST:
            return self._replace(ctx)
        output = self.fn_ref.original_forward(*args, **kwargs)
        if ctx is not None:
            self._record(ctx, output)
        return output

    def _replace(self, ctx: ContextState) -> Any:
        raise NotImplementedError

    def _record(self, ctx: ContextState, output: Any) -> None:
        raise NotImplementedError


class ModuleHook(_SubmoduleHook):
    """Returns a cached sub-module's forecast at forecast steps; feeds its history at computed ones."""

    def _replace(self, ctx: ContextState) -> Any:
        return ctx.site(self.key).predict(ctx.x)

    def _record(self, ctx: ContextState, output: Any) -> None:
        ctx.site(self.key).update(output, ctx.x)


class SkipHook(_SubmoduleHook):
    """Returns zeros of the recorded shape at forecast steps for a sub-module whose output is unused."""

    def _replace(self, ctx: ContextState) -> Any:
        return ctx.placeholders[self.key].build()

    def _record(self, ctx: ContextState, output: Any) -> None:
        placeholder = ctx.placeholders.get(self.key)
        if placeholder is None:
            ctx.placeholders[self.key] = Placeholder(output, self.key)
        else:
            placeholder.record(output)
