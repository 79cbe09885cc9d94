"""Which step to make partial and which blocks to forecast there: the evidence behind the tuner's search.

    python benchmarks/partial_steps.py [--samples 32]

On the scenes model (held-out prompts, seed i for sample i, one torch thread), the five computed
steps the tuner chose at 5.5x (28 steps) and 9.7x (50 steps), with `Reuse`: first all five full,
then each of the four later ones in turn made partial, forecasting a span of the 12 blocks (the
stack's start, its middle or its end) whose FLOPs bring the ratio to 6x (28 steps: 5 blocks) or
10x (50 steps: 2 blocks). Cells: PSNR against full compute, pooled (worst sample), at the ratio
the FLOPs counter measured. About 10 minutes on one core.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import forecache
from forecache.accel.forecasters import Reuse
from forecache.accel.policies import Timeline
from forecache.calibrate.flops import count_flops
from forecache.eval.metrics import psnr
from forecache.reference import REFERENCE_MODELS, load_reference
from forecache.reference.scenes.prompts import prompt_set

#: steps: (the five computed steps `forecache.tune` chose for 5.5x / 9.7x, the spans to try)
PLANS = {
    28: ([0, 1, 5, 13, 22], [(0, 5), (2, 7), (4, 9), (7, 12)]),
    50: ([0, 2, 8, 24, 39], [(0, 2), (4, 6), (10, 12)]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_reference("scenes")
    pipe.set_progress_bar_config(disable=True)
    held = prompt_set("heldout")
    prompts = [held[i % len(held)] for i in range(args.samples)]
    defaults = REFERENCE_MODELS["scenes"].call_defaults

    def generate(steps: int, policy: Timeline | None = None) -> tuple[np.ndarray, int]:
        generators = [torch.Generator().manual_seed(i) for i in range(args.samples)]
        kwargs = {"num_inference_steps": steps, "generator": generators, "output_type": "np", **defaults}
        config = None if policy is None else forecache.CacheConfig(policy=policy, forecaster=Reuse())
        with count_flops(pipe.transformer) as flops:
            if config is None:
                images = pipe(prompts, **kwargs).images
            else:
                with forecache.cached(pipe, config):
                    images = pipe(prompts, **kwargs).images
        return np.asarray(images, dtype=np.float64), flops.total

    for steps, (computed, spans) in PLANS.items():
        full, full_flops = generate(steps)

        def cell(
            policy: Timeline, steps: int = steps, full: np.ndarray = full, full_flops: int = full_flops
        ) -> str:
            images, flops = generate(steps, policy)
            pooled, per_sample = psnr(full, images)
            return f"{pooled:.1f} ({min(per_sample):.1f}) @{full_flops / flops:.2f}x"

        whole = cell(Timeline.from_steps(computed, steps))
        print(f"\n## {steps} steps, computed {computed}: all five full: {whole}")
        print("| partial step | " + " | ".join(f"blocks {a}-{b - 1} forecast" for a, b in spans) + " |")
        print("|---|" + "---|" * len(spans))
        for step in computed[1:]:
            full_steps = [s for s in computed if s != step]
            row = [cell(Timeline.from_steps(full_steps, steps, [step], span)) for span in spans]
            print(f"| {step} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
