"""The diffusers `ModelHook`s the targets install on the blocks and their sub-modules.

Imported when a target attaches (diffusers is imported on first use, never by ``import
forecache``). Each sees the engine only as an `Engine`:

- `StackBlockHook` on a block after the probes (`forecache.accel.targets.stack.attach_stack`): at
  computed steps the block runs and its `BlockRole` records what it needs; at forecast and partial
  steps the role decides what the block returns. The stack's first block (its head) lets the
  engine settle a probed step and the target see the stack's input;
- `ModuleHook` on a cached sub-module (the ``"modules"`` target) returns its forecast; `SkipHook`
  on a sub-module that only feeds cached ones returns zeros.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.hooks import ModelHook

from forecache.accel.context import ContextState, Placeholder
from forecache.accel.policies import Decision
from forecache.accel.streams import StreamIO
from forecache.accel.targets.base import BlockRole, Engine

__all__ = ["BLOCK_HOOK", "MODULE_HOOK", "SKIP_HOOK", "ModuleHook", "SkipHook", "StackBlockHook"]

BLOCK_HOOK = "forecache_block"
MODULE_HOOK = "forecache_module"
SKIP_HOOK = "forecache_skip"


class StackBlockHook(ModelHook):
    """A block after the probes: runs at computed steps; its `BlockRole` handles forecast steps.

    Args:
        engine: The engine (the call in progress, the stack's entry).
        io: Reads and rebuilds the block's streams.
        role: What the block does at forecast steps (and records at computed ones).
        head: Whether this is the first block after the probes (where the policy and the target
            see the stack's input).

    """

    def __init__(self, engine: Engine, io: StreamIO, role: BlockRole, head: bool) -> None:
        super().__init__()
        self.engine = engine
        self.io = io
        self.role = role
        self.head = head

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run the block, or let its role stand in for it."""
        ctx = self.engine.current
        if ctx is None:
            return self.fn_ref.original_forward(*args, **kwargs)
        if self.head:
            self.engine.enter_stack(ctx, self.io.inputs(args, kwargs))
        if ctx.decision is Decision.COMPUTE and not ctx.partial:
            output = self.fn_ref.original_forward(*args, **kwargs)
            self.role.computed(ctx, self.io, output)
            return output

        def run() -> Any:
            return self.fn_ref.original_forward(*args, **kwargs)

        if ctx.decision is Decision.COMPUTE:
            return self.role.partial(ctx, self.io, run, args, kwargs)
        return self.role.forecast(ctx, self.io, run, args, kwargs)


class _SubmoduleHook(ModelHook):
    """Runs a sub-module and records it at computed steps; replaces its call at forecast steps."""

    def __init__(self, engine: Engine, key: str) -> None:
        super().__init__()
        self.engine = engine
        self.key = key

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run and record, or replace, the sub-module."""
        ctx = self.engine.current
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
