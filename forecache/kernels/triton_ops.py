"""Triton kernels (and their launch wrappers) for the cache's memory-bound element-wise work.

Imported only by the dispatcher when the Triton path is chosen: importing this module imports
Triton. Each operation is a pair: ``_x_kernel`` (the ``@triton.jit`` kernel) and ``x_unchecked``
(its launch, for arguments the caller checked: :mod:`forecache.kernels.dispatch` does), tested
against the reference ``torch_x`` in :mod:`forecache.kernels.torch_ops`.
The memory traffic of each kernel is given by the matching ``*_bytes`` function there.

On CPU tensors the kernels run only under Triton's interpreter: ``TRITON_INTERPRET=1`` must be set
before this module is first imported (it is read when the kernels are decorated).
"""

# Kernel arguments stay unannotated: Triton's JIT gives annotations a meaning (constexpr, const, types).
# ruff: noqa: ANN001, ANN202

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

from forecache.kernels.torch_ops import overflow_bound, safe_ratio

#: Elements per program of the element-wise kernels (8 bf16 per thread with 4 warps: 16-byte accesses).
ELEMENTWISE_BLOCK = 1024
ELEMENTWISE_WARPS = 4
#: Most elements per program of the reduction kernel (fewer for short rows); one pair of fp32 partials each.
REDUCE_BLOCK = 4096
REDUCE_WARPS = 8


@triton.jit
def _store_rounded(
    ptr,  # pointer to the output tensor (fp32, bf16 or fp16 elements)
    offs,  # int64 element offsets of this program
    x,  # float32 values to store
    mask,  # which offsets are in bounds
):
    # Round to nearest even once, in the store. bf16 is rounded by hand so the GPU and the CPU
    # interpreter (whose own fp32 -> bf16 cast truncates) write the same bits; NaN stays NaN.
    if ptr.dtype.element_ty == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        rne = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        nan = (bits >> 16) | 0x40
        y = tl.where(x != x, nan, rne).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        y = x.to(ptr.dtype.element_ty)
    tl.store(ptr + offs, y, mask=mask)


def _is_interpreted() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return isinstance(_weighted_sum_kernel, InterpretedFunction)


def check_device(t: Tensor, name: str) -> None:
    """Refuse tensors the kernels cannot reach: anything but CUDA, or CPU outside the interpreter."""
    if t.is_cuda or (t.device.type == "cpu" and _is_interpreted()):
        return
    raise ValueError(
        f"`{name}` is on {t.device}; the Triton kernels need CUDA tensors (CPU tensors only with "
        "TRITON_INTERPRET=1 set before triton is imported). Set FORECACHE_KERNELS=torch to use the reference."
    )


def _device_guard(t: Tensor) -> contextlib.AbstractContextManager[object]:
    """Make ``t``'s GPU the current one for the launch (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


# --------------------------------------------------------------------------- weighted sum
# Traffic: torch_ops.weighted_sum_bytes = (K reads + 1 write) * numel * itemsize.


@triton.jit
def _weighted_block(
    in_ptrs,  # tuple of K pointers to the contiguous inputs, n_elements each
    weights,  # tuple of K float32 weights
    n_elements,  # elements per tensor
    K: tl.constexpr,  # number of inputs
    BLOCK_SIZE: tl.constexpr,  # elements per program
):
    # This program's offsets, their bounds mask and sum_k weights[k] * inputs[k] there, in float32.
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    acc = tl.load(in_ptrs[0] + offs, mask=mask, other=0.0).to(tl.float32) * weights[0]
    for k in tl.static_range(1, K):
        acc = acc + tl.load(in_ptrs[k] + offs, mask=mask, other=0.0).to(tl.float32) * weights[k]
    return offs, mask, acc


@triton.jit
def _weighted_sum_kernel(
    in_ptrs,  # tuple of K pointers to the contiguous inputs, n_elements each
    weights,  # tuple of K float32 weights
    out_ptr,  # pointer to the contiguous output; may be exactly one of in_ptrs
    n_elements,  # elements per tensor
    K: tl.constexpr,  # number of inputs (one compiled variant per K)
    BLOCK_SIZE: tl.constexpr,  # elements per program
):
    offs, mask, acc = _weighted_block(in_ptrs, weights, n_elements, K, BLOCK_SIZE)
    _store_rounded(out_ptr, offs, acc, mask)


def weighted_sum_unchecked(
    tensors: Sequence[Tensor], weights: Sequence[float], out: Tensor | None = None
) -> Tensor:
    """``weighted_sum`` in one launch, for arguments the caller checked.

    Non-contiguous inputs are copied with ``.contiguous()`` first (an extra read and write each).
    On GPU the multiply-adds may be fused (FMA), so results can differ from the reference by one
    rounding of the float32 accumulator; under the interpreter they are bitwise equal.
    """
    inputs = tuple(t.contiguous() for t in tensors)
    if out is None:
        out = torch.empty(inputs[0].shape, dtype=inputs[0].dtype, device=inputs[0].device)
    n = out.numel()
    if n:
        with _device_guard(out):
            _weighted_sum_kernel[_grid(n)](
                inputs, tuple(weights), out, n, K=len(inputs), BLOCK_SIZE=ELEMENTWISE_BLOCK,
                num_warps=ELEMENTWISE_WARPS,
            )  # fmt: skip
    return out


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, ELEMENTWISE_BLOCK),)


# --------------------------------------------------------------------------- guarded weighted sum
# Traffic: torch_ops.guarded_weighted_sum_bytes = the weighted sum's; the guard (the limit and the
# output dtype's finite range) is free when fused.


@triton.jit
def _guarded_weighted_sum_kernel(
    in_ptrs,  # tuple of K pointers to the contiguous inputs, n_elements each
    weights,  # tuple of K float32 weights
    out_ptr,  # pointer to the contiguous output (a new tensor, in the output dtype)
    limit_ptr,  # pointer to one float32: the largest accepted |sum| before scaling
    limit_scale,  # float32 multiplying the limit (a margin over a running peak)
    finite_bound,  # float32: |value| at or above it is not finite in the output dtype (inf: float32)
    refused_ptr,  # pointer to an int64 counter array
    slot,  # which counter of refused_ptr to increment by the refused elements
    addend_ptr,  # pointer to a contiguous tensor added to the sum (read only when HAS_ADDEND)
    n_elements,  # elements per tensor
    K: tl.constexpr,  # number of inputs (one compiled variant per K)
    FALLBACK: tl.constexpr,  # index of the input whose value replaces a refused element
    HAS_ADDEND: tl.constexpr,  # whether addend_ptr is added to the result
    BLOCK_SIZE: tl.constexpr,  # elements per program
):
    offs, mask, acc = _weighted_block(in_ptrs, weights, n_elements, K, BLOCK_SIZE)
    accepted = tl.abs(acc) <= tl.load(limit_ptr) * limit_scale  # False for NaN and for inf
    last = tl.load(in_ptrs[FALLBACK] + offs, mask=mask, other=0.0).to(tl.float32)  # cache hit
    if HAS_ADDEND:
        extra = tl.load(addend_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        acc = acc + extra
        last = last + extra
    # the stored value must be finite in the output dtype too: checked here, no extra traffic
    accepted = accepted & (tl.abs(acc) < finite_bound)
    refused = (~accepted) & mask
    tl.atomic_add(refused_ptr + slot, tl.sum(refused.to(tl.int32), axis=0).to(tl.int64))
    _store_rounded(out_ptr, offs, tl.where(accepted, acc, last), mask)


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
    """``guarded_weighted_sum`` in one launch, for checked arguments (non-contiguous inputs copied first)."""
    inputs = tuple(t.contiguous() for t in tensors)
    dtype = inputs[0].dtype if out_dtype is None else out_dtype
    out = torch.empty(inputs[0].shape, dtype=dtype, device=inputs[0].device)
    n = out.numel()
    if n:
        extra = out if addend is None else addend.contiguous()
        with _device_guard(out):
            _guarded_weighted_sum_kernel[_grid(n)](
                inputs, tuple(weights), out, limit, float(limit_scale), overflow_bound(dtype), refused,
                slot, extra, n, K=len(inputs), FALLBACK=fallback, HAS_ADDEND=addend is not None,
                BLOCK_SIZE=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS,
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- Taylor update
# Traffic: torch_ops.taylor_update_bytes = feature read + N factor writes + N - 1 factor reads.


@triton.jit
def _taylor_update_kernel(
    factor_ptrs,  # tuple of N pointers to the contiguous factors, updated in place
    feature_ptr,  # pointer to the contiguous newest feature (any float dtype)
    inv_dt,  # tuple of N float32 scales; order i + 1 uses inv_dt[i]; the last is padding (never empty)
    peak_ptr,  # pointer to one float32 raised to max|feature| (read only when TRACK_PEAK)
    n_elements,  # elements per tensor
    N: tl.constexpr,  # number of factors (one compiled variant per N)
    TRACK_PEAK: tl.constexpr,  # whether to raise peak_ptr to this block's largest magnitude
    BLOCK_SIZE: tl.constexpr,  # elements per program
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    new = tl.load(feature_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if TRACK_PEAK:  # from the values already loaded: no extra traffic; NaN counts as inf
        magnitude = tl.where(new == new, tl.abs(new), float("inf"))
        magnitude = tl.max(tl.where(mask, magnitude, 0.0), axis=0)
        # non-negative floats order like their bits as int32: one integer atomic, not two
        tl.atomic_max(peak_ptr.to(tl.pointer_type(tl.int32)), magnitude.to(tl.int32, bitcast=True))
    for i in tl.static_range(N):
        if i < N - 1:
            old = tl.load(factor_ptrs[i] + offs, mask=mask, other=0.0).to(tl.float32)
            _store_rounded(factor_ptrs[i], offs, new, mask)
            new = (new - old) * inv_dt[i]
        else:
            _store_rounded(factor_ptrs[i], offs, new, mask)


def taylor_update_unchecked(
    factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float], peak: Tensor | None = None
) -> None:
    """``taylor_update_`` in one launch, for checked arguments (a non-contiguous feature copied first)."""
    n = feature.numel()
    if n == 0:
        return
    source = feature.contiguous()
    with _device_guard(feature):
        _taylor_update_kernel[_grid(n)](
            tuple(factors), source, (*inv_dt, 0.0), source if peak is None else peak, n,
            N=len(factors), TRACK_PEAK=peak is not None, BLOCK_SIZE=ELEMENTWISE_BLOCK,
            num_warps=ELEMENTWISE_WARPS,
        )  # fmt: skip


# --------------------------------------------------------------------------- relative L1
# Traffic: torch_ops.relative_l1_bytes = both inputs read once (+ 8 bytes of partials per program).


@triton.jit
def _relative_l1_kernel(
    a_ptr,  # pointer to the contiguous prediction, viewed as (rows, n_cols)
    b_ptr,  # pointer to the contiguous target, same view
    partial_ptr,  # float32 output: n_partials sums of |a - b|, then n_partials sums of |b|
    n_cols,  # elements per row
    blocks_per_row,  # programs per row, cdiv(n_cols, BLOCK_SIZE)
    n_partials,  # total programs, rows * blocks_per_row
    BLOCK_SIZE: tl.constexpr,  # elements per program
):
    pid = tl.program_id(0).to(tl.int64)
    row = pid // blocks_per_row
    cols = (pid % blocks_per_row) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    offs = row * n_cols + cols
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    in_range = pid < n_partials
    tl.store(partial_ptr + pid, tl.sum(tl.abs(a - b), axis=0), mask=in_range)
    tl.store(partial_ptr + n_partials + pid, tl.sum(tl.abs(b), axis=0), mask=in_range)


def relative_l1_unchecked(a: Tensor, b: Tensor, per_sample: bool = False) -> Tensor:
    """``relative_l1`` in one pass over the inputs, without a host sync, for arguments the caller checked.

    Two-stage reduction: each program sums up to ``REDUCE_BLOCK`` elements of one row in float32,
    then ``torch.sum`` adds the per-program partials. With ``per_sample`` every row gets at least one
    program, so many tiny rows (e.g. a 1-D input) launch one small program each. The summation
    order differs from ``torch.sum``, so results agree
    with the reference to float32 rounding, not bitwise. Non-contiguous inputs are copied first.
    """
    rows = a.shape[0] if per_sample else 1
    n_cols = a.numel() // rows if rows else 0
    block = min(REDUCE_BLOCK, triton.next_power_of_2(max(n_cols, 16)))
    blocks_per_row = triton.cdiv(n_cols, block)
    n_partials = rows * blocks_per_row
    partials = torch.empty(2 * n_partials, dtype=torch.float32, device=a.device)
    if n_partials > 0:
        with _device_guard(a):
            _relative_l1_kernel[(n_partials,)](
                a.contiguous(),
                b.contiguous(),
                partials,
                n_cols,
                blocks_per_row,
                n_partials,
                BLOCK_SIZE=block,
                num_warps=REDUCE_WARPS if block == REDUCE_BLOCK else 4,
            )
    sums = partials.view(2, rows, blocks_per_row).sum(-1)
    ratio = safe_ratio(sums[0], sums[1])
    return ratio if per_sample else ratio.reshape(())
