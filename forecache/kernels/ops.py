"""The kernel operations of one cache site, with the backend chosen once, and no per-call checks.

A cache site (one forecast history) allocates its own tensors with matching shapes, dtypes and
devices, so it validates once, when it allocates, and picks the backend once with `ops_for`:
every later call goes straight to the arithmetic (the Triton launch or the PyTorch twin). The
public functions of :mod:`forecache.kernels.dispatch` check every argument and read
``FORECACHE_KERNELS`` on every call instead; use those anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

import forecache.kernels.torch_ops as torch_ops
from forecache.kernels.dispatch import backend_for

__all__ = ["KernelOps", "ops_for"]


@dataclass(frozen=True)
class KernelOps:
    """The unchecked operations of one backend.

    Attributes:
        backend: ``"triton"`` or ``"torch"``.
        weighted_sum: ``(tensors, weights, out=None) -> Tensor``, see `weighted_sum`.
        guarded_weighted_sum: ``(tensors, weights, fallback, limit, refused, limit_scale, slot,
            addend, out_dtype) -> Tensor``, see `guarded_weighted_sum`.
        taylor_update_: ``(factors, feature, inv_dt, peak=None)``, see `taylor_update_`.

    """

    backend: str
    weighted_sum: Callable[..., Tensor]
    guarded_weighted_sum: Callable[..., Tensor]
    taylor_update_: Callable[..., None]


TORCH_OPS = KernelOps(
    "torch",
    torch_ops.weighted_sum_unchecked,
    torch_ops.guarded_weighted_sum_unchecked,
    torch_ops.taylor_update_unchecked,
)


def ops_for(tensors: Sequence[Tensor]) -> KernelOps:
    """Return the operations a site holding `tensors` uses for its whole life.

    Reads ``FORECACHE_KERNELS`` now (not per call). For Triton, also checks that the device is
    one the kernels can reach.

    Raises:
        ValueError: If ``FORECACHE_KERNELS`` is invalid or the device is unreachable for Triton.
        ModuleNotFoundError: If ``FORECACHE_KERNELS=triton`` but Triton is not installed.

    """
    if backend_for(tensors[0]) == "torch":
        return TORCH_OPS
    import forecache.kernels.triton_ops as triton_ops

    triton_ops.check_device(tensors[0], "tensors[0]")
    return KernelOps(
        "triton",
        triton_ops.weighted_sum_unchecked,
        triton_ops.guarded_weighted_sum_unchecked,
        triton_ops.taylor_update_unchecked,
    )
