"""Measure the fused kernels' bandwidth against the device's copy bandwidth and the eager reference.

Example (GPU)::

    python benchmarks/kernel_bandwidth.py --device cuda --sizes-mb 1 4 16 64 256 1024 --dtype bf16 --k 1 3 5

Size is per tensor (one history factor / feature). For each kernel, size and K, the table gives the
median time, the achieved bandwidth (bytes from the ``*_bytes`` traffic counts), its fraction of the
bandwidth of ``dst.copy_(src)`` measured in the same run on the same size, and the speedup over the
eager PyTorch reference. Both run as the cache's hot path calls them: the ``*_unchecked`` forms,
whose arguments are checked once per cache site, not per call. On CPU (a smoke check) only the
reference is timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from forecache.kernels import (
    guarded_weighted_sum_bytes,
    relative_l1_bytes,
    taylor_update_bytes,
    weighted_sum_bytes,
)
from forecache.kernels import torch_ops as ref
from forecache.kernels.dispatch import triton_available

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (CUDA events on GPU, perf_counter on CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cases(numel: int, dtype: torch.dtype, device: torch.device, ks: list[int]):
    """Yield ``(kernel, k, bytes, torch_fn, triton_fn)`` for every kernel and K at this size."""
    use_triton = device.type == "cuda" and triton_available()
    ops = None
    if use_triton:
        from forecache.kernels import triton_ops as ops
    itemsize = torch.empty((), dtype=dtype).element_size()
    for k in ks:
        xs = [torch.randn(numel, device=device, dtype=dtype) for _ in range(k)]
        ws = [1.0 / (i + 1) for i in range(k)]
        out = torch.empty_like(xs[0])
        yield (
            "weighted_sum",
            k,
            weighted_sum_bytes(numel, k, itemsize),
            lambda xs=xs, ws=ws, out=out: ref.weighted_sum_unchecked(xs, ws, out),
            (lambda xs=xs, ws=ws, out=out: ops.weighted_sum_unchecked(xs, ws, out)) if ops else None,
        )
        guard = (torch.tensor(3.0, device=device), torch.zeros((), dtype=torch.int64, device=device))
        yield (
            "guarded_weighted_sum",
            k,
            guarded_weighted_sum_bytes(numel, k, itemsize),
            lambda xs=xs, ws=ws, g=guard: ref.guarded_weighted_sum_unchecked(xs, ws, 0, *g),
            (lambda xs=xs, ws=ws, g=guard: ops.guarded_weighted_sum_unchecked(xs, ws, 0, *g))
            if ops
            else None,
        )
        feature = torch.randn(numel, device=device, dtype=dtype)
        inv_dt = [0.5] * (k - 1)
        yield (
            "taylor_update_",
            k,
            taylor_update_bytes(numel, k, itemsize, itemsize),
            lambda xs=xs, f=feature, s=inv_dt: ref.taylor_update_unchecked(xs, f, s),
            (lambda xs=xs, f=feature, s=inv_dt: ops.taylor_update_unchecked(xs, f, s)) if ops else None,
        )
        del xs, out, feature
    a, b = torch.randn(numel, device=device, dtype=dtype), torch.randn(numel, device=device, dtype=dtype)
    yield (
        "relative_l1",
        1,
        relative_l1_bytes(numel, itemsize, itemsize),
        lambda: ref.relative_l1_unchecked(a, b),
        (lambda: ops.relative_l1_unchecked(a, b)) if ops else None,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5], help="inputs / stored orders")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows: list[dict] = []
    for size_mb in args.sizes_mb:
        numel = max(1, int(size_mb * 2**20) // itemsize)
        src = torch.randn(numel, device=device, dtype=dtype)
        dst = torch.empty_like(src)
        copy_ms = time_ms(lambda src=src, dst=dst: dst.copy_(src), device, args.warmup, args.repeats)
        copy_gbs = 2 * numel * itemsize / copy_ms / 1e6
        del src, dst
        for name, k, nbytes, torch_fn, triton_fn in cases(numel, dtype, device, args.k):
            torch_ms = time_ms(torch_fn, device, args.warmup, args.repeats)
            timed = [("torch", torch_ms)]
            if triton_fn is not None:
                timed.append(("triton", time_ms(triton_fn, device, args.warmup, args.repeats)))
            for backend, ms in timed:
                gbs = nbytes / ms / 1e6
                rows.append(
                    {
                        "kernel": name,
                        "k": k,
                        "size_mb": size_mb,
                        "dtype": args.dtype,
                        "backend": backend,
                        "time_ms": ms,
                        "gb_per_s": gbs,
                        "copy_gb_per_s": copy_gbs,
                        "fraction_of_copy": gbs / copy_gbs,
                        "speedup_vs_torch": torch_ms / ms,
                    }
                )
        if device.type == "cuda":
            torch.cuda.empty_cache()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, dtype {args.dtype}")
    print("| kernel | K | MB/tensor | backend | time (ms) | GB/s | copy GB/s | of copy | vs torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kernel']} | {r['k']} | {r['size_mb']:g} | {r['backend']} | {r['time_ms']:.4f} | "
            f"{r['gb_per_s']:.1f} | {r['copy_gb_per_s']:.1f} | {r['fraction_of_copy']:.0%} | "
            f"{r['speedup_vs_torch']:.2f}x |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
