"""Compute ratio as the harness counts it: FLOPs of the linear layers that actually run, per transformer call.

Every method is seen the same way from outside (forecache, diffusers' hooks, cache-dit): a skipped
block, a skipped attention or a forecast output simply runs fewer linear layers. The counter is a
`TorchFunctionMode` that adds ``2 x output elements x inputs per output`` for every call of
``torch.nn.functional.linear`` and ``conv1d/2d/3d`` made inside a transformer call: it counts the
layers whose arithmetic ran, not the modules that were called (a cache that replaces a module's
``forward`` still lets that module's forward hooks fire, so module hooks would count forecast
layers as run). It costs about a microsecond per torch function call, unlike
`torch.utils.flop_counter.FlopCounterMode` (`forecache.eval.probes.count_compute`), which
intercepts every aten operator and makes a small model's run about 2.7x slower. Attention's own
matmuls (``softmax(QK^T)V``) and element-wise work are not counted: they are a small share of a
DiT's FLOPs at the token counts these caches target, and a cache that skips a block skips them
together with its projections.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from forecache.eval.probes import ComputeCount

__all__ = ["LINEAR_FUNCTIONS", "count_linear_flops", "linear_flops"]

LINEAR_FUNCTIONS = (F.linear, F.conv1d, F.conv2d, F.conv3d)
"""The functions whose FLOPs are counted (``nn.Linear`` and ``nn.Conv*d`` call them)."""


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

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        if self.active and func in LINEAR_FUNCTIONS and isinstance(output, torch.Tensor):
            self.count.per_call[-1] += linear_flops(func, args, kwargs, output)
        return output


@contextmanager
def count_linear_flops(model: torch.nn.Module) -> Iterator[ComputeCount]:
    """Count the linear-layer FLOPs of every call of `model` while the ``with`` block runs.

    Args:
        model: The pipeline's transformer; linear layers run between the start and the end of
            each of its calls (its hooks included) are counted, nothing outside them.

    Yields:
        A `ComputeCount` whose ``per_call`` gets one entry per call of `model`, in call order.

    """
    count = ComputeCount()
    counter = _Counter(count)

    def pre(*_: Any) -> None:
        count.per_call.append(0)
        counter.active = True

    def post(*_: Any) -> None:
        counter.active = False

    handles = [
        model.register_forward_pre_hook(pre, prepend=True),
        model.register_forward_hook(post, always_call=True),
    ]
    try:
        with counter:
            yield count
    finally:
        for handle in handles:
            handle.remove()
