"""The forecaster axis: its Protocols, its registry, and the tensor storage every history shares.

A forecaster is a frozen spec (what users configure) that makes one runtime `History` per cached
tensor. A history is fed ``update(feature, x)`` at computed steps and asked ``predict(x)`` at
skipped ones, where ``x`` is the time coordinate (the step index or the scheduler's timestep).

To add a forecaster: one module with a frozen dataclass that has a ``coordinate`` and a
``make_history(dtype, memo, track_peak=False)``, decorated with ``@register_forecaster("name")``,
plus its test. The config parser, the CLI and config files then find it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from forecache.accel.registry import Registry
from forecache.kernels.checks import SUPPORTED_DTYPES
from forecache.kernels.dispatch import KernelOps, ops_for

__all__ = [
    "COORDINATES",
    "FORECASTERS",
    "Coordinate",
    "Forecaster",
    "Guard",
    "History",
    "Memo",
    "TensorHistory",
    "check_storage_range",
    "make_history",
    "register_forecaster",
]

Coordinate = Literal["step", "timestep"]
COORDINATES: tuple[str, ...] = ("step", "timestep")
MAX_ORDER = 8
Memo = dict[Hashable, Any]
"""Weights memoised per context and step: every site of a context shares its coordinates."""

FORECASTERS: Registry[type] = Registry("forecaster")


def register_forecaster(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Register a forecaster spec class under `name` (a class decorator).

    Example:
        >>> @register_forecaster("my-reuse")  # doctest: +SKIP
        ... @dataclass(frozen=True)
        ... class MyReuse:
        ...     coordinate = "step"
        ...     def make_history(self, dtype, memo, track_peak=False): ...

    """
    return FORECASTERS.register(name, replace=replace)


class Guard:
    """The divergence guard of one context: a margin, and one refusal counter per step and device.

    A forecast element that is not finite or exceeds ``margin`` times the largest magnitude its
    tensor had at the computed steps is refused (it takes its last computed value) and counted in
    ``counter(device)[slot]``, on the device; so is an element that would not be finite in the
    feature's dtype. The counters are allocated once per generation (one int64 per step: a step
    of a large video refuses more than 2**31 elements without wrapping) and read once, at its end.

    Args:
        margin: The factor over the running peak (``CacheConfig.fallback_margin``).
        length: Counter slots to allocate up front (the generation's steps when known).

    """

    def __init__(self, margin: float, length: int = 64) -> None:
        self.margin = margin
        self.slot = 0
        self._length = max(length, 1)
        self._counters: dict[torch.device, Tensor] = {}

    def counter(self, device: torch.device) -> Tensor:
        """Return the int64 counters on `device` (created on first use, grown past the last slot)."""
        counter = self._counters.get(device)
        if counter is None or counter.numel() <= self.slot:
            size = max(self._length, 2 * (self.slot + 1))
            grown = torch.zeros(size, dtype=torch.int64, device=device)
            if counter is not None:
                grown[: counter.numel()].copy_(counter)
            counter = self._counters[device] = grown
        return counter

    def refused_steps(self) -> Tensor | None:
        """Return a device-side count of the slots (steps) with any refusal; None if nothing was guarded."""
        counters = list(self._counters.values())
        if not counters:
            return None
        size = max(c.numel() for c in counters)
        total = torch.zeros(size, dtype=torch.int64, device=counters[0].device)
        for c in counters:  # a model split over devices: gather without a host read
            total[: c.numel()] += c.to(total.device, non_blocking=True)
        return (total > 0).sum()

    def refused_now(self, group: Any = None) -> bool:
        """Whether the current slot refused anything (one host read; the ``"recompute"`` fallback).

        Args:
            group: A `torch.distributed` process group whose ranks hold shards of the same tensors
                (context parallelism): the counts are summed over it, so every rank answers alike.
                None (default) answers for this rank's tensors.

        """
        counts = [c[self.slot] for c in self._counters.values() if c.numel() > self.slot]
        if group is None:
            return any(bool(c > 0) for c in counts)
        total = torch.stack(counts).sum().reshape(1) if counts else torch.zeros(1, dtype=torch.int64)
        torch.distributed.all_reduce(total, group=group)
        return bool(total > 0)


def _max_exponent(dtype: torch.dtype) -> int:
    """Return the binary exponent of the largest finite value of `dtype` (15 for float16, else 127)."""
    return math.floor(math.log2(torch.finfo(dtype).max))


def check_storage_range(storage: torch.dtype | None, feature: torch.dtype) -> None:
    """Refuse a history dtype whose range is narrower than the feature's (it would store inf).

    A float16 history of bfloat16 or float32 features turns every value above 65504 into inf; the
    guard would then fall back to that inf. Precision may be lower (bfloat16 storage of float32
    features keeps the range); the range may not.

    Raises:
        ValueError: Naming `history_dtype`, the dtypes that hold this feature, and the one given.

    """
    if storage is None or _max_exponent(storage) >= _max_exponent(feature):
        return
    name = str(storage).removeprefix("torch.")
    allowed = ["auto"] + [
        str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES if _max_exponent(d) >= _max_exponent(feature)
    ]
    raise ValueError(
        f"CacheConfig: `history_dtype` must be one of {allowed} for {str(feature).removeprefix('torch.')} "
        f"features, got {name!r}: {name} holds at most {torch.finfo(storage).max:g}, so a larger feature "
        "would be stored as inf (and forecast from it)"
    )


@runtime_checkable
class History(Protocol):
    """Per-tensor forecast state: fed at computed steps, queried at skipped ones."""

    def update(self, feature: Tensor, x: float) -> None:
        """Record `feature` computed at coordinate `x` (copied, never aliased)."""

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return a new tensor forecasting the feature at `x`, in the feature's dtype.

        With a `guard`, elements that are not finite or exceed its margin over the running peak
        take the last computed value instead and are counted, in the same fused pass. An `addend`
        (same shape) is added to the forecast in that pass.
        """

    @property
    def nbytes(self) -> int:
        """Bytes held by the history's tensors."""


@runtime_checkable
class Forecaster(Protocol):
    """A forecaster spec: frozen, validated on construction, registered under a name."""

    @property
    def coordinate(self) -> Coordinate:
        """``"step"`` or ``"timestep"``: the time coordinate its histories are fed."""

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the history of one cached tensor.

        Args:
            dtype: Storage dtype of the history tensors; None keeps each feature's dtype.
            memo: The context's per-step memo, shared by all its sites, for weights that depend
                on the coordinates alone (so each is computed once per context and step).
            track_peak: Keep the running peak magnitude a `Guard` checks forecasts against
                (`TensorHistory` folds it into the update pass).

        """


class TensorHistory:
    """Storage shared by the histories: slots allocated once, the backend chosen once, a running peak.

    Subclasses keep up to `capacity` tensors of the feature's shape in `slots` and the coordinates
    of the last computed steps in `xs`. The first `update` (or the first after the feature's shape,
    dtype or device changed) validates the feature and allocates; after that, every update and
    forecast goes straight to the unchecked kernel operations of `ops`.

    Args:
        capacity: Tensors kept.
        dtype: Storage dtype; None keeps the feature's.
        memo: The context's per-step memo of weights.
        track_peak: Keep the largest magnitude of the computed features (the guard's limit),
            folded into the update kernel.

    """

    def __init__(
        self, capacity: int, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False
    ) -> None:
        self.capacity = capacity
        self.dtype = dtype
        self.memo = memo
        self.track_peak = track_peak
        self.slots: list[Tensor] = []
        self.xs: tuple[float, ...] = ()
        self.peak: Tensor | None = None
        self.ops: KernelOps | None = None
        self.out_dtype = torch.float32
        self._signature: tuple[Any, ...] | None = None

    def prepare(self, feature: Tensor, x: float) -> KernelOps:
        """Validate `feature`, (re)allocate on a new shape, dtype or device; restart on a repeated `x`.

        Raises:
            TypeError: If the feature's dtype is not float32, bfloat16 or float16.
            ValueError: If the storage dtype cannot hold the feature's range (a float16 history of
                bfloat16 or float32 features), at the first store, with the dtypes that can.

        """
        signature = (feature.shape, feature.dtype, feature.device)
        if signature != self._signature:
            if feature.dtype not in SUPPORTED_DTYPES:
                raise TypeError(
                    f"forecache can only forecast float32, bfloat16 or float16 features, got {feature.dtype}"
                )
            check_storage_range(self.dtype, feature.dtype)
            self._signature = signature
            self.slots, self.xs = [], ()
            self.out_dtype = feature.dtype
            self.ops = ops_for([feature])
            self.peak = (
                torch.zeros((), dtype=torch.float32, device=feature.device) if self.track_peak else None
            )
        elif x in self.xs:  # the same coordinate twice would divide by zero: start over
            self.slots, self.xs = [], ()
        assert self.ops is not None
        return self.ops

    def new_slot(self) -> Tensor:
        """Allocate one contiguous storage tensor shaped like the features (strides never inherited)."""
        assert self._signature is not None
        shape, dtype, device = self._signature
        return torch.empty(shape, dtype=self.dtype or dtype, device=device)

    def combine(
        self, weights: Sequence[float], fallback: int, guard: Guard | None, addend: Tensor | None
    ) -> Tensor:
        """Return ``addend + sum_k weights[k] * slots[k]``, guarded, in the feature's dtype, in one pass."""
        assert self.ops is not None
        slots = self.slots
        if guard is not None and self.peak is not None:  # rounded once into the feature's dtype
            counter = guard.counter(self.peak.device)
            return self.ops.guarded_weighted_sum(
                slots, weights, fallback, self.peak, counter, guard.margin, guard.slot, addend, self.out_dtype
            )
        if addend is not None and addend.dtype != slots[0].dtype:  # stored in another precision:
            return addend + self.combine(weights, fallback, guard, None)  # keep the addend's own
        if addend is not None:
            out = self.ops.weighted_sum([*slots, addend], [*weights, 1.0])
        else:
            out = self.ops.weighted_sum(slots, weights)
        return out if out.dtype == self.out_dtype else out.to(self.out_dtype)

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage tensors (the peak scalar is not counted)."""
        return sum(t.numel() * t.element_size() for t in self.slots)


def make_history(spec: Forecaster, dtype: torch.dtype | None = None, memo: Memo | None = None) -> History:
    """Create a standalone runtime history of a forecaster spec (its own memo unless one is given).

    Used by tests and offline tools (the tuner); the cache makes its histories through its sites.

    Args:
        spec: A registered forecaster spec, e.g. `Taylor(order=2)`.
        dtype: Storage dtype of the history tensors; None keeps each feature's dtype.
        memo: A memo to share with other histories updated at the same coordinates.

    Raises:
        TypeError: If `spec` is not an instance of a registered forecaster class.

    """
    FORECASTERS.check("make_history", "spec", spec)
    return spec.make_history(dtype, {} if memo is None else memo)
