"""The ``"modules"`` target: the attention and feed-forward outputs inside every block (TaylorSeer).

Most faithful (the blocks' norms, modulation and residual adds still run at forecast steps) and
the most memory and host time: one history per cached sub-module and order, and the blocks' own
Python at every step. Its hooks sit inside the blocks, so a block compiled with
``fullgraph=True`` cannot hold them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from forecache.accel.targets.base import Block, BlockRole, Register, register_target
from forecache.accel.targets.stack import attach_stack

if TYPE_CHECKING:
    from forecache.accel.state import CacheSession, ContextState

__all__ = ["ModulesTarget"]


def _present(block: torch.nn.Module, names: tuple[str, ...]) -> list[str]:
    present = []
    for name in names:
        try:
            block.get_submodule(name)
        except AttributeError:
            continue
        present.append(name)
    return present


@register_target("modules")
class ModulesTarget:
    """Cache each block's attention and feed-forward outputs; the blocks themselves always run."""

    unit = "module"
    chains_blocks = False
    allows_fullgraph = False

    def __init__(self) -> None:
        self._cached: list[list[str]] = []
        self._skipped: list[list[str]] = []

    def plan(self, blocks: list[Block], probe_blocks: int, model: str) -> list[int]:
        """One unit per cached sub-module; a block after the probes without any is refused."""
        self._cached = [_present(b.module, b.layout.modules) for b in blocks]
        self._skipped = [_present(b.module, b.layout.skipped_modules) for b in blocks]
        for block, cached in zip(blocks[probe_blocks:], self._cached[probe_blocks:], strict=True):
            if not cached:
                raise ValueError(
                    f"forecache: block `{block.name}` of {model} has none of the cached sub-modules "
                    f"{list(block.layout.modules)}; use target='blocks' or fix the layout"
                )
        return [len(names) for names in self._cached]

    def forecast_units(self, units_per_block: list[int], probe_blocks: int) -> int:
        """Return the probe blocks' units: nothing else of the cached part runs at a forecast step."""
        return sum(units_per_block[:probe_blocks])

    def attach(self, session: CacheSession, blocks: list[Block], register: Register) -> None:
        """Block hooks that count (the block runs at every step); module hooks that forecast."""
        from forecache.accel.hooks import MODULE_HOOK, SKIP_HOOK, ModuleHook, SkipHook

        if session.observes:  # the blocks run at every step: only a judging policy needs the head
            attach_stack(session, blocks, register, lambda block, last: BlockRole(), head_only=True)
        for block in blocks[session.probe_blocks :]:
            for sub in self._cached[block.index]:
                hook = ModuleHook(session, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, MODULE_HOOK)
            for sub in self._skipped[block.index]:
                hook = SkipHook(session, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, SKIP_HOOK)

    def new_context_state(self) -> None:
        """Nothing per branch beyond the sites."""
        return None

    def enter_stack(self, ctx: ContextState, streams: list[torch.Tensor | None]) -> None:
        """Nothing to keep from the stack's input."""

    def run_call(self, session: CacheSession, ctx: ContextState, forward: Callable[[], Any]) -> Any:
        """Run the whole model at every step; the module hooks forecast inside it."""
        return forward()
