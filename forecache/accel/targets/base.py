"""The target axis: what is cached and forecast. Its Protocol, its registry and the block description.

A target owns its attachment: which hooks go on the transformer's blocks (by role: probe, stack
head, pass-through, stack tail) and on their sub-modules, what it keeps per guidance branch, and
what the whole call does at a forecast step. Its hooks live in its own module and see the engine
only as an `Engine` (the call in progress, the stack's entry). The engine calls these methods; it
never switches on a target's name.

To add a target: one module with a class implementing `Target` (``attach`` at least; the other
members have defaults), decorated with ``@register_target("name")``, plus its test;
``CacheConfig(target="name")`` then selects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from forecache.accel.context import ContextState
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.registry import Registry
from forecache.accel.streams import StreamIO

__all__ = [
    "TARGETS",
    "Block",
    "BlockRole",
    "Engine",
    "Register",
    "Target",
    "blocks_of",
    "chains_blocks",
    "register_target",
    "runs_partial_steps",
]

Register = Callable[[torch.nn.Module, Any, str], None]
"""``register(module, hook, hook_name)``: attach a diffusers `ModelHook` to a module, removably."""


def register_target(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Register a target class under `name` (a class decorator; optional members get their defaults).

    The class is built with no arguments, once per attached transformer.
    """
    return TARGETS.register(name, replace=replace)


def chains_blocks(target: str) -> bool:
    """Whether the registered target `target` needs its blocks chained (`Target.chains_blocks`)."""
    cls: type[Target] = TARGETS.get(target)
    return cls.chains_blocks


def runs_partial_steps(target: str) -> bool:
    """Whether the registered target `target` can run a partial step (`Target.partial_steps`)."""
    cls: type[Target] = TARGETS.get(target)
    return cls.partial_steps


@dataclass(frozen=True)
class Block:
    """One transformer block in execution order.

    Attributes:
        index: Position in the execution order of all blocks.
        name: Dotted name relative to the transformer, e.g. ``"transformer_blocks.3"``.
        module: The block.
        layout: Its block list's layout (streams, cached sub-modules).

    """

    index: int
    name: str
    module: torch.nn.Module
    layout: BlockListLayout


def blocks_of(transformer: torch.nn.Module, layout: ModelLayout) -> list[Block]:
    """Return the blocks of `transformer` in execution order, as `layout` lists them.

    Raises:
        ValueError: If a block list is missing or not a `torch.nn.ModuleList`, or there are no blocks.

    """
    blocks: list[Block] = []
    for block_list in layout.block_lists:
        modules = getattr(transformer, block_list.attr, None)
        if not isinstance(modules, torch.nn.ModuleList):
            raise ValueError(
                f"forecache: {type(transformer).__name__} has no block list `{block_list.attr}` "
                f"(expected a torch.nn.ModuleList, got {type(modules).__name__})"
            )
        for i, block in enumerate(modules):
            blocks.append(Block(len(blocks), f"{block_list.attr}.{i}", block, block_list))
    if not blocks:
        raise ValueError(f"forecache: {type(transformer).__name__} has no transformer blocks to cache")
    return blocks


class BlockRole:
    """What a block of the cached stack does besides running at computed steps (set by the target).

    The base role runs the block at forecast steps too (its cached sub-modules forecast inside).
    """

    def computed(self, ctx: ContextState, io: StreamIO, output: Any) -> None:
        """After the block ran at a computed step."""

    def forecast(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Return the block's output at a forecast step; ``run()`` runs the block."""
        return run()

    def partial(
        self,
        ctx: ContextState,
        io: StreamIO,
        run: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Return the block's output at a partial step (targets with `Target.partial_steps`).

        Default: run it, as at a computed step.
        """
        output = run()
        self.computed(ctx, io, output)
        return output


class Engine(Protocol):
    """What a target's hooks see of the engine (the `CacheSession` of the transformer)."""

    probe_blocks: int
    """Blocks that run at every step before the cached stack (the policy's probes)."""
    observes: bool
    """Whether the policy judges steps by the stack's input (its head must be hooked)."""
    partial_blocks: tuple[int, int]
    """The blocks ``(first, end)`` of the stack a partial step forecasts (the policy's); (0, 0): none."""

    @property
    def current(self) -> ContextState | None:
        """The context of the calling thread's call in progress (None between calls)."""

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first block after the probes: settle a probed step, then let the target see the input."""


class Target(Protocol):
    """What is cached: built once per attached transformer (so it may keep per-model state).

    `attach` is required; the members given a value here are optional: a registered class without
    one gets this default.
    """

    unit: str = "block"
    """What `stats` counts as executed units: ``"block"`` (default) or ``"module"``."""
    allows_fullgraph: bool = True
    """Whether ``torch.compile(fullgraph=True)`` of a block can hold its hooks (none inside the block)."""
    chains_blocks: bool = False
    """Whether its forecast spans the block stack (a residual from the stack's input to its output,
    the input passed through the blocks in between), so an inferred layout must be a chain of block
    lists with no glue between them (`forecache.layouts.infer`). Default False."""
    partial_steps: bool = False
    """Whether it can run a partial step (``ctx.partial``: the stack's `Engine.partial_blocks` are
    forecast, the other blocks run). Default False: a policy with partial steps is refused."""

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """Register this target's hooks on the blocks after the probes and on their sub-modules."""

    def plan(self, blocks: list[Block], probe_blocks: int, model: str) -> list[int]:
        """Return the cached units of each block (for compute counting); refuse what cannot work.

        Default: one unit per block.

        Raises:
            ValueError: If a block cannot be cached this way (naming the block and the reason).

        """
        return [1] * len(blocks)

    def forecast_units(self, units_per_block: list[int], probe_blocks: int) -> int:
        """Return the units that still execute at a forecast step. Default: the probe blocks'."""
        return sum(units_per_block[:probe_blocks])

    def new_context_state(self) -> Any:
        """Return what the target keeps per guidance branch and generation. Default: None."""
        return None

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first block after the probes, once the step's decision is settled. Default: nothing."""

    def run_call(self, ctx: ContextState, forward: Callable[[], Any]) -> Any:
        """Run one transformer call (``forward()`` runs the model as hooked) or forecast all of it.

        Default: run it (the hooks inside do the rest).
        """
        return forward()


TARGETS: Registry[type] = Registry(
    "target",
    Target,
    optional=(
        "unit",
        "allows_fullgraph",
        "chains_blocks",
        "partial_steps",
        "plan",
        "forecast_units",
        "new_context_state",
        "enter_stack",
        "run_call",
    ),
)
