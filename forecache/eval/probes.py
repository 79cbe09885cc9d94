"""Hooks that measure a pipeline from outside: host reads, synchronisations, loop time, peak memory.

They watch the transformer with plain PyTorch hooks and a `TorchFunctionMode`, so they see every
method the same way (forecache, diffusers' caches, cache-dit). FLOPs are counted by the one counter,
`forecache.calibrate.flops`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from forecache.calibrate.flops import within_calls

__all__ = [
    "HOST_READS",
    "HostReads",
    "LoopClock",
    "MemoryProbe",
    "count_host_reads",
    "count_syncs",
    "loop_clock",
    "memory_probe",
]


HOST_READS = frozenset(
    {
        "item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__complex__",
        "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "equal", "allclose",
    }
)  # fmt: skip
"""Tensor operations whose result the host must wait for: on a GPU each is a synchronisation."""


@dataclass
class HostReads:
    """Operations that read tensor values back to the host, per transformer call.

    Attributes:
        per_call: Reads during each transformer call (hooks included), in call order.
        ops: Read operation name -> count, over the calls.

    """

    per_call: list[int] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Reads of all calls."""
        return sum(self.per_call)


def _is_read(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if name in HOST_READS:
        return True
    if name == "__getitem__" and len(args) > 1:  # a boolean mask gives a data-dependent shape
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    if name in ("cpu", "to") and args and isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu":
        return name == "cpu" or "cpu" in [str(a) for a in (*args[1:], kwargs.get("device"))]
    return False


class _ReadCounter(TorchFunctionMode):
    def __init__(self, reads: HostReads) -> None:
        super().__init__()
        self.reads = reads
        self.active = False

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if self.active:
            name = getattr(func, "__name__", "")
            if _is_read(name, args, kwargs):
                self.reads.per_call[-1] += 1
                self.reads.ops[name] = self.reads.ops.get(name, 0) + 1
        return func(*args, **kwargs)


@contextmanager
def count_host_reads(transformer: torch.nn.Module) -> Iterator[HostReads]:
    """Count the operations that read tensor values back to the host inside transformer calls.

    Device-independent: on a CPU these reads cost nothing, on a GPU each one (``.item()``,
    ``bool(t)``, ``.tolist()``, a boolean-mask index, ``.cpu()``...; see `HOST_READS`) blocks the
    host until the device has finished its queued work. Counting them on a CPU tells how often a
    cache would stall a GPU. Reads inside C++ operators are not seen; on CUDA,
    ``torch.cuda.set_sync_debug_mode`` catches those.

    Args:
        transformer: The pipeline's transformer; reads between the start and the end of each of
            its calls (its hooks included) are counted.

    Yields:
        The `HostReads`, filled as calls happen.

    """
    reads = HostReads()
    with within_calls(transformer, _ReadCounter(reads), lambda: reads.per_call.append(0)):
        yield reads


@contextmanager
def count_syncs(device: torch.device) -> Iterator[list[int]]:
    """Count host synchronisations with ``torch.cuda.set_sync_debug_mode("warn")`` (CUDA only).

    Yields:
        A one-element list, set to the number of synchronisation warnings when the block exits;
        0 on any other device (nothing is measured there).

    """
    count = [0]
    if device.type != "cuda":
        yield count
        return
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield count
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    count[0] = sum("synchroniz" in str(w.message) for w in caught)


@dataclass
class LoopClock:
    """Seconds from the start of the first transformer call to the end of the last, summed per run."""

    seconds: float = 0.0
    _start: float | None = None
    _end: float | None = None

    def close_run(self, sync: bool) -> None:
        """Add the span of the run that just finished and reset for the next one."""
        if sync:
            torch.cuda.synchronize()
            self._end = time.perf_counter()
        if self._start is not None and self._end is not None:
            self.seconds += self._end - self._start
        self._start = self._end = None


@contextmanager
def loop_clock(transformer: torch.nn.Module, sync: bool) -> Iterator[LoopClock]:
    """Time the denoising loop (first transformer call to last) of each pipeline run.

    Args:
        transformer: The pipeline's transformer.
        sync: Synchronize CUDA at the first call's start and in `close_run` (GPU timings). The
            end time of a run on GPU is taken after that synchronization, so it includes the
            scheduler's last step (microseconds).

    """
    clock = LoopClock()

    def pre(*_: Any) -> None:
        if clock._start is None:
            if sync:
                torch.cuda.synchronize()
            clock._start = time.perf_counter()

    def post(*_: Any) -> None:
        clock._end = time.perf_counter()

    handles = [transformer.register_forward_pre_hook(pre), transformer.register_forward_hook(post)]
    try:
        yield clock
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class MemoryProbe:
    """Peak memory of a run and how it was measured.

    Attributes:
        peak_bytes: CUDA: max allocated during the run above its start. None elsewhere (a CPU
            process's resident size is no measurement of one run's peak: freed memory is reused).
        method: How `peak_bytes` was measured, for reports.

    """

    peak_bytes: int | None = None
    method: str = "unavailable"


@contextmanager
def memory_probe(device: torch.device) -> Iterator[MemoryProbe]:
    """Measure the peak memory of the runs inside the ``with`` block (see `MemoryProbe`)."""
    probe = MemoryProbe()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        try:
            yield probe
        finally:
            torch.cuda.synchronize(device)
            probe.peak_bytes = torch.cuda.max_memory_allocated(device) - base
            probe.method = "cuda max_memory_allocated above the start of the run"
        return
    probe.method = (
        f"not measured on {device.type}: the process's resident size does not show a run's peak (the "
        "allocator reuses freed memory); forecache's own cache is the 'cache MiB' column"
    )
    yield probe
