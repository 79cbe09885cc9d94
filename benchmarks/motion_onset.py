"""From which noise level does a trained motion model keep the motion of a clip it is shown?

    python benchmarks/motion_onset.py --pipeline DIR --judge DIR-judge --work DIR.work [--clips 16]

Needs the training's folders (``python -m forecache.reference.train --model motion --out DIR``):
the pipeline, its judge, and the work folder whose ``pool.pt`` holds the training clips' latents
and captions. The last `--clips` training clips are noised to each starting level sigma0 (one seeded
noise draw) and sampled down from there with the pipeline's own transformer: Euler steps on the
pipeline scheduler's grid of 28 steps, the model's classifier-free guidance (4) with an empty
negative prompt, as `WanPipeline` does. The judge then reads each clip's adherence and motion
accuracy against its caption. sigma0 = 1 is generation from noise; where the motion is kept from a
lower sigma0 and lost from a higher one is where the model has to decide it from the text alone.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import WanPipeline

from forecache.reference.models import MotionJudgeAdapter
from forecache.reference.motion.model import CALL_DEFAULTS
from forecache.reference.training import load_checkpoint

LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
STEPS = 28
GUIDANCE = CALL_DEFAULTS["guidance_scale"]


def decode(vae: Any, latents: torch.Tensor) -> np.ndarray:
    """Normalised latents to clips `(N, frames, H, W, 3)` in [0, 1]."""
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        video = vae.decode(latents * std + mean).sample.clamp(-1, 1)
    return ((video + 1) / 2).permute(0, 2, 3, 4, 1).numpy()


def sample_from(
    pipe: Any, x: torch.Tensor, start: float, cond: torch.Tensor, uncond: torch.Tensor
) -> torch.Tensor:
    """Euler with CFG from noise level `start` to 0 over the grid points below it."""
    pipe.scheduler.set_timesteps(STEPS)
    grid = pipe.scheduler.sigmas.tolist()  # the pipeline's own grid, ending at 0
    levels = [start] + [s for s in grid if s < start - 1e-6]
    with torch.no_grad():
        for high, low in itertools.pairwise(levels):
            t = torch.full((len(x),), high * 1000.0)
            v_cond = pipe.transformer(
                hidden_states=x, timestep=t, encoder_hidden_states=cond, return_dict=False
            )[0]
            v_unc = pipe.transformer(
                hidden_states=x, timestep=t, encoder_hidden_states=uncond, return_dict=False
            )[0]
            x = x + (low - high) * (v_unc + GUIDANCE * (v_cond - v_unc))
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True, help="the trained motion pipeline folder")
    parser.add_argument("--judge", required=True, help="its judge's folder")
    parser.add_argument("--work", required=True, help="the training's work folder (pool.pt)")
    parser.add_argument("--clips", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = WanPipeline.from_pretrained(args.pipeline)
    judge = MotionJudgeAdapter(args.judge)
    pool = load_checkpoint(Path(args.work) / "pool.pt")
    if pool is None:
        raise SystemExit(f"--work: no pool.pt in {args.work}")
    x0, captions = pool["latents"][-args.clips :], pool["captions"][-args.clips :]
    cond, uncond = pipe.encode_prompt(
        captions,
        negative_prompt=[""] * len(captions),
        do_classifier_free_guidance=True,
        max_sequence_length=CALL_DEFAULTS["max_sequence_length"],
    )
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    rows = [("clean, through the VAE", decode(pipe.vae, x0))]
    for start in LEVELS:
        latents = sample_from(pipe, (1 - start) * x0 + start * noise, start, cond, uncond)
        rows.append((f"from sigma {start:g}", decode(pipe.vae, latents)))
    print(f"{len(captions)} training clips, the scheduler's {STEPS}-step grid, CFG {GUIDANCE:g}")
    print("| start | adherence | motion accuracy |\n|---|---|---|")
    for label, clips in rows:
        adherence = judge.adherence(clips, captions).mean()
        motion = judge.motion_accuracy(clips, captions).mean()
        print(f"| {label} | {adherence:.3f} | {motion:.3f} |", flush=True)


if __name__ == "__main__":
    main()
