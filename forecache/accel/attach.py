"""Attach the cache hooks to one transformer following a `ModelLayout`, and detach them."""

from __future__ import annotations

import weakref

import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel._compile import move_compile_inside
from forecache.accel._private import compiled_call, context_parallel_group, invalidate_child_registries
from forecache.accel.config import CacheConfig
from forecache.accel.hooks import BLOCK_HOOK, HOOK_NAMES, ROOT_HOOK, RootHook
from forecache.accel.layout import ModelLayout
from forecache.accel.state import CacheSession
from forecache.accel.targets import TARGETS, Block

__all__ = ["attach", "detach", "session_of"]

_SESSION_ATTR = "_forecache_session"


def session_of(transformer: torch.nn.Module) -> CacheSession | None:
    """Return the cache session attached to `transformer`, or None."""
    return getattr(transformer, _SESSION_ATTR, None)


def _blocks(transformer: torch.nn.Module, layout: ModelLayout) -> list[Block]:
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


def _register(module: torch.nn.Module, hook: ModelHook, name: str) -> None:
    HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)


def attach(
    transformer: torch.nn.Module,
    config: CacheConfig,
    layout: ModelLayout,
    num_inference_steps: int | None = None,
) -> CacheSession:
    """Attach hooks to `transformer` so that `config` decides, per call, what runs and what is forecast.

    The target named by ``config.target`` chooses and registers the block and sub-module hooks;
    nothing here depends on which target or policy it is.

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
            f"{type(config.policy).__name__}: `probe_blocks` must be < the {len(blocks)} blocks of {name}, "
            f"got {probes}"
        )
    target = TARGETS.get(config.target)()
    units = target.plan(blocks, probes, name)
    session = CacheSession(config, target, units, num_inference_steps)
    model = weakref.ref(transformer)  # read at each context: parallelism may be enabled after `apply`
    session.parallel_group = lambda: context_parallel_group(model())
    try:
        _register(transformer, RootHook(session, layout.timestep_arg), ROOT_HOOK)
        target.attach(session, blocks, _register)
        invalidate_child_registries(HookRegistry.check_if_exists_or_initialize(transformer))
        session.check_compiled = lambda: _move_compiles(session, blocks, name, target.allows_fullgraph)
        session.check_compiled()
    except BaseException:
        _remove_hooks(transformer)
        _undo(session)
        raise
    setattr(transformer, _SESSION_ATTR, session)
    return session


def _move_compiles(session: CacheSession, blocks: list[Block], owner: str, allow_fullgraph: bool) -> None:
    """Move `Module.compile()` of any hooked block (compiled before or since `apply`) under its hook."""
    for block in blocks:
        if compiled_call(block.module) is not None:
            hook = HookRegistry.check_if_exists_or_initialize(block.module).get_hook(BLOCK_HOOK)
            restore = move_compile_inside(block.module, hook, f"{owner}.{block.name}", allow_fullgraph)
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
    invalidate_child_registries(registry)


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
