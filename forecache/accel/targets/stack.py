"""Hooks shared by the targets on the block stack: probes, the stack head, pass-through blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forecache.accel.streams import StreamIO
from forecache.accel.targets.base import Block, BlockRole, Register

if TYPE_CHECKING:
    from forecache.accel.state import CacheSession, ContextState

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
    session: CacheSession,
    blocks: list[Block],
    register: Register,
    role: Callable[[Block, bool], BlockRole],
    head_only: bool = False,
) -> None:
    """Register the block hooks of the stack after the probe blocks (which get none: they just run).

    Args:
        session: The cache session.
        blocks: All blocks, in execution order.
        register: Attaches a hook to a module.
        role: ``role(block, is_last)``: what each hooked block does at forecast steps.
        head_only: Hook only the stack's first block (targets whose blocks run at every step need
            it only where a judging policy observes the stack's input, see `CacheSession.observes`).

    """
    from forecache.accel.hooks import BLOCK_HOOK, StackBlockHook

    probes = session.probe_blocks
    for block in blocks[probes : probes + 1 if head_only else None]:
        io = StreamIO(block.layout, type(block.module).forward)
        last = block.index == len(blocks) - 1
        hook = StackBlockHook(session, block.index, io, role(block, last), head=block.index == probes)
        register(block.module, hook, BLOCK_HOOK)
