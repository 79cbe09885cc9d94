"""The block stack after the probe blocks, shared by the targets that hook it: its roles and attachment.

`attach_stack` puts a `StackBlockHook` (`forecache.accel.targets.hooks`) on each block after the
probes, with the `BlockRole` the target gives it: what the block does at forecast steps
(`PassThrough`: its input streams, shaped as its output) and records at computed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forecache.accel.context import ContextState
from forecache.accel.streams import StreamIO
from forecache.accel.targets.base import Block, BlockRole, Engine, Register

__all__ = ["PassThrough", "attach_stack"]


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
    from forecache.accel.targets.hooks import BLOCK_HOOK, StackBlockHook  # imports diffusers

    probes = engine.probe_blocks
    for block in blocks[probes : probes + 1 if head_only else None]:
        io = StreamIO(block.layout, type(block.module).forward)
        last = block.index == len(blocks) - 1
        hook = StackBlockHook(engine, io, role(block, last), head=block.index == probes)
        register(block.module, hook, BLOCK_HOOK)
