"""Reproducible (seeded) training of the shipped reference models and classifier on the digits data.

Usage::

    python -m forecache.reference.train --model flux-digits --out DIR --steps N
    python -m forecache.reference.train --model flux-digits-deep --out DIR --steps N
    python -m forecache.reference.train --model dit-digits --out DIR --steps N
    python -m forecache.reference.train --model classifier --out DIR --steps N
    python -m forecache.reference.train --model scenes --out DIR [--work DIR] [--judge-out DIR]
    python -m forecache.reference.train --model motion --out DIR [--work DIR] [--judge-out DIR]

The shipped weights were made with the commands in `forecache/reference/__init__.py`. The scenes
model trains in five resumable stages (`forecache.reference.scenes.train`), the motion model in
five (`forecache.reference.motion.train`; its two-expert variant goes to OUT-experts); rerunning
the same command with the same ``--work`` folder resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from forecache.reference.classifier import DigitClassifier
from forecache.reference.data import IMAGE_SIZE, NUM_CLASSES, load_digits_16
from forecache.reference.dit_digits import DiTDigitsPipeline, build_dit_digits
from forecache.reference.flux_digits import (
    FLUX_DIGITS_SIZES,
    FluxDigitsPipeline,
    build_flux_digits,
    image_ids,
)
from forecache.reference.inputs import flux_pack
from forecache.reference.training import Ema

__all__ = ["main", "train_classifier", "train_dit", "train_flux"]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def _fit(
    module: nn.Module,
    loss_fn: LossFn,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    split: Literal["all", "train", "test"] = "all",
) -> None:
    """Run AdamW with linear warm-up on random mini-batches; logs the mean loss every 50 steps."""
    images, labels = load_digits_16(split)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.0)
    warmup = min(100, steps // 10 + 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    module.train()
    start, running = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        index = torch.randint(0, len(labels), (batch_size,), generator=generator)
        loss = loss_fn(images[index], labels[index], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        if step % 50 == 0 or step == steps:
            n = 50 if step % 50 == 0 else step % 50
            print(
                f"step {step}/{steps}  loss {running / n:.4f}  {time.perf_counter() - start:.0f}s", flush=True
            )
            running = 0.0


def train_flux(
    steps: int, batch_size: int = 64, lr: float = 5e-4, seed: int = 0, name: str = "flux-digits"
) -> FluxDigitsPipeline:
    """Train a Flux reference model by rectified flow, with 10% label dropout for guidance.

    Args:
        steps (`int`): Optimizer steps.
        batch_size (`int`, defaults to 64): Images per step.
        lr (`float`, defaults to 5e-4): AdamW learning rate (after a linear warm-up).
        seed (`int`, defaults to 0): Seeds initial weights, batches, noise and label dropout.
        name (`str`, defaults to `"flux-digits"`): Which architecture, a key of `FLUX_DIGITS_SIZES`.

    Returns:
        The trained pipeline; its weights are the EMA (decay 0.995) of the trained ones.

    Raises:
        ValueError: `name` is not a key of `FLUX_DIGITS_SIZES`.

    """
    if name not in FLUX_DIGITS_SIZES:
        raise ValueError(f"`name` must be one of {', '.join(FLUX_DIGITS_SIZES)}, got {name!r}")
    torch.manual_seed(seed)
    pipe = build_flux_digits(**FLUX_DIGITS_SIZES[name])
    transformer, embedder = pipe.transformer, pipe.class_embedder
    shift = float(pipe.scheduler.config["shift"])
    both = nn.ModuleDict({"transformer": transformer, "class_embedder": embedder})
    ema = Ema(both, decay=0.995)
    img_ids = image_ids(IMAGE_SIZE // 2, IMAGE_SIZE // 2, torch.device("cpu"), torch.float32)
    txt_ids = torch.zeros(embedder.config["tokens_per_class"], 3)

    def loss_fn(x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        ema.update()
        y = torch.where(torch.rand(y.shape, generator=gen) < 0.1, torch.full_like(y, NUM_CLASSES), y)
        noise = torch.randn(x0.shape, generator=gen)
        u = torch.rand(x0.shape[0], generator=gen)
        sigma = shift * u / (1 + (shift - 1) * u)
        s = sigma.view(-1, 1, 1, 1)
        tokens, pooled = embedder(y)
        pred = transformer(
            hidden_states=flux_pack((1 - s) * x0 + s * noise),
            timestep=sigma,
            guidance=None,
            pooled_projections=pooled,
            encoder_hidden_states=tokens,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        return F.mse_loss(pred, flux_pack(noise - x0))

    _fit(both, loss_fn, steps, batch_size, lr, seed)
    ema.update()
    both.load_state_dict(ema.shadow.state_dict())
    return pipe


def train_dit(steps: int, batch_size: int = 64, lr: float = 5e-4, seed: int = 0) -> DiTDigitsPipeline:
    """Train the DiT reference model (DiT's own 10% label dropout in training gives the null class).

    Args:
        steps (`int`): Optimizer steps.
        batch_size (`int`, defaults to 64): Images per step.
        lr (`float`, defaults to 5e-4): AdamW learning rate (after a linear warm-up).
        seed (`int`, defaults to 0): Seeds initial weights, batches, noise and label dropout.

    Returns:
        The trained pipeline; its weights are the EMA (decay 0.995) of the trained ones.

    """
    torch.manual_seed(seed)
    pipe = build_dit_digits()
    transformer, noise_scheduler = pipe.transformer, pipe.scheduler
    ema = Ema(transformer, decay=0.995)
    num_train = int(noise_scheduler.config["num_train_timesteps"])
    prediction_type = noise_scheduler.config["prediction_type"]

    def loss_fn(x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        ema.update()
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, num_train, (x0.shape[0],), generator=gen)
        noisy = noise_scheduler.add_noise(x0, noise, t)
        pred = transformer(noisy, timestep=t, class_labels=y, return_dict=False)[0]
        velocity = prediction_type == "v_prediction"
        return F.mse_loss(pred, noise_scheduler.get_velocity(x0, noise, t) if velocity else noise)

    _fit(transformer, loss_fn, steps, batch_size, lr, seed)
    ema.update()
    transformer.load_state_dict(ema.shadow.state_dict())
    return pipe


def train_classifier(steps: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> DigitClassifier:
    """Train the digit classifier on the train split, with random 1-pixel shifts, and reports test accuracy.

    Args:
        steps (`int`): Optimizer steps.
        batch_size (`int`, defaults to 128): Images per step.
        lr (`float`, defaults to 1e-3): AdamW learning rate (after a linear warm-up).
        seed (`int`, defaults to 0): Seeds initial weights, batches and augmentation.

    Returns:
        The trained classifier, in eval mode.

    """
    torch.manual_seed(seed)
    model = DigitClassifier()

    def loss_fn(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        dy, dx = torch.randint(-1, 2, (2,), generator=gen).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        return F.cross_entropy(model(x), y)

    _fit(model, loss_fn, steps, batch_size, lr, seed, split="train")
    model.eval()
    images, labels = load_digits_16("test")
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    print(f"held-out test accuracy: {accuracy:.4f} ({len(labels)} images)", flush=True)
    return model


def _save_whole(save: Callable[[str], None], out: Path) -> None:
    """Run `save(folder)` into a temporary sibling folder, then put it at `out` (no half-written folder)."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _train_scenes(out: Path, work: str | None, judge_out: str | None, seed: int) -> None:
    """Train the scenes pipeline and judge, then save both whole."""
    from forecache.reference.scenes.train import train_scenes

    pipe, judge = train_scenes(work or out.with_name(out.name + ".work"), seed=seed)
    _save_whole(pipe.save_pretrained, out)
    _save_whole(judge.save_pretrained, Path(judge_out) if judge_out else out.with_name(out.name + "-judge"))


def _train_motion(out: Path, work: str | None, judge_out: str | None, seed: int) -> None:
    """Train the motion pipeline, its two-expert variant and its judge, then save all three whole."""
    from forecache.reference.motion.model import save_experts
    from forecache.reference.motion.train import train_motion

    pipe, experts, judge = train_motion(work or out.with_name(out.name + ".work"), seed=seed)
    _save_whole(pipe.save_pretrained, out)
    _save_whole(lambda folder: save_experts(experts, folder), out.with_name(out.name + "-experts"))
    _save_whole(judge.save_pretrained, Path(judge_out) if judge_out else out.with_name(out.name + "-judge"))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: trains one model and saves it with `save_pretrained`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--model",
        required=True,
        choices=[*FLUX_DIGITS_SIZES, "dit-digits", "classifier", "scenes", "motion"],
    )
    parser.add_argument("--out", required=True, help="directory to save_pretrained into")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (digits models; required there)"
    )
    parser.add_argument(
        "--work", default=None, help="scenes, motion: checkpoint folder (default: OUT.work); resumes"
    )
    parser.add_argument(
        "--judge-out", default=None, help="scenes, motion: where the judge goes (default: OUT-judge)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (models), 128 (classifier)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.model in ("scenes", "motion"):
        train = _train_scenes if args.model == "scenes" else _train_motion
        train(Path(args.out), args.work, args.judge_out, args.seed)
        print(f"saved {args.model} to {args.out}; wall time {time.perf_counter() - start:.1f}s", flush=True)
        return
    if args.steps is None:
        parser.error(f"--steps is required for --model {args.model}")
    if args.model in FLUX_DIGITS_SIZES:
        pipe = train_flux(args.steps, batch_size=args.batch_size or 64, seed=args.seed, name=args.model)
        pipe.save_pretrained(args.out)
    elif args.model == "dit-digits":
        train_dit(args.steps, batch_size=args.batch_size or 64, seed=args.seed).save_pretrained(args.out)
    else:
        train_classifier(args.steps, batch_size=args.batch_size or 128, seed=args.seed).save_pretrained(
            args.out
        )
    print(f"saved {args.model} to {args.out}; wall time {time.perf_counter() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
