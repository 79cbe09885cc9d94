"""What the reference trainings share: an EMA of the weights, a warm-up/cosine schedule, checkpoints."""

from __future__ import annotations

import copy
import math
import os
import random
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Ema", "load_checkpoint", "save_checkpoint", "step_randomness", "warmup_cosine"]


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
