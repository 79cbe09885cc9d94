"""The ``"modules"`` target: the attention and feed-forward outputs inside every block (TaylorSeer).

Most faithful (the blocks' norms, modulation and residual adds still run at forecast steps) and
the most memory and host time: one history per cached sub-module and order, and the blocks' own
Python at every step. Its hooks (`forecache.accel.targets.hooks`) sit inside the blocks, so a
block compiled with ``fullgraph=True`` cannot hold them.
"""

from __future__ import annotations

import torch

from forecache.accel.targets.base import Block, BlockRole, Engine, Register, Target, register_target
from forecache.accel.targets.stack import attach_stack

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
class ModulesTarget(Target):
    """Cache each block's attention and feed-forward outputs; the blocks themselves always run."""

    unit = "module"
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

    def attach(self, engine: Engine, blocks: list[Block], register: Register) -> None:
        """Block hooks that count (the block runs at every step); module hooks that forecast."""
        from forecache.accel.targets.hooks import MODULE_HOOK, SKIP_HOOK, ModuleHook, SkipHook  # diffusers

        if engine.observes:  # the blocks run at every step: only a judging policy needs the head
            attach_stack(engine, blocks, register, lambda block, last: BlockRole(), head_only=True)
        for block in blocks[engine.probe_blocks :]:
            for sub in self._cached[block.index]:
                hook = ModuleHook(engine, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, MODULE_HOOK)
            for sub in self._skipped[block.index]:
                hook = SkipHook(engine, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, SKIP_HOOK)
