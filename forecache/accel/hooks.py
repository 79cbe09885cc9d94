"""The diffusers `ModelHook`s that run, skip or forecast the transformer, its blocks and sub-modules.

Four hooks, attached per instance through diffusers' `HookRegistry` (so they are removable and
compose with diffusers' own hooks):

- the root hook on the transformer reads each call's timestep and cache context, opens the step
  in the `CacheSession`, and for the ``"output"`` target returns the forecast output directly;
- a block hook on every block counts executions, runs the gate at the first non-probe block, and
  at forecast steps passes its inputs through (the last block adds the forecast residual);
- a module hook on every cached sub-module (``"modules"`` target) returns its forecast;
- a skip hook on sub-modules that only feed cached ones returns zeros at forecast steps.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers.hooks.hooks import BaseState, ModelHook, StateManager

from forecache.accel.clock import host_timestep
from forecache.accel.layout import BlockListLayout
from forecache.accel.policies import Decision
from forecache.accel.state import CacheSession, ContextState, Placeholder

__all__ = [
    "BLOCK_HOOK",
    "HOOK_NAMES",
    "MODULE_HOOK",
    "ROOT_HOOK",
    "SKIP_HOOK",
    "BlockHook",
    "ModuleHook",
    "RootHook",
]

ROOT_HOOK = "forecache_root"
BLOCK_HOOK = "forecache_block"
MODULE_HOOK = "forecache_module"
SKIP_HOOK = "forecache_skip"
HOOK_NAMES = (ROOT_HOOK, BLOCK_HOOK, MODULE_HOOK, SKIP_HOOK)


class ArgReader:
    """Reads named arguments of a forward call, whether passed by keyword or by position."""

    def __init__(self, forward: Any) -> None:
        params = list(inspect.signature(forward).parameters)
        self._positions = {name: i for i, name in enumerate(params) if name != "self"}
        if params and params[0] == "self":
            self._positions = {name: i - 1 for name, i in self._positions.items()}

    def get(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Return argument `name`, or None when it was not passed."""
        if name in kwargs:
            return kwargs[name]
        index = self._positions.get(name)
        return args[index] if index is not None and index < len(args) else None


class _NoState(BaseState):
    def reset(self) -> None:
        """Nothing to reset: the receiver only carries the context name."""


class _ContextReceiver(StateManager):
    """Receives the pipeline's `cache_context(...)` through diffusers' `_set_cache_context`."""

    def __init__(self) -> None:
        super().__init__(_NoState)

    @property
    def context(self) -> tuple[str | None, int | None, int | None]:
        """The context's name, `num_inference_steps` and `step_index`; Nones when none is set."""
        context = self._context
        if context is None:
            return None, None, None
        return context.name, context.num_inference_steps, getattr(context, "step_index", None)


def _sample(output: Any) -> torch.Tensor:
    """Return the denoiser's prediction in a transformer output (tuple or `Transformer2DModelOutput`)."""
    return output[0] if isinstance(output, tuple) else output.sample


class RootHook(ModelHook):
    """Opens every transformer call as a step; forecasts the whole output for the output target."""

    _is_stateful = True

    def __init__(self, session: CacheSession, timestep_arg: str) -> None:
        super().__init__()
        self.session = session
        self.timestep_arg = timestep_arg
        self.receiver = _ContextReceiver()
        self._args: ArgReader | None = None
        self._output_kind: Any = None

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

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run, or forecast, one transformer call."""
        assert self._args is not None
        if self.session.check_compiled is not None and not torch.compiler.is_compiling():
            self.session.check_compiled()  # a block compiled since `apply` (compile_repeated_blocks)
        name, steps, index = self.receiver.context
        timestep = host_timestep(self._args.get(self.timestep_arg, args, kwargs), self.session.clock)
        ctx = self.session.begin_call(timestep, name, steps, index)
        try:
            output = self._step(ctx, args, kwargs)
            if ctx.decision is Decision.FORECAST and not self.session.forecasts_accepted(ctx):
                ctx.decision = Decision.COMPUTE
                ctx.stats.fallbacks += 1
                output = self._step(ctx, args, kwargs)
        except BaseException:
            self.session.reset()
            raise
        self.session.end_call(ctx)
        return output

    def _step(self, ctx: ContextState, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the call as decided; the output target's forecast skips the forward altogether."""
        if ctx.decision is Decision.FORECAST and self.session.config.target == "output":
            return self._wrap(ctx.site("output").predict(ctx.x))
        output = self.fn_ref.original_forward(*args, **kwargs)
        if self.session.config.target == "output":
            output = self._record_or_replace(ctx, output)
        return output

    def _record_or_replace(self, ctx: ContextState, output: Any) -> Any:
        sample = _sample(output)
        if ctx.decision is Decision.COMPUTE:
            self._output_kind = tuple if isinstance(output, tuple) else type(output)
            ctx.site("output").update(sample, ctx.x)
            return output
        return self._wrap(ctx.site("output").predict(ctx.x))

    def _wrap(self, sample: torch.Tensor) -> Any:
        return (sample,) if self._output_kind is tuple else self._output_kind(sample=sample)


class BlockHook(ModelHook):
    """Runs a block, or passes its inputs through at forecast steps (adding the residual at the end)."""

    def __init__(self, session: CacheSession, index: int, layout: BlockListLayout) -> None:
        super().__init__()
        self.session = session
        self.index = index
        self.layout = layout
        self.units = session.units_per_block[index]
        self.is_probe = index < session.probe_blocks
        self.is_first = index == session.probe_blocks
        self.is_last = index == session.num_blocks - 1
        self._args: ArgReader | None = None

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        """Read the block's signature once."""
        self._args = ArgReader(type(module).forward)
        return module

    def _streams_in(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor | None]:
        assert self._args is not None
        streams = [self._args.get(self.layout.hidden_arg, args, kwargs)]
        if self.layout.encoder_index is not None:
            streams.append(self._args.get(self.layout.encoder_arg, args, kwargs))
        return streams

    def _streams_out(self, output: Any) -> list[torch.Tensor | None]:
        if not isinstance(output, tuple):
            return [output]
        streams = [output[self.layout.hidden_index if self.layout.hidden_index is not None else 0]]
        if self.layout.encoder_index is not None:
            streams.append(output[self.layout.encoder_index])
        return streams

    def _template(self, output: Any) -> Any:
        if not isinstance(output, tuple):
            return None
        slots: list[int | None] = [None] * len(output)
        for stream, position in enumerate((self.layout.hidden_index, self.layout.encoder_index)):
            if position is not None and output[position] is not None:
                slots[position] = stream
        return tuple(slots)

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run, skip or finish the block stack for the current step."""
        ctx = self.session.current
        if ctx is None:
            return self.fn_ref.original_forward(*args, **kwargs)
        if self.is_probe:
            ctx.stats.executed_units += self.units
            return self.fn_ref.original_forward(*args, **kwargs)
        if self.is_first:
            self.session.enter_stack(ctx, self._streams_in(args, kwargs))
        target = self.session.config.target
        if ctx.decision is Decision.COMPUTE:
            output = self.fn_ref.original_forward(*args, **kwargs)
            ctx.stats.executed_units += self.units
            if target != "modules":
                ctx.templates[self.index] = self._template(output)
            if self.is_last and target == "blocks":
                self.session.update_residual(ctx, self._streams_out(output))
            return output
        if target == "modules":
            return self.fn_ref.original_forward(*args, **kwargs)
        streams = self._streams_in(args, kwargs)
        if self.is_last and target == "blocks":
            streams = self.session.forecast_residual(ctx, streams)
        template = ctx.templates[self.index]
        if template is None:
            return streams[0]
        return tuple(None if slot is None else streams[slot] for slot in template)


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
        ctx.placeholders[self.key] = Placeholder(output, self.key)
