"""The ``"blocks"`` target: the residual of the block stack after the probe blocks, one per stream.

At a forecast step every block after the probes passes its input through, and the last one adds
the forecast residual to the stack's input in the same fused pass. One history per stream (a few
MiB even for video models), the cheapest host work after the ``"output"`` target, and the
embeddings and the head still run, so conditioning that enters there is kept.

Partial steps (a policy's `partial_blocks`, e.g. a tuned `Timeline`'s): the span's first block
adds the span's forecast residual (fed at full steps, from the span's input to its output) to
its input, the span's other blocks pass that on, and every block outside the span runs. The
stack's residual so made feeds its history as a computed step's would.
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
    """The stack's input streams at the current computed step, and its partial span's input."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor | None] = []
        self.split: list[torch.Tensor | None] = []


def _residual_site(stream: int) -> str:
    return f"residual.{stream}"


def _span_site(stream: int) -> str:
    return f"span.{stream}"


def _clone(streams: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    return [None if s is None else s.detach().clone() for s in streams]


def _add_forecasts(
    ctx: ContextState, streams: list[torch.Tensor | None], site: Callable[[int], str]
) -> list[torch.Tensor | None]:
    """Add each stream's forecast residual (from its site, where it has one) in the forecast's pass."""
    for i, stream in enumerate(streams):
        history = ctx.sites.get(site(i))
        if stream is not None and history is not None:
            streams[i] = history.predict(ctx.x, addend=stream)
    return streams


class _Role(PassThrough):
    """A block of the stack: what it records at full steps and does at partial and forecast steps.

    Args:
        position: Its position in the stack (0 the first block after the probes).
        last: Whether it is the stack's last block (records and adds the stack's residual).
        span: The policy's ``partial_blocks`` ``(first, end)``; ``(0, 0)``: no partial steps.

    """

    def __init__(self, position: int, last: bool, span: tuple[int, int]) -> None:
        self.last = last
        self.opens = span[1] > 0 and position == span[0]  # adds the span's forecast at partial steps
        self.inside = span[0] < position < span[1]  # passes through at partial steps
        self.before = span[1] > 0 and position == span[0] - 1  # its output is the span's input
        self.closes = span[1] > 0 and position == span[1] - 1  # its output ends the span
        self.from_stack = span[0] == 0  # the span's input is the stack's

    def computed(self, ctx: ContextState, io: StreamIO, output: Any) -> None:
        """Record the span's residual and (the last block) the stack's, per stream."""
        io.learn(output)
        if not (self.before or self.closes or self.last):
            return
        state: _StackState = ctx.target_state
        outputs = io.outputs(output)
        if self.before:
            state.split = _clone(outputs)
        if self.closes:
            bases = state.inputs if self.from_stack else state.split
            for i, (out, base) in enumerate(zip(outputs, bases, strict=False)):
                if out is not None and base is not None:
                    ctx.site(_span_site(i)).update(out - base, ctx.x)
        if self.last:
            self._record(ctx, outputs)

    def _record(self, ctx: ContextState, outputs: list[torch.Tensor | None]) -> None:
        state: _StackState = ctx.target_state
        for i, (out, inp) in enumerate(zip(outputs, state.inputs, strict=False)):
            if out is not None and inp is not None:
                ctx.site(_residual_site(i)).update(out - inp, ctx.x)
        state.inputs, state.split = [], []

    def partial(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run (outside the span), add the span's forecast (its first block) or pass through (inside)."""
        if self.opens or self.inside:
            streams = io.inputs(args, kwargs)
            if self.opens:
                streams = _add_forecasts(ctx, streams, _span_site)
            output = io.rebuild(streams)
            outputs = streams
        else:
            output = run()
            outputs = io.outputs(output)
        if self.last:
            self._record(ctx, outputs)
        return output

    def forecast(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Pass the input streams through; the last block adds their forecast residuals in one pass."""
        streams = io.inputs(args, kwargs)
        if self.last:
            streams = _add_forecasts(ctx, streams, _residual_site)
        return io.rebuild(streams)


@register_target("blocks")
class BlocksTarget(Target):
    """Cache the residual of the whole block stack after the probe blocks."""

    chains_blocks = True
    partial_steps = True

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """Pass-through hooks; the last block records and adds the residual."""
        span, probes = engine.partial_blocks, engine.probe_blocks

        def role(block: Block, last: bool) -> PassThrough:
            return _Role(block.index - probes, last, span)

        attach_stack(engine, blocks, register, role)

    def new_context_state(self) -> _StackState:
        """Return the holder of the stack's input at computed steps."""
        return _StackState()

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """Keep a copy of the stack's input at computed steps (the residual's base)."""
        if ctx.decision is not Decision.COMPUTE:
            return
        state: _StackState = ctx.target_state
        state.inputs = [None if s is None else s.detach().clone() for s in streams]
