"""Host time per transformer call at FLUX.1-dev depth (19 + 38 blocks) with a tiny width, on CPU.

    python benchmarks/host_overhead.py [--steps 28] [--repeats 3]

With 16-wide heads the arithmetic is negligible, so a call's wall time is what the host spends
issuing it: the model's own Python and operator dispatch, plus forecache's hooks and forecasts.
On a GPU the host must issue a step faster than the device runs it, or the device idles; this
measures the issuing side of forecast steps (which do little device work) for each target, next
to computed steps and the uncached baseline. One torch thread; medians over the repeats of the
calling thread's CPU time (`time.thread_time`), so other processes on a shared machine do not
inflate it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

import forecache

CONFIGS = {
    "taylorseer (modules)": forecache.TaylorSeerConfig(),
    "taylorseer (blocks)": forecache.TaylorSeerConfig(target="blocks"),
    "ab (output)": forecache.AdamsBashforthConfig(),
    "cg (blocks)": forecache.ConfidenceGateConfig(),
}


def build() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    g = torch.Generator().manual_seed(0)
    inputs = {
        "hidden_states": torch.randn(1, 64, 16, generator=g),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=g),
        "pooled_projections": torch.randn(1, 16, generator=g),
        "img_ids": torch.zeros(64, 3),
        "txt_ids": torch.zeros(8, 3),
        "guidance": torch.full((1,), 3.5),
    }
    return model, inputs


def trajectory(model: torch.nn.Module, inputs: dict, scheduler, steps: int) -> list[float]:
    """Seconds per transformer call over one trajectory."""
    scheduler.set_timesteps(steps)
    scheduler.set_begin_index(0)
    latents, times = inputs["hidden_states"], []
    with torch.no_grad():
        for t in scheduler.timesteps:
            start = time.thread_time()
            call = {**inputs, "hidden_states": latents, "timestep": t.expand(1) / 1000}
            out = model(**call, return_dict=False)[0]
            times.append(time.thread_time() - start)
            latents = scheduler.step(out, t, latents, return_dict=False)[0]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, inputs = build()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    trajectory(model, inputs, scheduler, args.steps)  # warm-up
    runs = [trajectory(model, inputs, scheduler, args.steps) for _ in range(args.repeats)]
    base = statistics.median(t for run in runs for t in run)
    print(f"57 blocks, tiny width, {args.steps} steps, 1 thread; median CPU ms per call")
    print("| method | computed step | forecast step | forecast / baseline |")
    print("|---|---|---|---|")
    print(f"| baseline | {base * 1e3:.2f} | - | - |")
    for name, config in CONFIGS.items():
        with forecache.cached(model, config, scheduler=scheduler):
            trajectory(model, inputs, scheduler, args.steps)  # warm-up
            computed, forecast = [], []
            for _ in range(args.repeats):
                times = trajectory(model, inputs, scheduler, args.steps)
                decisions = forecache.stats(model).contexts["branch0"].decisions
                for seconds, decision in zip(times, decisions, strict=True):
                    (forecast if decision == "F" else computed).append(seconds)
        c, f = statistics.median(computed), statistics.median(forecast)
        print(f"| {name} | {c * 1e3:.2f} | {f * 1e3:.2f} | {f / base:.2f} |")


if __name__ == "__main__":
    main()
