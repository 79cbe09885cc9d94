"""Record a full-compute trajectory: each context's block-stack residual at every step, sampled.

The recorder is a target of the engine (``"record"``): it computes every step and, at the last
block, keeps the stack's residual per stream, like the ``"blocks"`` target, but appends it to a
per-context record instead of a forecast history. So the recording sees exactly the contexts,
steps and time coordinates a cached run would (guidance branches, two experts, the scheduler's
clock), and the tuner's offline errors are those of the ``"blocks"`` target.

Only a fixed random subset of each residual's elements is kept (`sample`), on the CPU in float32:
the mean squared error over a random subset estimates the one over all elements without bias,
and a 50-step FLUX trajectory then takes a few MiB instead of gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from forecache.accel.context import ContextState
from forecache.accel.policies import Decision
from forecache.accel.streams import StreamIO
from forecache.accel.targets import Block, Engine, Register, Target, register_target
from forecache.accel.targets.stack import PassThrough, attach_stack

__all__ = ["ContextRecord", "RecordingTarget"]


@dataclass
class ContextRecord:
    """The sampled residuals of one context over one generation.

    Attributes:
        name: The context's name (``"cond"``, ``"branch0"``, ``"transformer_2/cond"``...).
        steps: The context's step index of each recorded call.
        timesteps: The call's timestep (the forecasters' ``"timestep"`` coordinate).
        streams: Per stream, a ``(steps, batch, sample)`` float32 tensor, stacked by `finish`.

    """

    name: str = ""
    steps: list[int] = field(default_factory=list)
    timesteps: list[float] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)
    _indices: list[torch.Tensor | None] = field(default_factory=list, repr=False)

    def add(self, ctx: ContextState, residuals: list[torch.Tensor | None], sample: int, seed: int) -> None:
        """Append this step's residuals, keeping the same random elements of each stream every step."""
        if ctx.step in self.steps:  # a recomputed step (the "recompute" fallback) is recorded once
            return
        self.name = ctx.stats.name
        self.steps.append(ctx.step)
        self.timesteps.append(ctx.timestep)
        while len(self.streams) < len(residuals):
            self.streams.append([])
            self._indices.append(None)
        for i, residual in enumerate(residuals):
            if residual is None:
                continue
            rows = residual.detach().reshape(residual.shape[0], -1)
            index = self._indices[i]
            if index is None:
                generator = torch.Generator().manual_seed(seed + i)
                count = rows.shape[1]
                index = torch.randperm(count, generator=generator)[: min(sample, count)].sort().values
                self._indices[i] = index
            self.streams[i].append(rows[:, index.to(rows.device)].float().cpu())

    def finish(self) -> None:
        """Stack each stream's steps into one ``(steps, batch, sample)`` tensor."""
        self.streams = [torch.stack(s) if isinstance(s, list) and s else s for s in self.streams]


class _RecordingState:
    def __init__(self, target: RecordingTarget) -> None:
        self.inputs: list[torch.Tensor | None] = []
        self.record = ContextRecord()
        target.records.append(self.record)


class _RecordingTail(PassThrough):
    def __init__(self, target: RecordingTarget) -> None:
        self.target = target

    def computed(self, ctx: ContextState, io: StreamIO, output: Any) -> None:
        state: _RecordingState = ctx.target_state
        outputs = io.outputs(output)
        residuals = [
            None if out is None or inp is None else out - inp
            for out, inp in zip(outputs, state.inputs, strict=False)
        ]
        state.record.add(ctx, residuals, self.target.sample, self.target.seed)
        state.inputs = []


@register_target("record")
class RecordingTarget(Target):
    """Compute every step and record each context's stack residual (the tuner's trajectory).

    Selected through ``CacheConfig(target="record")`` with a policy that computes every step;
    the records are read from ``session.target.records`` after the generation.

    Attributes:
        sample: Elements kept per sample and stream (a fixed random subset). Default 16384.
        seed: Seed of the subsets.
        records: One `ContextRecord` per context and generation, in creation order.
        blocks: The stack's blocks, in execution order, once attached (whose FLOPs a forecast
            step skips).

    """

    chains_blocks = True

    def __init__(self) -> None:
        self.sample = 16384
        self.seed = 0
        self.records: list[ContextRecord] = []
        self.blocks: list[torch.nn.Module] = []

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """Pass-through hooks (never used: every step computes); the last block records."""

        def role(block: Block, last: bool) -> PassThrough:
            return _RecordingTail(self) if last else PassThrough()

        self.blocks = [block.module for block in blocks]
        attach_stack(engine, blocks, register, role)

    def new_context_state(self) -> _RecordingState:
        """Return a fresh record for a new context."""
        return _RecordingState(self)

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """Keep the stack's input (every step is computed)."""
        if ctx.decision is not Decision.COMPUTE:
            return
        state: _RecordingState = ctx.target_state
        state.inputs = [None if s is None else s.detach().clone() for s in streams]
