"""Is the scenes model's loss past 5x its guidance distillation's? The shipped model against its teacher.

    python benchmarks/scenes_distillation.py --work DIR.work [--samples 16] [--steps 28 50]

Needs the training's work folder (``--work`` of ``python -m forecache.reference.train --model
scenes``), which holds the teacher: the detail stage's averaged weights before distillation, run
here with true CFG (``true_cfg_scale`` 3.5, an empty negative prompt, two transformer calls per
step) instead of the distilled guidance embedding. Both are tuned by `forecache.tune` on the first 4
calibration prompts (seeds from 100000) for 6x at 28 steps and 10x at 50, and run with
`TimelineConfig()`; PSNR against each one's own full compute on the first held-out prompts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval.metrics import psnr
from forecache.reference import REFERENCE_MODELS, load_reference
from forecache.reference.scenes.model import build_transformer
from forecache.reference.scenes.prompts import prompt_set

GOALS = {50: 10.0, 28: 6.0}
CALIBRATION_SEED = 100_000


def teacher_of(work: Path) -> Any:
    """The detail stage's averaged transformer from the work folder (the shipped encoders are its own)."""
    state = torch.load(work / "detail.pt", map_location="cpu", weights_only=False)
    prefix = "transformer."
    teacher = build_transformer()
    teacher.load_state_dict(
        {k[len(prefix) :]: v for k, v in state["ema"]["shadow"].items() if k.startswith(prefix)}
    )
    return teacher.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs="+", default=[28, 50])
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_reference("scenes")
    pipe.set_progress_bar_config(disable=True)
    defaults = dict(REFERENCE_MODELS["scenes"].call_defaults)
    variants = {
        "shipped (distilled, guidance 3.5)": (pipe.transformer, defaults),
        "teacher (true CFG 3.5)": (
            teacher_of(args.work),
            {**defaults, "guidance_scale": 1.0, "true_cfg_scale": 3.5, "negative_prompt": ""},
        ),
    }
    prompts = prompt_set("heldout")[: args.samples]
    seeds = list(range(len(prompts)))

    def generate(kwargs: dict[str, Any], steps: int, config: Any = None) -> tuple[Any, int]:
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        call = {"num_inference_steps": steps, "generator": generators, "output_type": "np", **kwargs}
        with count_flops(pipe.transformer) as flops:
            if config is None:
                images = pipe(list(prompts), **call).images
            else:
                with forecache.cached(pipe, config):
                    images = pipe(list(prompts), **call).images
        return images, flops.total

    for name, (transformer, kwargs) in variants.items():
        pipe.transformer = transformer
        for steps in args.steps:
            full, full_flops = generate(kwargs, steps)
            goal = GOALS.get(steps, 6.0)
            started = time.perf_counter()
            call = {"prompt": prompt_set("calibration")[:4], "num_inference_steps": steps, **kwargs}
            result = forecache.tune(pipe, call, ratio=goal, seed=CALIBRATION_SEED, progress=False)
            rows = [(f"tuned for {goal:g}x", result.config), ("TimelineConfig()", forecache.TimelineConfig())]
            for label, config in rows:
                images, flops = generate(kwargs, steps, config)
                pooled, per_sample = psnr(full, images)
                print(
                    f"{name}, {steps} steps, {label}: {full_flops / flops:.2f}x, {pooled:.2f} dB "
                    f"(worst {min(per_sample):.2f} dB)",
                    flush=True,
                )
            print(
                f"  (tuned: computed steps {result.chosen.computed}, partial {result.chosen.partial}, "
                f"calibration {result.psnr_db:.2f} dB, "
                f"{time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
