"""The ``"output"`` target: the denoiser's whole output (AB-Cache's choice).

Cheapest: a forecast step runs nothing at all (not even the embeddings or the head) unless a
probing policy must run its probe blocks first; least faithful, since conditioning that changes
per step is not seen at forecast steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from forecache.accel.policies import Decision
from forecache.accel.targets.base import Block, Register, register_target
from forecache.accel.targets.stack import PassThrough, attach_stack

if TYPE_CHECKING:
    from forecache.accel.state import CacheSession, ContextState

__all__ = ["OutputTarget"]

_SITE = "output"


def _sample(output: Any) -> torch.Tensor:
    """Return the denoiser's prediction in a transformer output (tuple or `Transformer2DModelOutput`)."""
    return output[0] if isinstance(output, tuple) else output.sample


@register_target("output")
class OutputTarget:
    """Cache the transformer's output sample."""

    unit = "block"
    allows_fullgraph = True

    def __init__(self) -> None:
        self._kind: Any = tuple

    def plan(self, blocks: list[Block], probe_blocks: int, model: str) -> list[int]:
        """One unit per block."""
        return [1] * len(blocks)

    def forecast_units(self, units_per_block: list[int], probe_blocks: int) -> int:
        """Return the probe blocks' units: nothing else of the cached part runs at a forecast step."""
        return sum(units_per_block[:probe_blocks])

    def attach(self, session: CacheSession, blocks: list[Block], register: Register) -> None:
        """No hooks, unless a judging policy settles a forecast mid-call: then the blocks pass through."""
        if session.observes:
            attach_stack(session, blocks, register, lambda block, last: PassThrough())

    def new_context_state(self) -> None:
        """Nothing per branch beyond the output's site."""
        return None

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """Nothing to keep from the stack's input."""

    def run_call(self, session: CacheSession, ctx: ContextState, forward: Callable[[], Any]) -> Any:
        """Forecast the output without running anything, or run and record it."""
        if ctx.decision is Decision.FORECAST:
            return self._wrap(ctx.site(_SITE).predict(ctx.x))
        output = forward()
        if ctx.decision is Decision.COMPUTE:
            self._kind = tuple if isinstance(output, tuple) else type(output)
            ctx.site(_SITE).update(_sample(output), ctx.x)
            return output
        return self._wrap(ctx.site(_SITE).predict(ctx.x))  # a probe settled a forecast mid-call

    def _wrap(self, sample: torch.Tensor) -> Any:
        return (sample,) if self._kind is tuple else self._kind(sample=sample)
