"""Attach the cache hooks to one transformer following a `ModelLayout`, and detach them."""

from __future__ import annotations

import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel._compile import move_compile_inside
from forecache.accel.config import CacheConfig
from forecache.accel.hooks import (
    BLOCK_HOOK,
    HOOK_NAMES,
    MODULE_HOOK,
    ROOT_HOOK,
    SKIP_HOOK,
    BlockHook,
    ModuleHook,
    RootHook,
    SkipHook,
)
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.state import CacheSession

__all__ = ["attach", "detach", "session_of"]

_SESSION_ATTR = "_forecache_session"


def session_of(transformer: torch.nn.Module) -> CacheSession | None:
    """Return the cache session attached to `transformer`, or None."""
    return getattr(transformer, _SESSION_ATTR, None)


def _blocks(
    transformer: torch.nn.Module, layout: ModelLayout
) -> list[tuple[str, torch.nn.Module, BlockListLayout]]:
    blocks: list[tuple[str, torch.nn.Module, BlockListLayout]] = []
    for block_list in layout.block_lists:
        modules = getattr(transformer, block_list.attr, None)
        if not isinstance(modules, torch.nn.ModuleList):
            raise ValueError(
                f"forecache: {type(transformer).__name__} has no block list `{block_list.attr}` "
                f"(expected a torch.nn.ModuleList, got {type(modules).__name__})"
            )
        blocks.extend((f"{block_list.attr}.{i}", block, block_list) for i, block in enumerate(modules))
    if not blocks:
        raise ValueError(f"forecache: {type(transformer).__name__} has no transformer blocks to cache")
    return blocks


def _present(block: torch.nn.Module, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if _has(block, name)]


def _has(block: torch.nn.Module, name: str) -> bool:
    try:
        block.get_submodule(name)
    except AttributeError:
        return False
    return True


def _register(module: torch.nn.Module, hook: ModelHook, name: str) -> None:
    HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)


def attach(
    transformer: torch.nn.Module,
    config: CacheConfig,
    layout: ModelLayout,
    num_inference_steps: int | None = None,
) -> CacheSession:
    """Attach hooks to `transformer` so that `config` decides, per call, what runs and what is forecast.

    Args:
        transformer: The diffusers transformer (its blocks are found through `layout`).
        config: The resolved cache configuration.
        layout: Where the blocks and cached sub-modules are.
        num_inference_steps: Steps per generation if known (enables cool-down on bare transformers).

    Returns:
        The session holding the cache state.

    Raises:
        RuntimeError: If forecache is already attached to `transformer`.
        ValueError: If the layout does not match the model, or the probe blocks leave nothing to cache.

    """
    name = type(transformer).__name__
    if session_of(transformer) is not None:
        raise RuntimeError(f"forecache is already applied to this {name}; call forecache.remove(...) first")
    blocks = _blocks(transformer, layout)
    probes = config.policy.probe_blocks
    if probes >= len(blocks):
        raise ValueError(
            f"ConfidenceGate: `probe_blocks` must be < the {len(blocks)} blocks of {name}, got {probes}"
        )
    cached: list[list[str]] = []
    skipped: list[list[str]] = []
    for index, (block_name, block, block_list) in enumerate(blocks):
        cached.append(_present(block, block_list.modules) if config.target == "modules" else [])
        skipped.append(_present(block, block_list.skipped_modules) if config.target == "modules" else [])
        if config.target == "modules" and index >= probes and not cached[-1]:
            raise ValueError(
                f"forecache: block `{block_name}` of {name} has none of the cached sub-modules "
                f"{list(block_list.modules)}; use target='blocks' or fix the layout"
            )
    units = [len(names) if config.target == "modules" else 1 for names in cached]
    session = CacheSession(config, units, num_inference_steps)
    try:
        _register(transformer, RootHook(session, layout.timestep_arg), ROOT_HOOK)
        hooked: list[tuple[torch.nn.Module, BlockHook, str]] = []
        for index, (block_name, block, block_list) in enumerate(blocks):
            block_hook = BlockHook(session, index, block_list)
            _register(block, block_hook, BLOCK_HOOK)
            hooked.append((block, block_hook, f"{name}.{block_name}"))
            if index < probes:
                continue
            for sub in cached[index]:
                _register(block.get_submodule(sub), ModuleHook(session, f"{block_name}.{sub}"), MODULE_HOOK)
            for sub in skipped[index]:
                _register(block.get_submodule(sub), SkipHook(session, f"{block_name}.{sub}"), SKIP_HOOK)
        session.check_compiled = lambda: _move_compiles(session, hooked, config.target != "modules")
        session.check_compiled()
    except BaseException:
        _remove_hooks(transformer)
        _undo(session)
        raise
    setattr(transformer, _SESSION_ATTR, session)
    return session


def _move_compiles(
    session: CacheSession, hooked: list[tuple[torch.nn.Module, BlockHook, str]], allow_fullgraph: bool
) -> None:
    """Move `Module.compile()` of any block (compiled before or since `apply`) under its hook."""
    for block, hook, owner in hooked:
        if getattr(block, "_compiled_call_impl", None) is not None:
            restore = move_compile_inside(block, hook, owner, allow_fullgraph)
            if restore is not None:
                session.undo.append(restore)


def _undo(session: CacheSession) -> None:
    """Give compiled blocks back their compiled call, after the hooks are gone."""
    while session.undo:
        session.undo.pop()()


def _remove_hooks(transformer: torch.nn.Module) -> None:
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    for hook_name in HOOK_NAMES:
        registry.remove_hook(hook_name, recurse=True)
    registry.invalidate_child_registries_cache()


def detach(transformer: torch.nn.Module) -> None:
    """Remove every forecache hook and the session; the model computes exactly as before.

    Raises:
        ValueError: If forecache is not attached to `transformer`.

    """
    session = session_of(transformer)
    if session is None:
        raise ValueError(f"forecache is not applied to this {type(transformer).__name__}; nothing to remove")
    _remove_hooks(transformer)
    _undo(session)
    delattr(transformer, _SESSION_ATTR)
