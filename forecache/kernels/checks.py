"""Argument checks of the public kernel entry points: errors that name the argument and the value.

Only the public functions (``weighted_sum`` and friends, and the ``torch_*`` references) run these.
The cache's hot path validates once per allocated site instead (the tensors it passes are its own,
allocated with matching shapes, dtypes and devices) and calls the unchecked operations that
:func:`forecache.kernels.dispatch.ops_for` returns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

#: Storage dtypes the kernels accept (all arithmetic happens in float32).
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)


def _span(t: Tensor) -> tuple[int, int]:
    """Return the half-open byte range ``[start, end)`` that ``t`` can touch (strides are >= 0)."""
    if t.numel() == 0:
        return (t.data_ptr(), t.data_ptr())
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return (t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size())


def _overlaps(a: Tensor, b: Tensor) -> bool:
    """Whether the memory of ``a`` and ``b`` may intersect (conservative: compares byte ranges)."""
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a.device == b.device and a0 < b1 and b0 < a1


def _check_float_tensor(t: object, name: str) -> Tensor:
    """Check that ``t`` is a tensor of a supported dtype and return it."""
    if not isinstance(t, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"`{name}` must have dtype float32, bfloat16 or float16, got {t.dtype}")
    return t


def _check_like(t: Tensor, name: str, ref: Tensor, ref_name: str, same_dtype: bool = True) -> None:
    """Check that ``t`` has the shape, device (and optionally dtype) of ``ref``."""
    if t.shape != ref.shape:
        raise ValueError(
            f"`{name}` must have the shape of `{ref_name}` {tuple(ref.shape)}, got {tuple(t.shape)}"
        )
    if t.device != ref.device:
        raise ValueError(f"`{name}` must be on the device of `{ref_name}` ({ref.device}), got {t.device}")
    if same_dtype and t.dtype != ref.dtype:
        raise TypeError(f"`{name}` must have the dtype of `{ref_name}` ({ref.dtype}), got {t.dtype}")


def _check_scalars(values: Sequence[float], name: str, expected: int) -> tuple[float, ...]:
    """Check that ``values`` holds ``expected`` real numbers and return them as floats."""
    if len(values) != expected:
        raise ValueError(f"`{name}` must have {expected} entries, got {len(values)}")
    out: list[float] = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"`{name}[{i}]` must be a real number, got {type(v).__name__}")
        out.append(float(v))
    return tuple(out)


def check_weighted_sum_args(
    tensors: Sequence[Tensor], weights: Sequence[float], out: Tensor | None
) -> tuple[float, ...]:
    """Validate the arguments of ``weighted_sum``; return the weights as floats.

    Raises:
        TypeError: On a non-tensor, an unsupported dtype, or a non-numeric weight.
        ValueError: On an empty sequence, mismatched shapes/devices/lengths, a non-contiguous ``out``,
            or an ``out`` that partially overlaps an input.

    """
    if len(tensors) == 0:
        raise ValueError("`tensors` must be a non-empty sequence of tensors, got 0 tensors")
    first = _check_float_tensor(tensors[0], "tensors[0]")
    for i, t in enumerate(tensors[1:], start=1):
        _check_like(_check_float_tensor(t, f"tensors[{i}]"), f"tensors[{i}]", first, "tensors[0]")
    floats = _check_scalars(weights, "weights", len(tensors))
    if out is not None:
        _check_like(_check_float_tensor(out, "out"), "out", first, "tensors[0]")
        if not out.is_contiguous():
            raise ValueError("`out` must be contiguous (it is written in place); pass out=None instead")
        for i, t in enumerate(tensors):
            same = t.data_ptr() == out.data_ptr() and t.stride() == out.stride()
            if not same and _overlaps(t, out):
                raise ValueError(f"`out` partially overlaps `tensors[{i}]`; it may only be exactly an input")
    return floats


def check_guard_args(
    tensors: Sequence[Tensor],
    fallback: int,
    limit: Tensor,
    refused: Tensor,
    limit_scale: float,
    slot: int,
    addend: Tensor | None,
    out_dtype: torch.dtype | None = None,
) -> float:
    """Validate the guard arguments of ``guarded_weighted_sum`` (the tensors are checked already).

    Returns:
        `limit_scale` as a float.

    Raises:
        TypeError: On a non-int `fallback` or `slot`, a non-numeric `limit_scale`, a
            `limit`/`refused`/`addend` of the wrong dtype, or an unsupported `out_dtype`.
        ValueError: On an out-of-range `fallback` or `slot`, a `limit_scale` that is not finite
            and positive, a `limit` that is not one element or a `refused` that is not 1-D, on
            another device than the inputs, or an `addend` of another shape or device.

    """
    if isinstance(fallback, bool) or not isinstance(fallback, int):
        raise TypeError(f"`fallback` must be an int index into `tensors`, got {type(fallback).__name__}")
    if not 0 <= fallback < len(tensors):
        raise ValueError(f"`fallback` must be in [0, {len(tensors) - 1}], got {fallback}")
    kinds = (
        ("limit", limit, torch.float32, "a one-element torch.float32 tensor"),
        ("refused", refused, torch.int64, "a 0-d or 1-d torch.int64 counter (int32 would wrap)"),
    )
    for name, t, dtype, what in kinds:
        if not isinstance(t, Tensor) or t.dtype != dtype:
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"`{name}` must be {what}, got {got}")
        if t.device != tensors[0].device:
            raise ValueError(f"`{name}` must be on {tensors[0].device}, got {t.device}")
    if limit.numel() != 1:
        raise ValueError(f"`limit` must have one element, got {limit.numel()}")
    if refused.dim() > 1 or not refused.is_contiguous():
        raise ValueError(
            f"`refused` must be a contiguous 0-d or 1-d counter, got shape {tuple(refused.shape)}"
        )
    if isinstance(slot, bool) or not isinstance(slot, int):
        raise TypeError(f"`slot` must be an int index into `refused`, got {type(slot).__name__}")
    if not 0 <= slot < refused.numel():
        raise ValueError(f"`slot` must be in [0, {refused.numel() - 1}], got {slot}")
    (scale,) = _check_scalars((limit_scale,), "limit_scale", 1)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"`limit_scale` must be a finite float > 0, got {limit_scale!r}")
    if addend is not None:
        _check_like(
            _check_float_tensor(addend, "addend"), "addend", tensors[0], "tensors[0]", same_dtype=False
        )
    if out_dtype is not None and out_dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"`out_dtype` must be float32, bfloat16, float16 or None, got {out_dtype}")
    return scale


def check_peak(peak: Tensor | None, feature: Tensor) -> None:
    """Validate the optional running-peak tensor of ``taylor_update_``.

    Raises:
        TypeError: If `peak` is not a float32 tensor.
        ValueError: If `peak` is not one element on the feature's device.

    """
    if peak is None:
        return
    if not isinstance(peak, Tensor) or peak.dtype != torch.float32:
        got = peak.dtype if isinstance(peak, Tensor) else type(peak).__name__
        raise TypeError(f"`peak` must be a one-element torch.float32 tensor, got {got}")
    if peak.numel() != 1 or peak.device != feature.device:
        raise ValueError(
            f"`peak` must be one element on {feature.device}, got {peak.numel()} on {peak.device}"
        )


def check_taylor_update_args(
    factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float]
) -> tuple[float, ...]:
    """Validate the arguments of ``taylor_update_``; return ``inv_dt`` as floats.

    Raises:
        TypeError: On a non-tensor, an unsupported dtype, or a non-numeric scale.
        ValueError: On an empty ``factors``, mismatched shapes/devices/lengths, a non-contiguous
            factor, or any memory shared between the factors and the feature.

    """
    if len(factors) == 0:
        raise ValueError("`factors` must be a non-empty sequence of tensors, got 0 tensors")
    first = _check_float_tensor(factors[0], "factors[0]")
    for i, f in enumerate(factors):
        if i > 0:
            _check_like(_check_float_tensor(f, f"factors[{i}]"), f"factors[{i}]", first, "factors[0]")
        if not f.is_contiguous():
            raise ValueError(f"`factors[{i}]` must be contiguous (it is updated in place)")
        for j in range(i):
            if _overlaps(f, factors[j]):
                raise ValueError(f"`factors[{i}]` shares memory with `factors[{j}]`")
    _check_like(_check_float_tensor(feature, "feature"), "feature", first, "factors[0]", same_dtype=False)
    for i, f in enumerate(factors):
        if _overlaps(feature, f):
            raise ValueError(f"`feature` shares memory with `factors[{i}]`; pass a separate tensor")
    return _check_scalars(inv_dt, "inv_dt", len(factors) - 1)


def check_relative_l1_args(a: Tensor, b: Tensor, per_sample: bool) -> None:
    """Validate the arguments of ``relative_l1``.

    Raises:
        TypeError: On a non-tensor or an unsupported dtype.
        ValueError: On mismatched shapes/devices, or ``per_sample`` with a 0-d input.

    """
    _check_like(_check_float_tensor(a, "a"), "a", _check_float_tensor(b, "b"), "b", same_dtype=False)
    if per_sample and a.dim() == 0:
        raise ValueError("`per_sample=True` needs inputs with a batch dimension, got 0-d tensors")
