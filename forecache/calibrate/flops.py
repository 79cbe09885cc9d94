"""The one FLOPs counter: linear-layer FLOPs that actually run inside a model's calls.

`forecache.tune` aims its ``ratio`` with it, and the harness (``bench``, ``sweep``, ``profile``)
measures every method with it, so a config tuned for 4x is judged at the ratio it was tuned for.
Every method is seen the same way from outside (forecache, diffusers' hooks, cache-dit): a skipped
block, a skipped attention or a forecast output simply runs fewer linear layers. The counter is a
`TorchFunctionMode` that adds ``2 x output elements x inputs per output`` for every call of
``torch.nn.functional.linear`` and ``conv1d/2d/3d`` made inside a call of the model: it counts the
layers whose arithmetic ran, not the modules that were called (a cache that replaces a module's
``forward`` still lets that module's forward hooks fire, so module hooks would count forecast
layers as run). It costs about a microsecond per torch function call, unlike
`torch.utils.flop_counter.FlopCounterMode`, which intercepts every aten operator and makes a small
model's run about 2.7x slower. Attention's own matmuls (``softmax(QK^T)V``) and element-wise work
are not counted: they are a small share of a DiT's FLOPs at the token counts these caches target,
and a cache that skips a block skips them together with its projections.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["LINEAR_FUNCTIONS", "ComputeCount", "count_flops", "linear_flops", "within_calls"]

LINEAR_FUNCTIONS = (F.linear, F.conv1d, F.conv2d, F.conv3d)
"""The functions whose FLOPs are counted (``nn.Linear`` and ``nn.Conv*d`` call them)."""


@dataclass
class ComputeCount:
    """Linear-layer FLOPs of every call of a model.

    Attributes:
        per_call: FLOPs of each call, in call order.
        inside: Per call, the FLOPs run between the start of the first of the `blocks` given to
            `count_flops` and the end of the last one (empty when no blocks were given).
        per_block: Per call, the FLOPs each of the `blocks` ran (what a partial step that
            forecasts some of them saves).

    """

    per_call: list[int] = field(default_factory=list)
    inside: list[int] = field(default_factory=list)
    per_block: list[list[int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """FLOPs of all calls."""
        return sum(self.per_call)


def linear_flops(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: torch.Tensor) -> int:
    """FLOPs of one call of a function in `LINEAR_FUNCTIONS` (bias adds ignored).

    Returns:
        ``2 * output.numel() * in_features`` for ``linear`` (the weight is ``(out, in)``);
        ``2 * output.numel() * in_channels / groups * prod(kernel)`` for a convolution (the
        weight is ``(out, in / groups, *kernel)``, so that is the weight's per-output size).

    """
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    if func is F.linear:
        return 2 * output.numel() * weight.shape[-1]
    return 2 * output.numel() * math.prod(weight.shape[1:])


class _Counter(TorchFunctionMode):
    def __init__(self, count: ComputeCount) -> None:
        super().__init__()
        self.count = count
        self.active = False
        self.inside = False
        self.block: int | None = None

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        if self.active and func in LINEAR_FUNCTIONS and isinstance(output, torch.Tensor):
            flops = linear_flops(func, args, kwargs, output)
            self.count.per_call[-1] += flops
            if self.inside:
                self.count.inside[-1] += flops
            if self.block is not None:
                self.count.per_block[-1][self.block] += flops
        return output


@contextmanager
def count_flops(model: torch.nn.Module, blocks: Sequence[torch.nn.Module] = ()) -> Iterator[ComputeCount]:
    """Count the linear-layer FLOPs of every call of `model` while the ``with`` block runs.

    Args:
        model: The pipeline's transformer; linear layers run between the start and the end of
            each of its calls (its hooks included) are counted, nothing outside them.
        blocks: The block stack in run order, or empty (default). Given, each call's FLOPs from
            the start of ``blocks[0]`` to the end of ``blocks[-1]`` are also counted apart
            (`ComputeCount.inside`): what a step that forecasts every block does not run; and
            each block's own (`ComputeCount.per_block`).

    Yields:
        A `ComputeCount` whose ``per_call`` (and ``inside``) get one entry per call of `model`.

    """
    count = ComputeCount()
    counter = _Counter(count)

    def start() -> None:
        count.per_call.append(0)
        if blocks:
            count.inside.append(0)
            count.per_block.append([0] * len(blocks))

    def enter(*_: Any) -> None:
        counter.inside = True

    def leave(*_: Any) -> None:
        counter.inside = False

    def block_span(index: int) -> tuple[torch.nn.Module, Any, torch.nn.Module, Any]:
        def enter_block(*_: Any) -> None:
            counter.block = index

        def leave_block(*_: Any) -> None:
            counter.block = None

        return (blocks[index], enter_block, blocks[index], leave_block)

    extra = [(blocks[0], enter, blocks[-1], leave)] if blocks else []
    extra += [block_span(index) for index in range(len(blocks))]
    with within_calls(model, counter, start, extra):
        yield count


@contextmanager
def within_calls(
    model: torch.nn.Module,
    mode: Any,
    start: Any,
    spans: Sequence[tuple[torch.nn.Module, Any, torch.nn.Module, Any]] = (),
) -> Iterator[None]:
    """Run the torch function `mode` for the ``with`` block, active inside `model`'s calls only.

    `start()` runs at the start of each call (where a counter opens its entry); each span
    ``(first, enter, last, leave)`` also calls ``enter`` before `first` runs and ``leave`` after
    `last` has run. The hooks are removed on exit, whatever happens.
    """

    def pre(*_: Any) -> None:
        start()
        mode.active = True

    def post(*_: Any) -> None:
        mode.active = False
        for span in spans:
            span[3]()

    handles = [
        model.register_forward_pre_hook(pre, prepend=True),
        model.register_forward_hook(post, always_call=True),
    ]
    for first, enter, last, leave in spans:
        handles += [
            first.register_forward_pre_hook(enter, prepend=True),
            last.register_forward_hook(leave, always_call=True),
        ]
    try:
        with mode:
            yield
    finally:
        for handle in handles:
            handle.remove()
