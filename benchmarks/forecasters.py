"""Forecasters and policies against full compute on the shipped reference models: PSNR versus compute ratio.

    python benchmarks/forecasters.py --models flux-digits dit-digits --seeds 8 --steps 50 \\
        --intervals 3 4 5 6 7 8 --json forecasters.json

Every method runs on the ``blocks`` target: the forecasters (--forecasters, names below) at each
fixed interval (``Interval(every=N, warmup=2, cooldown=1)``), then the probing policies
(--policies, ``name:key=value,...`` specs parsed like ``forecache bench --methods cache:...``).
Each sample has its own seed (seed i, class label i % 10) and the same sample is generated with
full compute; PSNR is pooled over all pixels of all samples (data range 1), as `forecache bench`.
The compute ratio is the full-compute FLOPs of the linear layers over those actually run
(`forecache.calibrate.flops.count_flops`, probes included). One torch thread; CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import forecache
from forecache.accel.forecasters import DMD, FoCa, Hermite, Reuse, Taylor
from forecache.accel.policies import Interval
from forecache.calibrate.flops import count_flops
from forecache.eval.methods import parse_method
from forecache.eval.metrics import psnr
from forecache.reference import load_reference

FORECASTERS: dict[str, Any] = {
    "reuse": Reuse(),
    "taylor1": Taylor(order=1),
    "taylor2": Taylor(order=2),
    "hermite1": Hermite(order=1, sigma=0.5),
    "hermite2": Hermite(order=2, sigma=0.5),
    "hermite2-0.6": Hermite(order=2, sigma=0.6),
    "foca": FoCa(),
    "dmd": DMD(window=4),
}


def generate(pipe: Any, seeds: list[int], steps: int) -> tuple[np.ndarray, int]:
    """Generate one sample per seed (class ``seed % 10``); return the images and the linear FLOPs run."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    with count_flops(pipe.transformer) as count:
        out = pipe(
            class_labels=[s % 10 for s in seeds],
            num_inference_steps=steps,
            generator=generators,
            output_type="np",
        )
    return np.asarray(out.images, dtype=np.float32), sum(count.per_call)


def measure(pipe: Any, config: Any, seeds: list[int], steps: int) -> tuple[np.ndarray, int, Any]:
    """Generate with `config` applied; return the images, the FLOPs and the cache statistics."""
    forecache.apply(pipe, config)
    try:
        images, flops = generate(pipe, seeds, steps)
        stats = forecache.stats(pipe)
    finally:
        forecache.remove(pipe)
    return images, flops, stats


def methods(args: argparse.Namespace) -> Iterator[tuple[str, Any]]:
    """The (label, config) rows: forecasters at each interval, then the policy specs."""
    for every in args.intervals:
        policy = Interval(every=every, warmup=2, cooldown=1)
        for name in args.forecasters:
            yield f"{name} N={every}", forecache.CacheConfig(policy, FORECASTERS[name], target="blocks")
    for spec in args.policies:
        yield spec, parse_method(spec).config


def decisions(stats: Any) -> str:
    """The first context's decision string (C computed, F forecast)."""
    first = next(iter(stats.contexts.values()))
    return "".join(first.decisions)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["flux-digits", "dit-digits"])
    parser.add_argument("--seeds", type=int, default=8, help="samples: seeds 0..N-1, classes seed % 10")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--intervals", type=int, nargs="*", default=[3, 4, 5, 6, 7, 8])
    parser.add_argument("--forecasters", nargs="*", default=list(FORECASTERS), choices=list(FORECASTERS))
    parser.add_argument(
        "--policies", nargs="*", default=[], help="cache:... specs, e.g. cache:policy=gate,..."
    )
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    rows = []
    for model in args.models:
        pipe = load_reference(model)
        pipe.set_progress_bar_config(disable=True)
        start = time.perf_counter()
        reference, full_flops = generate(pipe, seeds, args.steps)
        seconds = time.perf_counter() - start
        print(f"\n## {model}, {args.steps} steps, {len(seeds)} samples (full compute {seconds:.1f} s)")
        print("\n| method | compute ratio | PSNR (dB) | decisions (first context) |\n|---|---|---|---|")
        for label, config in methods(args):
            images, flops, stats = measure(pipe, config, seeds, args.steps)
            pooled, _ = psnr(reference, images)
            row = {"model": model, "method": label, "ratio": full_flops / flops, "psnr": pooled}
            row["decisions"] = decisions(stats)
            rows.append(row)
            print(f"| {label} | {row['ratio']:.2f}x | {pooled:.1f} | `{row['decisions']}` |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
