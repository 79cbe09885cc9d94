"""What the reference trainings share: resumable stages, an EMA of the weights, a warm-up/cosine schedule."""

from __future__ import annotations

import copy
import math
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "Ema",
    "StagePlan",
    "checked_recipe",
    "load_checkpoint",
    "run_stage",
    "save_checkpoint",
    "step_randomness",
    "warmup_cosine",
]

_CHECKPOINT_EVERY = 100


class Ema:
    """Exponential moving average of a module's parameters, with the usual warm-up of the decay.

    Args:
        module (`nn.Module`): The module being trained.
        decay (`float`): The decay once warmed up (e.g. 0.995).

    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.module = module
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Move the average one step towards the module's current parameters."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, param in zip(self.shadow.parameters(), self.module.parameters(), strict=True):
            avg.lerp_(param, 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        """Return the average's weights and update count (for a checkpoint)."""
        return {"shadow": self.shadow.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.shadow.load_state_dict(state["shadow"])
        self.updates = int(state["updates"])


def warmup_cosine(warmup: int, total: int, floor: float = 0.1) -> Any:
    """Return a `LambdaLR` factor: linear warm-up over `warmup` steps, cosine decay to `floor` at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def step_randomness(seed: int, stage: str, step: int) -> tuple[random.Random, torch.Generator]:
    """Return the Python and torch generators of one training step, derived from (seed, stage, step) alone.

    Every step draws its data and noise from these, so a run resumed from a checkpoint at step k
    makes exactly the batches an uninterrupted run makes from step k on.
    """
    key = f"{seed}/{stage}/{step}"
    torch_gen = torch.Generator().manual_seed(zlib.crc32(key.encode()) * 2654435761 % (2**63))
    return random.Random(key), torch_gen


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """Return the checkpoint at `path`, or None when there is none."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


@dataclass(frozen=True)
class StagePlan:
    """One stage's optimisation settings.

    Args:
        steps (`int`): Optimizer steps.
        batch (`int`): Samples (scenes, clips) per step.
        lr (`float`): Peak AdamW learning rate (linear warm-up, cosine decay to a tenth).
        warmup (`int`): Warm-up steps.
        ema (`float`): EMA decay of the weights kept (0 keeps the trained weights themselves).
        shift (`float`, defaults to 3.0): Flow-matching stages: noise levels are ``shift * u / (1 +
            (shift - 1) * u)`` for uniform u (1.0: uniform; 3.0: mostly high noise).

    """

    steps: int
    batch: int
    lr: float
    warmup: int
    ema: float
    shift: float = 3.0


def checked_recipe(
    recipe: dict[str, StagePlan] | None, default: dict[str, StagePlan]
) -> dict[str, StagePlan]:
    """Return `recipe` (`default` when None), refusing one that lacks a stage of `default`.

    Raises:
        ValueError: `recipe` lacks a stage (naming the stages and the missing ones).

    """
    recipe = default if recipe is None else recipe
    missing = set(default) - set(recipe)
    if missing:
        raise ValueError(
            f"`recipe` must have the stages {', '.join(default)}; missing {', '.join(sorted(missing))}"
        )
    return recipe


def run_stage(
    name: str,
    module: nn.Module,
    plan: StagePlan,
    loss_fn: Callable[[int, Any, torch.Generator], torch.Tensor],
    work: Path,
    seed: int,
    log: Callable[[str], None],
) -> Any:
    """Train `module` by AdamW on `loss_fn(batch, rng, generator)`, resuming from `work/<name>.pt`.

    Args:
        name (`str`): The stage's name (its checkpoint file and its randomness key).
        module (`nn.Module`): What is trained (its parameters that require gradients).
        plan (`StagePlan`): Steps, batch, learning rate, warm-up, EMA decay.
        loss_fn (`Callable`): `loss_fn(batch, rng, generator)` returns the step's scalar loss.
        work (`Path`): Folder of the checkpoint.
        seed (`int`): The training's seed.
        log (`Callable[[str], None]`): Where progress lines go (every 50 steps).

    Every step draws from `step_randomness(seed, name, step)`; checkpoints are written every 100
    steps and at the last, so a resumed stage ends with the weights of an uninterrupted one.

    Returns:
        The EMA of the weights (or the weights, if `plan.ema` is 0), in eval mode, frozen.

    """
    path = work / f"{name}.pt"
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(plan.warmup, plan.steps))
    ema = Ema(module, plan.ema) if plan.ema > 0 else None
    start = 0
    state = load_checkpoint(path)
    if state is not None:
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start = int(state["step"])
        log(f"[{name}] resumed at step {start}/{plan.steps}")

    def checkpoint(step: int) -> None:
        save_checkpoint(
            path,
            {
                "module": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "step": step,
            },
        )

    module.train()
    clock, running = time.perf_counter(), 0.0
    for step in range(start, plan.steps):
        rng, gen = step_randomness(seed, name, step)
        loss = loss_fn(plan.batch, rng, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if ema is not None:
            ema.update()
        running += loss.item()
        done = step + 1
        if done % 50 == 0 or done == plan.steps:
            count = 50 if done % 50 == 0 else done % 50
            elapsed = time.perf_counter() - clock
            log(f"[{name}] step {done}/{plan.steps}  loss {running / count:.4f}  {elapsed:.0f}s")
            running = 0.0
        if done % _CHECKPOINT_EVERY == 0 or done == plan.steps:
            checkpoint(done)
    kept = ema.shadow if ema is not None else module
    return kept.eval().requires_grad_(False)
