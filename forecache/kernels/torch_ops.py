"""Pure-PyTorch twins of the fused kernels, their shared argument checks and memory-traffic counts.

Every function here runs on any device and never imports Triton. The ``torch_*`` functions are the
reference the Triton kernels are tested against and the fallback on CPU; the ``*_bytes`` functions
give the minimum number of bytes each operation must move, used for the GB/s figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from forecache.kernels.checks import (
    check_guard_args,
    check_peak,
    check_relative_l1_args,
    check_taylor_update_args,
    check_weighted_sum_args,
)

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


def guarded_weighted_sum_bytes(numel: int, k: int, itemsize: int, addend: bool = False) -> int:
    """Bytes moved by :func:`torch_guarded_weighted_sum`: the plain weighted sum's, plus the addend.

    The fallback tensor is one of the inputs (re-read from cache, not from memory) and the limit
    and the counter are single scalars, so the guard moves no extra bytes when fused. An addend
    (the block stack's input, for a forecast residual) is one more tensor read; unfused it would
    cost a separate pass reading two tensors and writing one.

    Returns:
        int: ``(k + 1 + addend) * numel * itemsize``.

    """
    return weighted_sum_bytes(numel, k + int(addend), itemsize)


def taylor_update_bytes(numel: int, orders: int, factor_itemsize: int, feature_itemsize: int) -> int:
    """Bytes moved by :func:`torch_taylor_update_`: feature read, factors written, all but the last read.

    Tracking the feature's peak magnitude (``peak=``) adds no traffic when fused: the maximum is
    taken from the feature's values already loaded.

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


# --------------------------------------------------------------------------- references
# The ``*_unchecked`` forms are the arithmetic alone, for callers that validated their tensors once
# (the cache's sites); the ``torch_*`` forms check their arguments first.


def _accumulate(tensors: Sequence[Tensor], weights: Sequence[float]) -> tuple[Tensor, Tensor | None]:
    """``sum_k weights[k] * tensors[k]`` in float32, left to right, each product and sum rounded.

    Returns the sum and a float32 scratch tensor of its shape (None when K = 1), reused for every
    product so a K-term sum allocates two tensors, not 2K - 1. No fused multiply-add: the products
    are rounded before they are added, as in the Triton kernels.
    """
    first = tensors[0]
    if first.dtype == torch.float32:
        acc = torch.mul(first, weights[0], out=_f32_like(first))
    else:
        acc = first.float().mul_(weights[0])
    scratch = _f32_like(tensors[0]) if len(tensors) > 1 else None
    for t, w in zip(tensors[1:], weights[1:], strict=True):
        assert scratch is not None
        if t.dtype == torch.float32:
            torch.mul(t, w, out=scratch)
        else:
            scratch.copy_(t).mul_(w)
        acc.add_(scratch)
    return acc, scratch


def _f32_like(t: Tensor) -> Tensor:
    return torch.empty(t.shape, dtype=torch.float32, device=t.device)


def _new_like(t: Tensor) -> Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def _finish(acc: Tensor, like: Tensor, out: Tensor | None) -> Tensor:
    """Round the float32 result once into `out`, or hand it over when it is float32 already."""
    if out is None and like.dtype == torch.float32:
        return acc
    return (_new_like(like) if out is None else out).copy_(acc)


def weighted_sum_unchecked(
    tensors: Sequence[Tensor], weights: Sequence[float], out: Tensor | None = None
) -> Tensor:
    """:func:`torch_weighted_sum` without the argument checks."""
    acc, _ = _accumulate(tensors, weights)
    return _finish(acc, tensors[0], out)


def overflow_bound(dtype: torch.dtype) -> float:
    """Return the smallest float32 magnitude that rounds to infinity when stored in `dtype`.

    A float32 value ``v`` is finite in `dtype` (rounded to nearest even) exactly when
    ``|v| < overflow_bound(dtype)``: the largest finite value plus half its unit in the last
    place (65520 for float16, ``2**128 - 2**119`` for bfloat16), and ``inf`` for float32 itself
    (where only inf and NaN are not finite). NaN fails the comparison too.

    Args:
        dtype (torch.dtype): float32, bfloat16 or float16.

    Returns:
        float: The bound, exactly representable in float32.

    """
    if dtype == torch.float32:
        return math.inf
    info = torch.finfo(dtype)
    mantissa_bits = round(-math.log2(info.eps))
    return float(info.max) + 2.0 ** (math.floor(math.log2(info.max)) - mantissa_bits - 1)


def guarded_weighted_sum_unchecked(
    tensors: Sequence[Tensor],
    weights: Sequence[float],
    fallback: int,
    limit: Tensor,
    refused: Tensor,
    limit_scale: float = 1.0,
    slot: int = 0,
    addend: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> Tensor:
    """:func:`torch_guarded_weighted_sum` without the argument checks (no host synchronisation)."""
    dtype = tensors[0].dtype if out_dtype is None else out_dtype
    acc, scratch = _accumulate(tensors, weights)
    bound = limit.reshape(()) * limit_scale
    return refuse_diverging(acc, tensors[fallback], bound, refused, slot, addend, dtype, scratch)


def refuse_diverging(
    acc: Tensor,
    last: Tensor,
    bound: Tensor,
    refused: Tensor,
    slot: int = 0,
    addend: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    scratch: Tensor | None = None,
) -> Tensor:
    """Apply the forecast guard to a float32 forecast `acc` (updated in place), counting on the device.

    An element is refused when ``|acc| <= bound`` fails (NaN and inf fail it) or when ``acc +
    addend`` would not be finite once rounded to `dtype`; it then takes ``last + addend``, and
    ``refused[slot]`` counts it. `scratch` (a float32 tensor of `acc`'s shape) saves one allocation.
    Returns the result in `dtype`.
    """
    magnitude = torch.abs(acc, out=scratch) if scratch is not None else acc.abs()
    accepted = magnitude <= bound
    last = last if last.dtype == torch.float32 else last.float()
    if addend is not None:
        acc.add_(addend)
        last = last + addend
    # the value must also be finite once stored in the output dtype (after the addend), else refused
    accepted &= torch.abs(acc.detach(), out=magnitude) < overflow_bound(dtype)
    # count_nonzero reads the mask as is; sum(dtype=int64) materialised an int64 copy of it first
    refused.view(-1)[slot] += accepted.numel() - torch.count_nonzero(accepted)
    if acc.requires_grad or last.requires_grad:  # an addend under autograd: no out= (keeps its graph)
        acc = torch.where(accepted, acc, last)
    else:
        torch.where(accepted, acc, last, out=acc)
    return acc if dtype == torch.float32 else acc.to(dtype)


def taylor_update_unchecked(
    factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float], peak: Tensor | None = None
) -> None:
    """:func:`torch_taylor_update_` without the argument checks (one temporary per order)."""
    if peak is not None and feature.numel():  # NaN counts as inf: it switches the limit off, never on
        # one min/max pass: the largest magnitude is max(-min, max); aminmax is ~20x faster on CPU
        # than vector_norm(ord=inf) (measured: 19 vs 394 us on 1.2 MB) and exact
        low, high = torch.aminmax(feature)
        magnitude = torch.maximum(low.neg(), high).to(torch.float32)
        magnitude = torch.where(magnitude.isnan(), float("inf"), magnitude)
        torch.maximum(peak, magnitude.reshape(peak.shape), out=peak)
    new = feature if feature.dtype == torch.float32 else feature.float()
    for i, f in enumerate(factors):
        if i < len(inv_dt):
            nxt = torch.sub(new, f).mul_(inv_dt[i])  # f is upcast exactly; rounded as (new - f) * s
            f.copy_(new)
            new = nxt
        else:
            f.copy_(new)


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
    return weighted_sum_unchecked(tensors, floats, out)


def torch_guarded_weighted_sum(
    tensors: Sequence[Tensor],
    weights: Sequence[float],
    fallback: int,
    limit: Tensor,
    refused: Tensor,
    *,
    limit_scale: float = 1.0,
    slot: int = 0,
    addend: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> Tensor:
    """Weighted sum whose refused elements fall back to an input (reference for ``guarded_weighted_sum``).

    ``acc`` is computed as in :func:`torch_weighted_sum`, then ``total = acc + addend`` (in float32;
    ``acc`` without an addend). An element is refused when ``|acc| <= limit * limit_scale`` fails
    (so NaN and inf are refused) or when ``total`` would not be finite once rounded to the output
    dtype (``|total| >= overflow_bound(out_dtype)``); it then takes ``tensors[fallback] + addend``
    instead. ``refused[slot]`` is incremented by the number of refused elements, on the device. The
    result is rounded once to the output dtype.

    Args:
        tensors (Sequence[Tensor]): K tensors of one shape, dtype and device, any layout.
        weights (Sequence[float]): K weights, rounded to float32.
        fallback (int): Index of the tensor whose value replaces a refused element.
        limit (Tensor): One-element float32 tensor on the inputs' device.
        refused (Tensor): int64 counter (0-d or 1-d) on the inputs' device, updated in place.
        limit_scale (float): Multiplies `limit` (a margin over a running peak). Default 1.0.
        slot (int): Index of the counter element to increment. Default 0.
        addend (Tensor | None): Added after the weighted sum, e.g. the block stack's input to which
            a forecast residual belongs; any supported dtype. Default None.
        out_dtype (torch.dtype | None): dtype of the result (float32, bfloat16 or float16).
            Default None: the inputs' dtype.

    Returns:
        Tensor: A new contiguous tensor in the output dtype.

    """
    floats = check_weighted_sum_args(tensors, weights, None)
    scale = check_guard_args(tensors, fallback, limit, refused, limit_scale, slot, addend, out_dtype)
    return guarded_weighted_sum_unchecked(
        tensors, floats, fallback, limit, refused, scale, slot, addend, out_dtype
    )


def torch_taylor_update_(
    factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float], peak: Tensor | None = None
) -> None:
    """Refresh all divided differences in place (reference for ``taylor_update_``).

    With ``old`` the values before the call: ``new[0] = feature`` and
    ``new[i + 1] = (new[i] - old[i]) * inv_dt[i]``, computed in float32 from the unrounded
    ``new[i]``; each ``new[i]`` is rounded once to the factors' dtype when stored. With one factor
    this is a copy.

    Args:
        factors (Sequence[Tensor]): N contiguous tensors of one shape/dtype/device, updated in place.
        feature (Tensor): Newest feature, the factors' shape and device, any supported dtype.
        inv_dt (Sequence[float]): N - 1 scales, ``1 / (x_n - x_{n-i-1})`` for order ``i + 1``.
        peak (Tensor | None): One-element float32 tensor raised in place to the largest magnitude
            of `feature` (NaN counts as inf), for the forecast guard's limit. Default None.

    """
    scales = check_taylor_update_args(factors, feature, inv_dt)
    check_peak(peak, feature)
    taylor_update_unchecked(factors, feature, scales, peak)


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
    return relative_l1_unchecked(a, b, per_sample)


def relative_l1_unchecked(a: Tensor, b: Tensor, per_sample: bool = False) -> Tensor:
    """:func:`torch_relative_l1` without the argument checks."""
    diff = (a.float() - b.float()).abs()
    mag = b.float().abs()
    if per_sample:
        return safe_ratio(as_rows(diff).sum(1), as_rows(mag).sum(1))
    return safe_ratio(diff.sum(), mag.sum())


def as_rows(t: Tensor) -> Tensor:
    """View ``t`` of shape ``(batch, ...)`` as ``(batch, n)`` (works for empty tensors too)."""
    return t.flatten(1) if t.dim() > 1 else t.unsqueeze(1)


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """Return ``num / den`` with ``0 / 0`` defined as 0 (``x / 0`` stays ``inf``, NaN propagates)."""
    return torch.where((num == 0) & (den == 0), torch.zeros_like(num), num / den)
