"""PSNR against full compute versus FLOPs ratio on the 12-block reference model (issue 14's depth sweep).

    python benchmarks/deep_reference.py [--model flux-digits-deep] [--steps 50] [--seeds 10]

One sample per seed (class ``seed % 10``), all seeds in one batched call, the pipeline's default
guidance (true CFG: a "cond" and an "uncond" call per step). For every configuration it prints the
compute ratio, counted as the linear-layer FLOPs of the transformer that actually ran
(`forecache.calibrate.flops.count_flops`; baseline FLOPs / method FLOPs), and the
paired PSNR of the decoded images against the uncached images of the same seeds, pooled over all
pixels of all samples. The configurations:

- ``blocks`` target + Taylor order 1 and 2 at fixed intervals 2..8 (warm-up 3, cool-down 1);
- the TaylorSeer preset (``modules`` target, order 2, warm-up 3) at intervals 2..8;
- a hand-placed `StepMask` with ``blocks`` + Taylor 1: computed steps
  ``round((1 - (1 - u) ** 1.6) * (steps - 1))`` for ``n`` values of ``u`` evenly spaced in [0, 1]
  (sparse early, dense late, first and last step always computed), n in --mask-steps.

One torch thread (the models' 64-token matmuls only lose to thread synchronisation); a few
minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np
import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval.metrics import psnr
from forecache.reference import load_classifier, load_reference


def mask_steps(computed: int, steps: int, power: float = 1.6) -> list[int]:
    """Computed step indices ``round((1 - (1 - u) ** power) * (steps - 1))``, u evenly spaced in [0, 1]."""
    chosen = sorted({round((1 - (1 - u) ** power) * (steps - 1)) for u in np.linspace(0.0, 1.0, computed)})
    if len(chosen) != computed:
        raise ValueError(f"{computed} computed steps collide at {steps} steps: {chosen}")
    return chosen


def configs(intervals: list[int], masks: list[int], steps: int) -> Iterator[tuple[str, str, object]]:
    """(method, setting, config) of every run of the sweep."""
    for order in (1, 2):
        for every in intervals:
            policy = forecache.Interval(every=every, warmup=3, cooldown=1)
            config = forecache.CacheConfig(
                policy=policy, forecaster=forecache.Taylor(order=order), target="blocks"
            )
            yield f"blocks + Taylor {order}, fixed interval", f"N={every}", config
    for every in intervals:
        yield "TaylorSeer preset (modules)", f"N={every}", forecache.TaylorSeerConfig(interval=every)
    for computed in masks:
        chosen = set(mask_steps(computed, steps))
        mask = tuple(step in chosen for step in range(steps))
        config = forecache.CacheConfig(
            policy=forecache.StepMask(mask), forecaster=forecache.Taylor(order=1), target="blocks"
        )
        yield "blocks + Taylor 1, StepMask (1-(1-u)^1.6)", f"{computed} computed", config


def run(pipe, labels: list[int], seeds: list[int], steps: int) -> tuple[np.ndarray, int]:
    """Images ``(batch, 16, 16, 1)`` in [0, 1] and the transformer FLOPs that ran."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    with count_flops(pipe.transformer) as count:
        images = pipe(class_labels=labels, num_inference_steps=steps, generator=generators, output_type="np")
    return images.images, count.total


def accuracy(classifier, images: np.ndarray, labels: list[int]) -> float:
    """Share of samples the shipped classifier reads as their class."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        return float((classifier(x).argmax(1) == torch.tensor(labels)).float().mean())


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", default="flux-digits-deep")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=10, help="samples, seeds 0..N-1, class seed % 10")
    parser.add_argument("--intervals", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--mask-steps", type=int, nargs="+", default=[10, 8, 7, 6])
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    pipe = load_reference(args.model)
    pipe.set_progress_bar_config(disable=True)
    classifier = load_classifier()
    seeds = list(range(args.seeds))
    labels = [seed % 10 for seed in seeds]
    baseline, base_flops = run(pipe, labels, seeds, args.steps)
    rows = []
    for method, setting, config in configs(args.intervals, args.mask_steps, args.steps):
        with forecache.cached(pipe, config):
            images, flops = run(pipe, labels, seeds, args.steps)
        pooled, _ = psnr(baseline, images)
        rows.append((method, setting, base_flops / flops, pooled, accuracy(classifier, images, labels)))
    print(
        f"{args.model}, {args.steps} steps, {len(seeds)} samples (seeds 0-{seeds[-1]}, class seed % 10), "
        f"full compute: class accuracy {accuracy(classifier, baseline, labels):.2f}, "
        f"{base_flops / 1e9:.2f} GFLOP\n"
    )
    print("| method | setting | compute ratio (FLOPs) | PSNR vs full compute (dB) | class accuracy |")
    print("|---|---|---|---|---|")
    for method, setting, ratio, value, acc in rows:
        print(f"| {method} | {setting} | {ratio:.2f}x | {value:.1f} | {acc:.2f} |")
    print("\n| method | highest ratio at >= 40 dB |")
    print("|---|---|")
    for method in dict.fromkeys(row[0] for row in rows):
        above = [row[2] for row in rows if row[0] == method and row[3] >= 40.0]
        print(f"| {method} | {f'{max(above):.2f}x' if above else 'none'} |")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
