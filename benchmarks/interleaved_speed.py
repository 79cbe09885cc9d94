"""Loop speed against FLOPs saved, with the baseline and the methods interleaved round by round.

    python benchmarks/interleaved_speed.py [--arch dit-xl-2] [--size full] [--dtype float32] [--steps 20]
        [--rounds 3] [--methods taylorseer cache:target=blocks]

`forecache profile` times all of the baseline's repeats, then all of each method's: on a shared
machine whose speed drifts by 10% over minutes, a method's ratio then carries the drift between
its window and the baseline's. Here each round times one baseline trajectory and then one
trajectory of each method (applied, one untimed trajectory to settle its caches, timed, removed),
so every ratio is taken against a baseline measured seconds before it; the median over rounds is
reported with the range. FLOPs are counted on the linear layers that run
(`forecache.calibrate.flops.count_flops`). Random weights, as `forecache profile`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval.methods import parse_method
from forecache.eval.profile import ProfileConfig, ProfileSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dit-xl-2")
    parser.add_argument("--size", default="full")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["taylorseer", "cache:target=blocks"])
    args = parser.parse_args()
    specs = [parse_method(text) for text in args.methods]
    for spec in specs:
        if spec.config is None:
            raise SystemExit(f"--methods takes forecache presets or cache specs, got {spec.label!r}")

    torch.manual_seed(0)
    session = ProfileSession(
        ProfileConfig(arch=args.arch, size=args.size, dtype=args.dtype, steps=args.steps)
    )
    model = session.model

    def trajectory() -> float:
        start = time.perf_counter()
        session.run(args.steps)
        return time.perf_counter() - start

    with count_flops(model) as flops:
        trajectory()
    full = flops.total
    ratios: dict[str, float] = {}
    for spec in specs:
        with (
            forecache.cached(model, spec.config, scheduler=session.scheduler),
            count_flops(model) as flops,
        ):
            trajectory()
        ratios[spec.label] = full / flops.total

    speedups: dict[str, list[float]] = {spec.label: [] for spec in specs}
    baselines: list[float] = []
    for _ in range(args.rounds):
        baseline = trajectory()
        baselines.append(baseline)
        for spec in specs:
            with forecache.cached(model, spec.config, scheduler=session.scheduler):
                trajectory()  # settles the caches, as `forecache profile --warmup 1`
                speedups[spec.label].append(baseline / trajectory())

    print(
        f"{args.arch} ({args.size}, {args.dtype}), {args.steps} steps, {args.rounds} interleaved rounds; "
        f"baseline loop {min(baselines):.2f}-{max(baselines):.2f} s"
    )
    print("| method | FLOPs ratio | loop speedup (median, range) | speedup / FLOPs ratio |")
    print("|---|---|---|---|")
    for label, values in speedups.items():
        median = statistics.median(values)
        print(
            f"| {label} | {ratios[label]:.2f}x | {median:.2f}x ({min(values):.2f}-{max(values):.2f}) | "
            f"{median / ratios[label]:.2f} |"
        )


if __name__ == "__main__":
    main()
