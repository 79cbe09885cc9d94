"""The ``"output"`` target: the denoiser's whole output (AB-Cache's choice).

Cheapest: a forecast step runs nothing at all (not even the embeddings or the head) unless a
probing policy must run its probe blocks first; least faithful, since conditioning that changes
per step is not seen at forecast steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from forecache.accel.context import ContextState
from forecache.accel.policies import Decision
from forecache.accel.targets.base import Block, Engine, Register, Target, register_target
from forecache.accel.targets.stack import PassThrough, attach_stack

__all__ = ["OutputTarget"]

_SITE = "output"


class _Shape:
    """How a transformer returns its prediction: what to forecast, and how to rebuild the return value.

    A tensor is forecast as it is; a tuple or list by its tensors (``(sample,)`` as diffusers'
    ``return_dict=False`` gives); an output dataclass (diffusers' `BaseOutput`, e.g.
    `Transformer2DModelOutput`) or a dict by its tensor fields, rebuilt as the same class. Values
    that are not tensors (None, flags) are kept from the last computed call.
    """

    def __init__(self, output: Any) -> None:
        self.kind = type(output)
        self.keys: list[str] = []
        self.fixed: dict[str, Any] = {}
        if isinstance(output, torch.Tensor) or isinstance(output, (tuple, list)):
            return
        items = _items(output)
        if items is None:
            raise TypeError(
                f'forecache: the "output" target cannot forecast a transformer that returns '
                f"{type(output).__name__}; expected a tensor, a tuple or an output dataclass"
            )
        self.keys = [k for k, v in items.items() if _is_tree(v)]
        self.fixed = {k: v for k, v in items.items() if k not in self.keys}

    def tree(self, output: Any) -> Any:
        """Return the forecastable part of a computed output (tensors nested in tuples)."""
        if isinstance(output, torch.Tensor):
            return output
        if isinstance(output, (tuple, list)):
            return tuple(output)
        items = _items(output) or {}
        return tuple(items[k] for k in self.keys)

    def rebuild(self, tree: Any) -> Any:
        """Return the return value holding the forecast `tree`."""
        if self.kind is tuple or isinstance(tree, torch.Tensor):
            return tree
        if self.kind is list:
            return list(tree)
        fields = {**self.fixed, **dict(zip(self.keys, tree, strict=True))}
        return self.kind(**fields)


def _items(output: Any) -> dict[str, Any] | None:
    if isinstance(output, dict):  # diffusers' BaseOutput is an OrderedDict of its set fields
        return dict(output.items())
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    return None


def _is_tree(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and bool(value) and all(_is_tree(v) or v is None for v in value)


@register_target("output")
class OutputTarget(Target):
    """Cache the transformer's output sample."""

    def __init__(self) -> None:
        self._shape: _Shape | None = None

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """No hooks, unless a judging policy settles a forecast mid-call: then the blocks pass through."""
        if engine.observes:
            attach_stack(engine, blocks, register, lambda block, last: PassThrough())

    def run_call(self, ctx: ContextState, forward: Callable[[], Any]) -> Any:
        """Forecast the output without running anything, or run and record it."""
        if ctx.decision is Decision.FORECAST:
            return self._wrap(ctx.site(_SITE).predict(ctx.x))
        output = forward()
        if ctx.decision is Decision.COMPUTE:
            self._shape = _Shape(output)
            ctx.site(_SITE).update(self._shape.tree(output), ctx.x)
            return output
        return self._wrap(ctx.site(_SITE).predict(ctx.x))  # a probe settled a forecast mid-call

    def _wrap(self, tree: Any) -> Any:
        assert self._shape is not None, "a forecast before any computed call"
        return self._shape.rebuild(tree)
