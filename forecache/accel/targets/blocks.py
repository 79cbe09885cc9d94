"""The ``"blocks"`` target: the residual of the block stack after the probe blocks, one per stream.

At a forecast step every block after the probes passes its input through, and the last one adds
the forecast residual to the stack's input in the same fused pass. One history per stream (a few
MiB even for video models), the cheapest host work after the ``"output"`` target, and the
embeddings and the head still run, so conditioning that enters there is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from forecache.accel.context import ContextState
from forecache.accel.policies import Decision
from forecache.accel.streams import StreamIO
from forecache.accel.targets.base import Block, Engine, Register, Target, register_target
from forecache.accel.targets.stack import PassThrough, attach_stack

__all__ = ["BlocksTarget"]


class _StackState:
    """The stack's input streams at the current computed step."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor | None] = []


def _residual_site(stream: int) -> str:
    return f"residual.{stream}"


class _Tail(PassThrough):
    """The last block: records the stack's residual when computed, adds its forecast otherwise."""

    def computed(self, ctx: ContextState, io: StreamIO, output: Any) -> None:
        """Record ``output - input`` per stream."""
        io.learn(output)
        state: _StackState = ctx.target_state
        for i, (out, inp) in enumerate(zip(io.outputs(output), state.inputs, strict=False)):
            if out is not None and inp is not None:
                ctx.site(_residual_site(i)).update(out - inp, ctx.x)
        state.inputs = []

    def forecast(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Input streams plus their forecast residuals, added inside the forecast kernel."""
        streams = io.inputs(args, kwargs)
        for i, stream in enumerate(streams):
            site = ctx.sites.get(_residual_site(i))
            if stream is not None and site is not None:
                streams[i] = site.predict(ctx.x, addend=stream)
        return io.rebuild(streams)


@register_target("blocks")
class BlocksTarget(Target):
    """Cache the residual of the whole block stack after the probe blocks."""

    chains_blocks = True

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """Pass-through hooks; the last block records and adds the residual."""
        attach_stack(engine, blocks, register, lambda block, last: _Tail() if last else PassThrough())

    def new_context_state(self) -> _StackState:
        """Return the holder of the stack's input at computed steps."""
        return _StackState()

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """Keep a copy of the stack's input at computed steps (the residual's base)."""
        if ctx.decision is not Decision.COMPUTE:
            return
        state: _StackState = ctx.target_state
        state.inputs = [None if s is None else s.detach().clone() for s in streams]
