"""Fused element-wise kernels of the cache (Triton on CUDA, PyTorch elsewhere) behind one API.

Importing this package never imports Triton nor initialises CUDA; see :mod:`.dispatch` for how the
backend is chosen and the ``FORECACHE_KERNELS`` environment variable that forces one.
"""

from forecache.kernels.dispatch import (
    ALLOWED_VALUES,
    ENV_VAR,
    backend_for,
    guarded_weighted_sum,
    relative_l1,
    taylor_update_,
    weighted_sum,
)
from forecache.kernels.torch_ops import (
    guarded_weighted_sum_bytes,
    relative_l1_bytes,
    taylor_update_bytes,
    torch_guarded_weighted_sum,
    torch_relative_l1,
    torch_taylor_update_,
    torch_weighted_sum,
    weighted_sum_bytes,
)

__all__ = [
    "ALLOWED_VALUES",
    "ENV_VAR",
    "backend_for",
    "guarded_weighted_sum",
    "guarded_weighted_sum_bytes",
    "relative_l1",
    "relative_l1_bytes",
    "taylor_update_",
    "taylor_update_bytes",
    "torch_guarded_weighted_sum",
    "torch_relative_l1",
    "torch_taylor_update_",
    "torch_weighted_sum",
    "weighted_sum",
    "weighted_sum_bytes",
]
