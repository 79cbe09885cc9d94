"""Issue 19's acceptance on the scenes model: adherence, the word test, the tuner and TimelineConfig.

    python benchmarks/scenes_quality.py [--samples 128] [--word-tries 128] [--steps 50 28] [--no-tune]
        [--images-per-prompt K] [--refine N] [--validate V]

On the held-out prompts (colour-shape pairs training never showed), seeds 0..N-1, one torch thread:

1. full compute: the judge's adherence (mean and the per-attribute rates) at each step count;
2. the word test: for each try, one colour word or one position word of a held-out prompt is
   changed and the same seed generated again; a try succeeds when the judge reads the new colour on
   that object's cell, or the object on its new cell and its old cell empty;
3. `forecache.tune` on the first 4 calibration prompts (seeds from 100000) for 10x at 50 steps and
   6x at 28 (``--ratio R``: R at both; ``--images-per-prompt K``: K images of each prompt;
   ``--refine N``: N rounds of refinement by real runs), and `TimelineConfig()` (a partial second
   step) and ``TimelineConfig(ratio=5.5, lead=2, order=0)`` (the second step computed in place of
   the spread's last, reuse) at both:
   linear-layer FLOPs ratio, PSNR against full compute (pooled mean with its 90 % bootstrap
   interval over the samples, and the worst sample),
   adherence, and the calibration PSNR beside the held-out one: the tuner's own (on its samples)
   and on as many samples of the calibration prompts as held-out ones (other seeds), which parts
   the prompts' share of the gap from the small sample's, and the tuner's own validation (its
   calibration calls again with ``--validate V`` new seeds, default 16: the figure it tells the
   user to expect on new prompts) (``--no-tune``: the `TimelineConfig`
   rows alone; ``--word-tries 0`` leaves out the word test);
4. ``--fewer K [K ...]``: the same prompts and seeds solved at full compute with K steps, PSNR
   against each step count's solve: how much a systematic change of the trajectory moves the
   samples (before the scenes model's bind stage, 14 of 28 steps left one sample at 12 dB).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import numpy as np
import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.calibrate.frames import Errors
from forecache.calibrate.validate import bootstrap_interval
from forecache.eval.metrics import psnr
from forecache.reference import REFERENCE_MODELS, load_reference
from forecache.reference.scenes.checks import word_changes, word_test
from forecache.reference.scenes.prompts import prompt_set

GOALS = {50: 10.0, 28: 6.0}
CALIBRATION_SEED = 100_000
BATCH = 32


def generate(pipe, prompts, seeds, steps, config=None):
    """Images (N, 32, 32, 3) in [0, 1] and the linear-layer FLOPs of generating them."""
    defaults = REFERENCE_MODELS["scenes"].call_defaults
    out = []
    with count_flops(pipe.transformer) as flops:
        with forecache.cached(pipe, config) if config is not None else contextlib.nullcontext():
            for start in range(0, len(prompts), BATCH):
                chunk = slice(start, start + BATCH)
                generators = [torch.Generator().manual_seed(s) for s in seeds[chunk]]
                result = pipe(
                    prompts[chunk],
                    generator=generators,
                    num_inference_steps=steps,
                    output_type="np",
                    **defaults,
                )
                out.append(result.images)
    return np.concatenate(out).astype(np.float32), flops.total


def interval(full: np.ndarray, images: np.ndarray) -> tuple[float, float]:
    """The pooled PSNR's 90 % bootstrap interval over the samples, as the tuner's validation gives it."""
    errors = Errors.of([torch.from_numpy(full).double()], [torch.from_numpy(images).double()])
    return bootstrap_interval(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--word-tries", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 28])
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument(
        "--ratio",
        type=float,
        default=None,
        help="tune for this ratio at every step count (default: 10x at 50, 6x at 28)",
    )
    parser.add_argument(
        "--images-per-prompt", type=int, default=1, help="the tuner's images of each calibration prompt"
    )
    parser.add_argument(
        "--refine", type=int, default=0, help="the tuner's rounds of refinement by real runs (default 0)"
    )
    parser.add_argument(
        "--validate",
        type=int,
        default=16,
        help="the tuner's validation: its calibration calls again with this many new seeds (default 16)",
    )
    parser.add_argument("--fewer", type=int, nargs="*", default=[], help="full-compute solves with K steps")
    parser.add_argument(
        "--no-tune", action="store_true", help="leave out forecache.tune: TimelineConfig only"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_reference("scenes")
    pipe.set_progress_bar_config(disable=True)
    judge = REFERENCE_MODELS["scenes"].judge()
    held = prompt_set("heldout")
    calibration = prompt_set("calibration")[: args.calibration]
    prompts = [held[i % len(held)] for i in range(args.samples)]
    seeds = list(range(args.samples))
    for steps in args.steps:
        started = time.perf_counter()
        full, full_flops = generate(pipe, prompts, seeds, steps)
        adherence = judge.adherence(full, prompts)
        print(
            f"## {steps} steps: full compute adherence {adherence.mean():.4f} on {len(prompts)} held-out "
            f"samples (worst {adherence.min():.3f}; {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        for fewer in args.fewer:
            pooled, per_sample = psnr(full, generate(pipe, prompts, seeds, fewer)[0])
            print(
                f"{fewer} steps against {steps} (full compute): {pooled:.2f} dB, "
                f"worst {min(per_sample):.2f} dB, median {np.median(per_sample):.2f} dB",
                flush=True,
            )
        if args.word_tries:
            changes = word_changes(prompts, args.word_tries)
            changed, _ = generate(
                pipe, [c.prompt for c in changes], [seeds[c.source] for c in changes], steps
            )
            hits = word_test(judge.judge, changed, changes)
            for kind, values in hits.items():
                print(f"word test ({kind}): {np.mean(values):.4f} of {len(values)} tries", flush=True)
            total = hits["colour"] + hits["position"]
            print(f"word test (all): {np.mean(total):.4f} of {len(total)} tries", flush=True)
        rows: list[tuple[str, Any, float | None]] = [
            ("TimelineConfig()", forecache.TimelineConfig(), None),
            (
                "TimelineConfig(ratio=5.5, lead=2, order=0)",
                forecache.TimelineConfig(ratio=5.5, lead=2, order=0),
                None,
            ),
        ]
        result, tuned_s = None, 0.0
        if not args.no_tune:
            call = {
                "prompt": calibration,
                "num_inference_steps": steps,
                "num_images_per_prompt": args.images_per_prompt,
                **REFERENCE_MODELS["scenes"].call_defaults,
            }
            started = time.perf_counter()
            goal = args.ratio or GOALS.get(steps, 6.0)
            result = forecache.tune(
                pipe,
                call,
                ratio=goal,
                seed=CALIBRATION_SEED,
                progress=False,
                refine=args.refine,
                validate=args.validate,
            )
            tuned_s = time.perf_counter() - started
            rows.insert(0, (f"tuned for {goal:g}x", result.config, result.chosen.psnr_db))
        # the calibration prompts on as many samples as the held-out figure (other seeds than the
        # tuner's): how much of the gap is the prompts, how much the tuner's few samples
        cal_prompts = [calibration[i % len(calibration)] for i in range(args.samples)]
        cal_seeds = [CALIBRATION_SEED + 100_000 + i for i in range(args.samples)]
        cal_full = generate(pipe, cal_prompts, cal_seeds, steps)[0] if result is not None else None
        print(
            "| method | ratio (FLOPs) | PSNR mean (90 % interval) | PSNR worst | adherence | "
            f"calibration PSNR (tuner's samples) | calibration prompts, {args.samples} samples |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, config, calibrated in rows:
            images, flops = generate(pipe, prompts, seeds, steps, config)
            pooled, per_sample = psnr(full, images)
            low, high = interval(full, images)
            score = judge.adherence(images, prompts).mean()
            shown, many = "-", "-"
            if calibrated is not None and cal_full is not None:
                shown = f"{calibrated:.2f} dB"
                many = f"{psnr(cal_full, generate(pipe, cal_prompts, cal_seeds, steps, config)[0])[0]:.2f} dB"
            print(
                f"| {label} | {full_flops / flops:.2f}x | {pooled:.2f} dB ({low:.2f}-{high:.2f}) | "
                f"{min(per_sample):.2f} dB | "
                f"{score:.4f} | {shown} | {many} |",
                flush=True,
            )
        if result is not None:
            chosen = result.chosen
            print(
                f"(tuned: {chosen.forecaster!r}, {chosen.described}: steps {chosen.computed}, partial "
                f"{chosen.partial}; {tuned_s:.0f} s)",
                flush=True,
            )
            if result.validation is not None:
                check = result.validation
                print(
                    f"(the tuner's validation on {check.samples} new samples of the calibration prompts: "
                    f"{check.psnr_db:.2f} dB ({check.interval_db[0]:.2f}-{check.interval_db[1]:.2f}), worst "
                    f"{check.worst_db:.2f} dB)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
