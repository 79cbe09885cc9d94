"""The checked public kernel functions: each call picks Triton or the PyTorch reference.

Rule: Triton for CUDA tensors when a supported ``triton`` (>= `TRITON_FLOOR`) is installed, the
reference otherwise.
The environment variable ``FORECACHE_KERNELS`` (read at every call of these functions) forces
either: ``triton``, ``torch``, or ``auto`` (same as unset). Triton is imported only when the
Triton path runs.

Each operation exists once per backend, as arithmetic without checks (``*_unchecked`` in
:mod:`.torch_ops` and :mod:`.triton_ops`); the public functions here check their arguments, pick a
backend with `ops_for` and call it. The cache's own hot path validates once per site (its tensors
are its own, allocated with matching shapes, dtypes and devices), keeps the `KernelOps` of
`ops_for` for the site's life and calls the arithmetic directly.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

import forecache.kernels.torch_ops as torch_ops
from forecache.kernels.checks import (
    check_guard_args,
    check_peak,
    check_relative_l1_args,
    check_taylor_update_args,
    check_weighted_sum_args,
)

#: Name of the environment variable that forces a backend.
ENV_VAR = "FORECACHE_KERNELS"
#: Values ``FORECACHE_KERNELS`` accepts.
ALLOWED_VALUES: tuple[str, ...] = ("auto", "triton", "torch")


#: The oldest Triton the kernels are tested with (kernel arguments that are tuples of pointers, and
#: the interpreter the CPU tests run them in). torch >= 2.8 ships it; with an older one installed
#: the kernels fall back to their PyTorch references.
TRITON_FLOOR = (3, 4)


@functools.cache
def triton_version() -> tuple[int, ...] | None:
    """Return the installed Triton's ``(major, minor, patch)`` (read without importing it), None if absent."""
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        text = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def triton_available() -> bool:
    """Whether a Triton the kernels support (>= `TRITON_FLOOR`) is installed."""
    version = triton_version()
    return version is not None and version >= TRITON_FLOOR


def forced_backend() -> str | None:
    """Return the backend forced by ``FORECACHE_KERNELS``, or None when it is unset, empty or ``auto``.

    Raises:
        ValueError: If the variable holds anything other than ``auto``, ``triton`` or ``torch``.

    """
    raw = os.environ.get(ENV_VAR, "")
    value = raw.strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ALLOWED_VALUES:
        allowed = ", ".join(repr(v) for v in ALLOWED_VALUES)
        raise ValueError(f"{ENV_VAR} must be one of {allowed} (or unset), got {raw!r}")
    return value


def backend_for(tensor: Tensor) -> str:
    """Return the backend a kernel call on ``tensor`` will use: ``"triton"`` or ``"torch"``.

    Args:
        tensor (Tensor): The call's first tensor argument (its device decides under ``auto``).

    Returns:
        str: ``"triton"`` or ``"torch"``.

    Raises:
        ValueError: If ``FORECACHE_KERNELS`` holds an invalid value.
        ModuleNotFoundError: If ``FORECACHE_KERNELS=triton`` but Triton is not installed.

    """
    forced = forced_backend()
    if forced == "triton" and not triton_available():
        version = triton_version()
        found = "is not installed" if version is None else f"is {'.'.join(map(str, version))}"
        floor = ".".join(map(str, TRITON_FLOOR))
        raise ModuleNotFoundError(
            f"{ENV_VAR}=triton but the 'triton' package {found}; forecache's kernels need triton>={floor}: "
            "install it with `pip install 'forecache[triton]'` or unset the variable"
        )
    if forced is not None:
        return forced
    return "triton" if tensor.is_cuda and triton_available() else "torch"


@dataclass(frozen=True)
class KernelOps:
    """The unchecked operations of one backend.

    Attributes:
        backend: ``"triton"`` or ``"torch"``.
        weighted_sum: ``(tensors, weights, out=None) -> Tensor``, see `weighted_sum`.
        guarded_weighted_sum: ``(tensors, weights, fallback, limit, refused, limit_scale, slot,
            addend, out_dtype) -> Tensor``, see `guarded_weighted_sum`.
        taylor_update_: ``(factors, feature, inv_dt, peak=None)``, see `taylor_update_`.
        relative_l1: ``(a, b, per_sample=False) -> Tensor``, see `relative_l1`.

    """

    backend: str
    weighted_sum: Callable[..., Tensor]
    guarded_weighted_sum: Callable[..., Tensor]
    taylor_update_: Callable[..., None]
    relative_l1: Callable[..., Tensor]


TORCH_OPS = KernelOps(
    "torch",
    torch_ops.weighted_sum_unchecked,
    torch_ops.guarded_weighted_sum_unchecked,
    torch_ops.taylor_update_unchecked,
    torch_ops.relative_l1_unchecked,
)


def ops_for(tensors: Sequence[Tensor], name: str = "tensors[0]") -> KernelOps:
    """Return the operations for `tensors`, whose first one decides the backend (see `backend_for`).

    For Triton, also checks that the device is one the kernels can reach (`name` is the argument
    the error names). A cache site calls it once, when it allocates, and keeps the result.

    Raises:
        ValueError: If ``FORECACHE_KERNELS`` is invalid or the device is unreachable for Triton.
        ModuleNotFoundError: If ``FORECACHE_KERNELS=triton`` but Triton is not installed.

    """
    if backend_for(tensors[0]) == "torch":
        return TORCH_OPS
    import forecache.kernels.triton_ops as triton_ops

    triton_ops.check_device(tensors[0], name)
    return _triton_ops()


@functools.cache
def _triton_ops() -> KernelOps:
    """Build the Triton operations once (importing `triton_ops` imports Triton)."""
    import forecache.kernels.triton_ops as triton_ops

    return KernelOps(
        "triton",
        triton_ops.weighted_sum_unchecked,
        triton_ops.guarded_weighted_sum_unchecked,
        triton_ops.taylor_update_unchecked,
        triton_ops.relative_l1_unchecked,
    )


def weighted_sum(tensors: Sequence[Tensor], weights: Sequence[float], out: Tensor | None = None) -> Tensor:
    """Compute ``sum_k weights[k] * tensors[k]`` in one pass (Taylor prediction, Adams-Bashforth step).

    Reads each input once and writes the result once, accumulating in float32 and rounding once to
    the inputs' dtype; the eager alternative materialises K float32 temporaries. Inference only: no
    autograd through the Triton path.

    Args:
        tensors (Sequence[Tensor]): K >= 1 tensors of one shape (e.g. ``(batch, tokens, dim)``),
            dtype (float32, bfloat16 or float16) and device. Non-contiguous ones are copied first.
        weights (Sequence[float]): K weights, rounded to float32.
        out (Tensor | None): Contiguous output of the inputs' shape and dtype; may be exactly one of
            the inputs (e.g. ``tensors[0]`` for in-place accumulation), never a partial overlap.
            Default None allocates a new contiguous tensor.

    Returns:
        Tensor: ``out`` or the new tensor, in the inputs' dtype.

    Raises:
        TypeError: On an unsupported dtype or a non-numeric weight.
        ValueError: On mismatched shapes, devices or lengths, or a non-contiguous/overlapping ``out``.

    """
    floats = check_weighted_sum_args(tensors, weights, out)
    return ops_for(tensors).weighted_sum(tensors, floats, out)


def guarded_weighted_sum(
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
    """Compute a forecast ``sum_k weights[k] * tensors[k]`` and refuse its diverging elements, in one pass.

    An element whose float32 sum is not finite or exceeds ``limit * limit_scale`` in magnitude,
    or whose result (after the `addend`) would not be finite once rounded to the output dtype,
    takes the value of ``tensors[fallback]`` (the last computed feature, plus the addend) instead,
    and ``refused[slot]`` counts it, all on the device: the cache's divergence guard without a host
    synchronisation and, fused, without any extra memory traffic over the plain weighted sum (the
    eager alternative reads the forecast twice more and writes it once more). An `addend` is added
    to the result in the same pass (a forecast residual onto the block stack's input), saving the
    separate pass that reads two tensors and writes one.

    Args:
        tensors (Sequence[Tensor]): K >= 1 tensors of one shape (e.g. ``(batch, tokens, dim)``),
            dtype (float32, bfloat16 or float16) and device.
        weights (Sequence[float]): K weights, rounded to float32.
        fallback (int): Index in `tensors` of the value that replaces a refused element.
        limit (Tensor): One-element float32 tensor on the same device: the largest accepted
            magnitude before `limit_scale` (e.g. the running peak kept by `taylor_update_`).
        refused (Tensor): int64 counter, 0-d or 1-d, on the same device; ``refused[slot]`` is
            incremented in place by the number of refused elements (int64: a large video step
            refuses more than 2**31 elements without wrapping).
        limit_scale (float): Finite factor > 0 multiplying `limit` (the guard's margin). Default 1.0.
        slot (int): Index of the counter to increment (one per step: one allocation per
            generation, one read at its end). Default 0.
        addend (Tensor | None): A tensor of the inputs' shape and device (any supported dtype)
            added to the weighted sum in the same pass. Default None.
        out_dtype (torch.dtype | None): dtype of the result, e.g. the feature's when the history is
            stored in another precision: the sum is rounded once into it, and the guard refuses
            what it could not hold. Default None: the inputs' dtype.

    Returns:
        Tensor: A new contiguous tensor in the output dtype.

    Raises:
        TypeError: On an unsupported dtype, a non-numeric weight or a bad guard argument type.
        ValueError: On mismatched shapes, devices or lengths, or a `fallback`/`slot` out of range.

    """
    floats = check_weighted_sum_args(tensors, weights, None)
    scale = check_guard_args(tensors, fallback, limit, refused, limit_scale, slot, addend, out_dtype)
    return ops_for(tensors).guarded_weighted_sum(
        tensors, floats, fallback, limit, refused, scale, slot, addend, out_dtype
    )


def taylor_update_(
    factors: Sequence[Tensor], feature: Tensor, inv_dt: Sequence[float], peak: Tensor | None = None
) -> None:
    """Update all stored divided differences in place, in one pass (TaylorSeer-style forecasting).

    With ``old`` the values before the call: ``new[0] = feature`` and
    ``new[i + 1] = (new[i] - old[i]) * inv_dt[i]``. The arithmetic is float32 from the unrounded
    ``new[i]``; each factor is rounded once to its storage dtype. On a non-uniform grid of steps
    ``x``, pass ``inv_dt[i] = 1 / (x_n - x_{n-i-1})`` to keep Newton divided differences. With one
    factor it is a copy (an Adams-Bashforth ring slot). With `peak`, the feature's largest
    magnitude is folded into it from the values already loaded: the guard's limit at no extra
    memory traffic.

    Args:
        factors (Sequence[Tensor]): N >= 1 contiguous tensors of one shape, dtype (float32, bfloat16
            or float16) and device; updated in place. They must not share memory.
        feature (Tensor): Newest feature, the factors' shape and device, any of those dtypes; must
            not share memory with a factor. A non-contiguous one is copied first.
        inv_dt (Sequence[float]): N - 1 per-order scales, rounded to float32.
        peak (Tensor | None): One-element float32 tensor on the feature's device, raised in place
            to ``max|feature|`` (NaN counts as inf); it must start non-negative. Default None.

    Raises:
        TypeError: On an unsupported dtype or a non-numeric scale.
        ValueError: On mismatched shapes, devices or lengths, a non-contiguous factor, or shared memory.

    """
    scales = check_taylor_update_args(factors, feature, inv_dt)
    check_peak(peak, feature)
    ops_for(factors, "factors[0]").taylor_update_(factors, feature, scales, peak)


def relative_l1(a: Tensor, b: Tensor, per_sample: bool = False) -> Tensor:
    """Relative L1 distance ``mean|a - b| / mean|b|`` in one pass over the inputs (the cache gate).

    Computed as ``sum|a - b| / sum|b|`` in float32 on the device, with no host synchronisation.

    Args:
        a (Tensor): Prediction, e.g. ``(batch, tokens, dim)``, float32/bfloat16/float16.
        b (Tensor): Target of the same shape and device; its dtype may differ from ``a``'s.
        per_sample (bool): Reduce each index of dim 0 separately. Default False.

    Returns:
        Tensor: float32 on the inputs' device: 0-d, or ``(batch,)`` with ``per_sample``. When
        ``sum|b| == 0`` the result is 0 if ``a == b`` everywhere, else ``inf``; NaN propagates.

    Raises:
        TypeError: On an unsupported dtype.
        ValueError: On mismatched shapes or devices, or ``per_sample`` with 0-d inputs.

    """
    check_relative_l1_args(a, b, per_sample)
    return ops_for([a], "a").relative_l1(a, b, per_sample)
