"""Where one computed and one forecast call of a cached trajectory spend their time (torch profiler).

    python benchmarks/profile_step.py [--arch dit-xl-2] [--size full] [--dtype float32] [--steps 20]
        [--preset taylorseer] [--forecast-call 5] [--computed-call 8] [--rows 15]

Builds the architecture as `forecache profile` does (random weights, CPU, float32 by default), applies the
preset (a method spec of `forecache bench`, e.g. ``taylorseer`` or ``cache:target=blocks``), runs
one trajectory to settle the caches, then a second one in which the two chosen calls run under
`torch.profiler`; prints each call's wall time and its operators by self CPU time. Read with the
trajectory's decisions (printed first): the forecast call's operators are the model's own work
at forecast steps (norms, modulation, residual adds for the modules target) plus forecache's
(the guarded weighted sums). Used for the DiT-XL/2 breakdown in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import forecache
from forecache.eval.methods import parse_method
from forecache.eval.profile import ProfileConfig, ProfileSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dit-xl-2")
    parser.add_argument("--size", default="full")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--dtype", default="float32", help="float32 (default, as `forecache profile` on CPU) or bfloat16"
    )
    parser.add_argument("--preset", default="taylorseer")
    parser.add_argument("--forecast-call", type=int, default=5)
    parser.add_argument("--computed-call", type=int, default=8)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()

    torch.manual_seed(0)
    session = ProfileSession(
        ProfileConfig(arch=args.arch, size=args.size, dtype=args.dtype, steps=args.steps, warmup=0)
    )
    model = session.model
    forward = type(model).forward
    calls = [0]
    profiled: dict[int, tuple[float, Any]] = {}
    wanted = {args.forecast_call, args.computed_call}

    def counted(self: torch.nn.Module, *a: Any, **k: Any) -> Any:
        index = calls[0]
        calls[0] += 1
        if index not in wanted:
            return forward(self, *a, **k)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            out = forward(self, *a, **k)
            profiled[index] = (time.perf_counter() - start, prof)
        return out

    type(model).forward = counted  # before apply: the hooks wrap this forward
    try:
        config = parse_method(args.preset).config
        if config is None:
            raise SystemExit(f"--preset must be a forecache preset or cache spec, got {args.preset!r}")
        with forecache.cached(model, config, scheduler=session.scheduler):
            session.run(args.steps)  # settles the caches
            profiled.clear()
            calls[0] = 0
            session.run(args.steps)
            print(forecache.stats(model).summary())
    finally:
        type(model).forward = forward
    for index in sorted(profiled):
        seconds, prof = profiled[index]
        print(f"\ncall {index}: {seconds * 1e3:.1f} ms")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
