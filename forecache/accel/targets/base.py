"""The target axis: what is cached and forecast. Its Protocol, its registry and the block description.

A target owns its attachment: which hooks go on the transformer's blocks (by role: probe, stack
head, pass-through, stack tail) and on their sub-modules, what it keeps per guidance branch, and
what the whole call does at a forecast step. The engine calls these methods; it never switches on
a target's name.

To add a target: one module with a class implementing `Target`, decorated with
``@register_target("name")``, plus its test; ``CacheConfig(target="name")`` then selects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from forecache.accel.layout import BlockListLayout
from forecache.accel.registry import Registry

if TYPE_CHECKING:
    from forecache.accel.state import CacheSession, ContextState
    from forecache.accel.streams import StreamIO

__all__ = ["TARGETS", "Block", "BlockRole", "Register", "Target", "chains_blocks", "register_target"]

TARGETS: Registry[type] = Registry("target")
Register = Callable[[torch.nn.Module, Any, str], None]
"""``register(module, hook, hook_name)``: attach a diffusers `ModelHook` to a module, removably."""


def register_target(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Register a target class under `name` (a class decorator); it is built with no arguments."""
    return TARGETS.register(name, replace=replace)


def chains_blocks(target: str) -> bool:
    """Whether the registered target `target` needs its blocks chained (`Target.chains_blocks`)."""
    return bool(getattr(TARGETS.get(target), "chains_blocks", False))


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


@runtime_checkable
class Target(Protocol):
    """What is cached: built once per attached transformer (so it may keep per-model state)."""

    unit: str
    """What `stats` counts as executed units: ``"block"`` or ``"module"``."""
    allows_fullgraph: bool
    """Whether ``torch.compile(fullgraph=True)`` of a block can hold its hooks (none inside the block)."""
    chains_blocks: bool
    """Whether its forecast spans the block stack (a residual from the stack's input to its output,
    the input passed through the blocks in between), so an inferred layout must be a chain of block
    lists with no glue between them (`forecache.layouts.infer`). Optional; False when absent."""

    def plan(self, blocks: list[Block], probe_blocks: int, model: str) -> list[int]:
        """Return the cached units of each block (for compute counting); refuse what cannot work.

        Raises:
            ValueError: If a block cannot be cached this way (naming the block and the reason).

        """

    def forecast_units(self, units_per_block: list[int], probe_blocks: int) -> int:
        """Return the units that still execute at a forecast step (the probe blocks' for built-ins)."""

    def attach(self, session: CacheSession, blocks: list[Block], register: Register) -> None:
        """Register this target's hooks on the blocks after the probes and on their sub-modules."""

    def new_context_state(self) -> Any:
        """Return what the target keeps per guidance branch and generation (None if nothing)."""

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """At the first block after the probes, once the step's decision is settled."""

    def run_call(self, session: CacheSession, ctx: ContextState, forward: Callable[[], Any]) -> Any:
        """Run one transformer call (``forward()`` runs the model as hooked) or forecast all of it."""
