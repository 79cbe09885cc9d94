"""The ``"modules"`` target: the attention and feed-forward outputs inside every block (TaylorSeer).

Most faithful (the blocks' norms, modulation and residual adds still run at forecast steps) and
the most memory and host time: one history per cached sub-module and order, and the blocks' own
Python at every step. Its hooks sit inside the blocks, so a block compiled with
``fullgraph=True`` cannot hold them: `ModuleHook` on a cached sub-module returns its forecast,
`SkipHook` on a sub-module that only feeds cached ones returns zeros.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.hooks import ModelHook

from forecache.accel.context import ContextState, Placeholder
from forecache.accel.policies import Decision
from forecache.accel.targets.base import Block, BlockRole, Engine, Register, Target, register_target
from forecache.accel.targets.stack import attach_stack

__all__ = ["MODULE_HOOK", "SKIP_HOOK", "ModuleHook", "ModulesTarget", "SkipHook"]

MODULE_HOOK = "forecache_module"
SKIP_HOOK = "forecache_skip"


class _SubmoduleHook(ModelHook):
    """Runs a sub-module and records it at computed steps; replaces its call at forecast steps."""

    def __init__(self, engine: Engine, key: str) -> None:
        super().__init__()
        self.engine = engine
        self.key = key

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run and record, or replace, the sub-module."""
        ctx = self.engine.current
        if ctx is not None and ctx.decision is Decision.FORECAST:
            return self._replace(ctx)
        output = self.fn_ref.original_forward(*args, **kwargs)
        if ctx is not None:
            self._record(ctx, output)
        return output

    def _replace(self, ctx: ContextState) -> Any:
        raise NotImplementedError

    def _record(self, ctx: ContextState, output: Any) -> None:
        raise NotImplementedError


class ModuleHook(_SubmoduleHook):
    """Returns a cached sub-module's forecast at forecast steps; feeds its history at computed ones."""

    def _replace(self, ctx: ContextState) -> Any:
        return ctx.site(self.key).predict(ctx.x)

    def _record(self, ctx: ContextState, output: Any) -> None:
        ctx.site(self.key).update(output, ctx.x)


class SkipHook(_SubmoduleHook):
    """Returns zeros of the recorded shape at forecast steps for a sub-module whose output is unused."""

    def _replace(self, ctx: ContextState) -> Any:
        return ctx.placeholders[self.key].build()

    def _record(self, ctx: ContextState, output: Any) -> None:
        placeholder = ctx.placeholders.get(self.key)
        if placeholder is None:
            ctx.placeholders[self.key] = Placeholder(output, self.key)
        else:
            placeholder.record(output)


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
        if engine.observes:  # the blocks run at every step: only a judging policy needs the head
            attach_stack(engine, blocks, register, lambda block, last: BlockRole(), head_only=True)
        for block in blocks[engine.probe_blocks :]:
            for sub in self._cached[block.index]:
                hook = ModuleHook(engine, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, MODULE_HOOK)
            for sub in self._skipped[block.index]:
                hook = SkipHook(engine, f"{block.name}.{sub}")
                register(block.module.get_submodule(sub), hook, SKIP_HOOK)
