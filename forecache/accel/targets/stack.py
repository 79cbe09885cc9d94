"""The hooks of the block stack after the probe blocks, shared by the targets that install them.

`StackBlockHook` sits on a block after the probes: at computed steps the block runs and its
`BlockRole` records what it needs; at forecast steps the role decides what the block returns
(`PassThrough`: its input streams, shaped as its output). The stack's first block (its head) lets
the engine settle a probed step and the target see the stack's input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers.hooks import ModelHook

from forecache.accel.context import ContextState
from forecache.accel.policies import Decision
from forecache.accel.streams import StreamIO
from forecache.accel.targets.base import Block, BlockRole, Engine, Register

__all__ = ["BLOCK_HOOK", "PassThrough", "StackBlockHook", "attach_stack"]

BLOCK_HOOK = "forecache_block"


class PassThrough(BlockRole):
    """At forecast steps the block does not run: it passes its input streams on, shaped as its output."""

    def computed(self, ctx: ContextState, io: StreamIO, output: Any) -> None:
        """Learn which output slot holds which stream (once per output shape)."""
        io.learn(output)

    def forecast(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Pass the input streams through."""
        return io.rebuild(io.inputs(args, kwargs))


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
        if ctx.decision is Decision.COMPUTE:
            output = self.fn_ref.original_forward(*args, **kwargs)
            self.role.computed(ctx, self.io, output)
            return output

        def run() -> Any:
            return self.fn_ref.original_forward(*args, **kwargs)

        return self.role.forecast(ctx, self.io, run, args, kwargs)


def attach_stack(
    engine: Engine,
    blocks: list[Block],
    register: Register,
    role: Callable[[Block, bool], BlockRole],
    head_only: bool = False,
) -> None:
    """Register the block hooks of the stack after the probe blocks (which get none: they just run).

    Args:
        engine: The engine.
        blocks: All blocks, in execution order.
        register: Attaches a hook to a module.
        role: ``role(block, is_last)``: what each hooked block does at forecast steps.
        head_only: Hook only the stack's first block (targets whose blocks run at every step need
            it only where the policy judges the stack's input, see `Engine.observes`).

    """
    probes = engine.probe_blocks
    for block in blocks[probes : probes + 1 if head_only else None]:
        io = StreamIO(block.layout, type(block.module).forward)
        last = block.index == len(blocks) - 1
        hook = StackBlockHook(engine, io, role(block, last), head=block.index == probes)
        register(block.module, hook, BLOCK_HOOK)
