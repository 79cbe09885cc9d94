"""Pure-PyTorch twins of the fused kernels, their shared argument checks and memory-traffic counts.

Every function here runs on any device and never imports Triton. The ``torch_*`` functions are the
reference the Triton kernels are tested against and the fallback on CPU; the ``*_bytes`` functions
give the minimum number of bytes each operation must move, used for the GB/s figures.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

#: Storage dtypes the kernels accept (all arithmetic happens in float32).
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)


# --------------------------------------------------------------------------- memory traffic


def weighted_sum_bytes(numel: int, k: int, itemsize: int) -> int:
    """Bytes moved by :func:`torch_weighted_sum`: ``k`` tensors read and one written.

    Args:
        numel (int): Elements per tensor.
        k (int): Number of input tensors.
        itemsize (int): Bytes per element of the inputs and the output.

    Returns:
        int: ``(k + 1) * numel * itemsize``.

    """
    return (k + 1) * numel * itemsize


def guarded_weighted_sum_bytes(numel: int, k: int, itemsize: int) -> int:
    """Bytes moved by :func:`torch_guarded_weighted_sum`: the same as the plain weighted sum.

    The fallback tensor is one of the inputs (re-read from cache, not from memory) and the limit
    and the counter are single scalars, so the guard moves no extra bytes when fused.

    Returns:
        int: ``(k + 1) * numel * itemsize``.

    """
    return weighted_sum_bytes(numel, k, itemsize)


def taylor_update_bytes(numel: int, orders: int, factor_itemsize: int, feature_itemsize: int) -> int:
    """Bytes moved by :func:`torch_taylor_update_`: feature read, factors written, all but the last read.

    Args:
        numel (int): Elements per tensor.
        orders (int): Number of stored factors (derivative orders + 1).
        factor_itemsize (int): Bytes per element of the factors.
        feature_itemsize (int): Bytes per element of the feature.

    Returns:
        int: ``numel * (feature_itemsize + (2 * orders - 1) * factor_itemsize)``.

    """
    return numel * (feature_itemsize + (2 * orders - 1) * factor_itemsize)


def relative_l1_bytes(numel: int, a_itemsize: int, b_itemsize: int) -> int:
    """Bytes moved by :func:`torch_relative_l1`: both inputs read once (the partial sums are negligible).

    Args:
        numel (int): Elements per input.
        a_itemsize (int): Bytes per element of ``a``.
        b_itemsize (int): Bytes per element of ``b``.

    Returns:
        int: ``numel * (a_itemsize + b_itemsize)``.

    """
    return numel * (a_itemsize + b_itemsize)


# --------------------------------------------------------------------------- argument checks


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


def check_guard_args(tensors: Sequence[Tensor], fallback: int, limit: Tensor, refused: Tensor) -> None:
    """Validate the guard arguments of ``guarded_weighted_sum`` (the tensors are checked already).

    Raises:
        TypeError: On a non-int `fallback`, or a `limit`/`refused` of the wrong dtype.
        ValueError: On an out-of-range `fallback`, or a `limit`/`refused` that is not one element
            on the inputs' device.

    """
    if isinstance(fallback, bool) or not isinstance(fallback, int):
        raise TypeError(f"`fallback` must be an int index into `tensors`, got {type(fallback).__name__}")
    if not 0 <= fallback < len(tensors):
        raise ValueError(f"`fallback` must be in [0, {len(tensors) - 1}], got {fallback}")
    for name, t, dtype in (("limit", limit, torch.float32), ("refused", refused, torch.int32)):
        if not isinstance(t, Tensor) or t.dtype != dtype:
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"`{name}` must be a one-element {dtype} tensor, got {got}")
        if t.numel() != 1 or t.device != tensors[0].device:
            raise ValueError(
                f"`{name}` must be one element on {tensors[0].device}, got {t.numel()} on {t.device}"
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


def as_rows(t: Tensor) -> Tensor:
    """View ``t`` of shape ``(batch, ...)`` as ``(batch, n)`` (works for empty tensors too)."""
    return t.flatten(1) if t.dim() > 1 else t.unsqueeze(1)


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """Return ``num / den`` with ``0 / 0`` defined as 0 (``x / 0`` stays ``inf``, NaN propagates)."""
    return torch.where((num == 0) & (den == 0), torch.zeros_like(num), num / den)


# --------------------------------------------------------------------------- references


def torch_weighted_sum(
    tensors: Sequence[Tensor], weights: Sequence[float], out: Tensor | None = None
) -> Tensor:
    """Compute ``sum_k weights[k] * tensors[k]`` in float32 (reference for ``weighted_sum``).

    Evaluated left to right as ``acc = t0 * w0; acc = acc + t_k * w_k`` with each product and sum
    rounded to float32 (no fused multiply-add), then rounded once to the output dtype.

    Args:
        tensors (Sequence[Tensor]): K tensors of one shape, dtype and device, any layout.
        weights (Sequence[float]): K weights, rounded to float32.
        out (Tensor | None): Contiguous output of the inputs' shape and dtype; it may be exactly
            one of the inputs. Default None allocates a new contiguous tensor.

    Returns:
        Tensor: ``out`` (or the new tensor), in the inputs' dtype.

    """
    floats = check_weighted_sum_args(tensors, weights, out)
    acc = tensors[0].float() * floats[0]
    for t, w in zip(tensors[1:], floats[1:], strict=True):
        acc = acc + t.float() * w
    if out is None:
        out = torch.empty(tensors[0].shape, dtype=tensors[0].dtype, device=tensors[0].device)
    return out.copy_(acc)


def torch_guarded_weighted_sum(
    tensors: Sequence[Tensor], weights: Sequence[float], fallback: int, limit: Tensor, refused: Tensor
) -> Tensor:
    """Weighted sum whose refused elements fall back to an input (reference for ``guarded_weighted_sum``).

    ``acc`` is computed as in :func:`torch_weighted_sum`; an element is refused when
    ``|acc| <= limit`` fails (so NaN and inf are refused) and takes ``tensors[fallback]``'s value
    instead. ``refused`` is incremented by the number of refused elements, on the device.

    Args:
        tensors (Sequence[Tensor]): K tensors of one shape, dtype and device, any layout.
        weights (Sequence[float]): K weights, rounded to float32.
        fallback (int): Index of the tensor whose value replaces a refused element.
        limit (Tensor): One-element float32 tensor on the inputs' device.
        refused (Tensor): One-element int32 counter on the inputs' device, updated in place.

    Returns:
        Tensor: A new contiguous tensor in the inputs' dtype.

    """
    floats = check_weighted_sum_args(tensors, weights, None)
    check_guard_args(tensors, fallback, limit, refused)
    acc = tensors[0].float() * floats[0]
    for t, w in zip(tensors[1:], floats[1:], strict=True):
        acc = acc + t.float() * w
    accepted = acc.abs() <= limit.reshape(())
    refused.add_((~accepted).sum().to(refused.dtype).reshape(refused.shape))
    out = torch.empty(tensors[0].shape, dtype=tensors[0].dtype, device=tensors[0].device)
    return out.copy_(torch.where(accepted, acc, tensors[fallback].float()))


def torch_taylor_update_(factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float]) -> None:
    """Refresh all divided differences in place (reference for ``taylor_update_``).

    With ``old`` the values before the call: ``new[0] = feature`` and
    ``new[i + 1] = (new[i] - old[i]) * inv_dt[i]``, computed in float32 from the unrounded
    ``new[i]``; each ``new[i]`` is rounded once to the factors' dtype when stored.

    Args:
        factors (Sequence[Tensor]): N contiguous tensors of one shape/dtype/device, updated in place.
        feature (Tensor): Newest feature, the factors' shape and device, any supported dtype.
        inv_dt (Sequence[float]): N - 1 scales, ``1 / (x_n - x_{n-i-1})`` for order ``i + 1``.

    """
    scales = check_taylor_update_args(factors, feature, inv_dt)
    new = feature.float()
    for i, f in enumerate(factors):
        nxt = (new - f.float()) * scales[i] if i < len(scales) else None
        f.copy_(new)
        if nxt is not None:
            new = nxt


def torch_relative_l1(a: Tensor, b: Tensor, per_sample: bool = False) -> Tensor:
    """Compute ``sum|a - b| / sum|b|`` in float32, the ratio of means (reference for ``relative_l1``).

    Args:
        a (Tensor): Prediction, any shape, e.g. ``(batch, tokens, dim)``.
        b (Tensor): Target of the same shape and device (dtype may differ).
        per_sample (bool): Reduce each index of dim 0 separately. Default False.

    Returns:
        Tensor: float32, 0-d, or ``(batch,)`` with ``per_sample``. ``0 / 0`` gives 0, ``x / 0`` inf.

    """
    check_relative_l1_args(a, b, per_sample)
    diff = (a.float() - b.float()).abs()
    mag = b.float().abs()
    if per_sample:
        return safe_ratio(as_rows(diff).sum(1), as_rows(mag).sum(1))
    return safe_ratio(diff.sum(), mag.sum())
