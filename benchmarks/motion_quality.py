"""Issue 20's acceptance on the motion models: adherence and motion, the tuner, TimelineConfig, flicker.

    python benchmarks/motion_quality.py [--model motion] [--samples 128] [--steps 50 28]
    python benchmarks/motion_quality.py --model motion-experts

On the held-out prompts (colour-motion pairs training never showed), seeds 0..N-1, one torch thread:

1. full compute: the motion judge's per-frame adherence (mean, worst clip) and motion accuracy
   (overall and per motion) at each step count;
2. `forecache.tune` on the first 4 calibration prompts (seeds from 100000) for 8x at 50 steps and
   5x at 28 (for the two-expert model each expert to that ratio), and `TimelineConfig()` at both:
   linear-layer FLOPs ratio, PSNR against full compute (pooled over all frames, the mean of the
   per-frame PSNRs, the worst clip, the worst frame), flicker (`forecache.eval.temporal`: mean and
   worst clip), adherence, motion accuracy, and the calibration PSNR beside the held-out one.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval.metrics import paired_scores
from forecache.eval.temporal import flicker
from forecache.reference import REFERENCE_MODELS, load_reference
from forecache.reference.motion.grammar import DIRECTIONS, parse_caption
from forecache.reference.motion.prompts import prompt_set

GOALS = {50: 8.0, 28: 5.0}
CALIBRATION_SEED = 100_000
BATCH = 16


@contextlib.contextmanager
def _applied(pipe: Any, setting: Any) -> Iterator[None]:
    """Apply a config or a `TuneResult` (each expert its own) for the block; full compute for None."""
    if setting is None:
        yield
        return
    if isinstance(setting, forecache.TuneResult):
        setting.apply(pipe)
    else:
        forecache.apply(pipe, setting)
    try:
        yield
    finally:
        forecache.remove(pipe)


def generate(pipe: Any, model: str, prompts: list[str], seeds: list[int], steps: int, setting: Any = None):
    """Clips (N, frames, 32, 32, 3) in [0, 1] and the linear-layer FLOPs of generating them."""
    defaults = REFERENCE_MODELS[model].call_defaults
    out = []
    experts = [getattr(pipe, name) for name in ("transformer", "transformer_2") if getattr(pipe, name, None)]
    with contextlib.ExitStack() as stack:
        counts = [stack.enter_context(count_flops(expert)) for expert in experts]
        with _applied(pipe, setting):
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
                out.append(result.frames)
    return np.concatenate(out).astype(np.float32), sum(count.total for count in counts)


def motion_breakdown(judge: Any, clips: np.ndarray, prompts: list[str]) -> str:
    """Motion accuracy per motion, over the objects of that motion."""
    from forecache.reference.motion.judge import motion_accuracy

    reading, specs, frames = judge._read(clips, prompts)
    right: dict[str, list[float]] = {d: [] for d in DIRECTIONS}
    for i, spec in enumerate(specs):
        for obj in spec.objects:
            one = type(spec)((obj,), spec.background, spec.texture)
            rows = slice(i * frames, (i + 1) * frames)
            sub = type(reading)(*(getattr(reading, f)[rows] for f in reading.__dataclass_fields__))
            right[obj.direction].append(float(motion_accuracy(sub, [one], frames)[0]))
    return ", ".join(f"{d} {np.mean(v):.3f} ({len(v)})" for d, v in right.items() if v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="motion", choices=["motion", "motion-experts"])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 28])
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument("--skip-timeline", action="store_true", help="leave out TimelineConfig()")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_reference(args.model)
    pipe.set_progress_bar_config(disable=True)
    judge = REFERENCE_MODELS[args.model].judge()
    held = prompt_set("heldout")
    prompts = [held[i % len(held)] for i in range(args.samples)]
    seeds = list(range(args.samples))
    assert all(parse_caption(p) for p in prompts)
    for steps in args.steps:
        started = time.perf_counter()
        full, full_flops = generate(pipe, args.model, prompts, seeds, steps)
        adherence = judge.adherence(full, prompts)
        motion = judge.motion_accuracy(full, prompts)
        print(
            f"## {args.model}, {steps} steps: full compute adherence {adherence.mean():.4f} (worst clip "
            f"{adherence.min():.3f}), motion accuracy {motion.mean():.4f} on {len(prompts)} held-out clips "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        print(f"motion accuracy per motion (objects): {motion_breakdown(judge, full, prompts)}", flush=True)
        goal = GOALS.get(steps, 5.0)
        call = {
            "prompt": prompt_set("calibration")[: args.calibration],
            "num_inference_steps": steps,
            **REFERENCE_MODELS[args.model].call_defaults,
        }
        started = time.perf_counter()
        result = forecache.tune(pipe, call, ratio=goal, seed=CALIBRATION_SEED, progress=False)
        tuned_s = time.perf_counter() - started
        rows: list[tuple[str, Any, float | None]] = [(f"tuned for {goal:g}x", result, result.psnr_db)]
        if not args.skip_timeline:
            rows.append(("TimelineConfig()", forecache.TimelineConfig(), None))
        print(
            "| method | ratio (FLOPs) | PSNR pooled | PSNR mean per frame | worst clip | worst frame | "
            "flicker mean | flicker worst | adherence | motion | calibration PSNR |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, setting, calibrated in rows:
            clips, flops = generate(pipe, args.model, prompts, seeds, steps, setting)
            scores = paired_scores(full, clips)
            flick = flicker(full, clips)
            shown = "-" if calibrated is None else f"{calibrated:.2f} dB"
            cells = [
                f"{full_flops / flops:.2f}x",
                f"{scores['psnr_db']:.2f} dB",
                f"{np.mean(scores['psnr_db_per_frame']):.2f} dB",
                f"{min(scores['psnr_db_per_sample']):.2f} dB",
                f"{min(scores['psnr_db_per_frame']):.2f} dB",
                f"{flick.mean():.4f}",
                f"{flick.max():.4f}",
                f"{judge.adherence(clips, prompts).mean():.4f}",
                f"{judge.motion_accuracy(clips, prompts).mean():.4f}",
                shown,
            ]
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
        for component, part in (result.experts or {"": result}).items():
            chosen = part.chosen
            print(
                f"(tuned{' ' + component if component else ''}: {chosen.forecaster!r}, computed steps "
                f"{chosen.computed}, partial {chosen.partial} of {part.steps}, {chosen.ratio:.2f}x)",
                flush=True,
            )
        print(f"(tuning took {tuned_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
