"""Every private name of diffusers and torch that forecache relies on, in one place.

Public APIs are used wherever they exist (`ModelHook`, `HookRegistry`, `StateManager.set_context`
and `CacheContext` on diffusers >= 0.41, `CacheMixin.is_cache_enabled`, `torch.compiler`). What is
left has no public form; each accessor below names what it reads, since which diffusers or torch
version, and what it does where that is missing. `tests/accel/test_private.py` checks each one
against the installed versions; CI runs it at the floor (torch 2.5.1, diffusers 0.35.2) and at the
newest supported versions (torch 2.13, diffusers 0.42.1, where this issue's moves were checked).
The harness's own private names (torch's dynamo counters, cache-dit's patches) are in its twin,
`forecache.eval._private`; `tests/test_private_names.py` finds none anywhere else.

Calling ``self.fn_ref.original_forward(...)`` inside a hook's ``new_forward`` is diffusers' public
hook contract (every diffusers hook calls through it) and is not counted here; replacing it is.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from diffusers.hooks.hooks import StateManager

__all__ = [
    "ThreadContextReceiver",
    "block_return_indices",
    "compile_context",
    "compiled_call",
    "context_parallel_group",
    "context_receiver",
    "hooked_forward",
    "invalidate_child_registries",
    "lazy_compiler_disable",
    "mark_stateful",
    "read_cache_context",
    "set_compiled_call",
    "set_hooked_forward",
    "transformer_block_identifiers",
]

# torch: `torch.compiler.disable` imports torch._dynamo (and with it triton) when the decorator is
# applied; `torch._disable_dynamo` (torch >= 2.1) defers that to the first call, so `import
# forecache` stays light. Without it, the public decorator.
lazy_compiler_disable: Callable[[Any], Any] = (
    getattr(torch, "_disable_dynamo", None) or torch.compiler.disable
)


class ThreadContextReceiver(StateManager):
    """A `StateManager` whose cache context is kept per thread.

    diffusers' ``cache_context`` hands its context to every `StateManager` of the stateful hooks
    under the model by calling ``set_context`` (a name on diffusers 0.35-0.40, a `CacheContext`
    from 0.41); a plain `StateManager` keeps one for all threads, so two threads running one
    transformer would read each other's ``"cond"``/``"uncond"``. This one keeps each thread's.
    """

    def __init__(self, state_cls: Any) -> None:
        super().__init__(state_cls)
        self._local = threading.local()

    def set_context(self, context: Any) -> None:
        """Record the calling thread's context (None clears it)."""
        self._local.context = context

    def current(self) -> Any:
        """Return the calling thread's context: a name, a `CacheContext`, or None."""
        return getattr(self._local, "context", None)


def read_cache_context(manager: ThreadContextReceiver) -> tuple[str | None, int | None, int | None]:
    """Return the ``(name, num_inference_steps, step_index)`` a pipeline set with ``cache_context``.

    diffusers >= 0.41 hands a `CacheContext` to every stateful hook's `StateManager`; diffusers
    0.35-0.40 only the context's name.

    Args:
        manager: The receiver held by forecache's stateful root hook.

    Returns:
        Nones where no context is set or the version does not carry the field.

    """
    context = manager.current()
    if context is None or isinstance(context, str):
        return context, None, None
    return context.name, context.num_inference_steps, getattr(context, "step_index", None)


def context_parallel_group(module: torch.nn.Module | None) -> Any:
    """Return the process group of the context-parallel mesh diffusers set on `module`, or None.

    diffusers >= 0.36 records ``enable_parallelism(config=ContextParallelConfig(...))`` on the model
    as ``_parallel_config``; its ``context_parallel_config._flattened_mesh`` is the mesh of the
    ranks that hold shards of one sequence (ring x Ulysses). None without context parallelism (no
    config, tensor parallelism only, or a diffusers without the parallel API).
    """
    config = getattr(module, "_parallel_config", None)
    mesh = getattr(getattr(config, "context_parallel_config", None), "_flattened_mesh", None)
    return None if mesh is None else mesh.get_group()


def compiled_call(module: torch.nn.Module) -> Any:
    """Return the call `Module.compile()` installed (``Module._compiled_call_impl``), or None."""
    return getattr(module, "_compiled_call_impl", None)


def set_compiled_call(module: torch.nn.Module, call: Any) -> None:
    """Install (or, with None, remove) a module's compiled call (``Module._compiled_call_impl``)."""
    module._compiled_call_impl = call


def compile_context(compiled: Any) -> Any:
    """Return the `torch.compile` callable behind a `Module.compile()`d call, or None if it is not one.

    torch keeps it as the closure cell named ``self`` of the wrapper `torch.compile` returns (an
    `OptimizedModule`'s compile context with ``backend``, ``mode`` and ``fullgraph``); a callable
    with a ``fullgraph`` attribute is what forecache can re-apply to a block's forward.
    """
    code = getattr(compiled, "__code__", None)
    closure = getattr(compiled, "__closure__", None) or ()
    names = code.co_freevars if code is not None else ()
    context = dict(zip(names, (cell.cell_contents for cell in closure), strict=False)).get("self")
    return context if callable(context) and hasattr(context, "fullgraph") else None


def transformer_block_identifiers() -> tuple[str, ...]:
    """Return the attribute names diffusers' own cache hooks find block lists under (``hooks._common``)."""
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

    return tuple(_ALL_TRANSFORMER_BLOCK_IDENTIFIERS)


def block_return_indices(block_class: type) -> tuple[int | None, int | None] | None:
    """Where diffusers' block metadata (``hooks._helpers.TransformerBlockRegistry``) puts the streams.

    Returns:
        ``(hidden_states index, encoder_hidden_states index)`` in the block's tuple output, or None
        when diffusers has no metadata for the class.

    """
    from diffusers.hooks._helpers import TransformerBlockRegistry

    try:
        meta = TransformerBlockRegistry.get(block_class)
    except ValueError:
        return None
    return meta.return_hidden_states_index, meta.return_encoder_hidden_states_index


def invalidate_child_registries(registry: Any) -> None:
    """Drop diffusers' cached list of child hook registries (``invalidate_child_registries_cache``).

    diffusers >= 0.41 caches the registries below a module for `cache_context`; after hooks are
    added or removed below it, the cache must be rebuilt. Earlier versions walk the tree every
    time and have nothing to invalidate.
    """
    invalidate = getattr(registry, "invalidate_child_registries_cache", None)
    if invalidate is not None:
        invalidate()


_Class = TypeVar("_Class", bound=type)


def mark_stateful(hook_class: _Class) -> _Class:
    """Make diffusers call `hook_class`'s ``reset_state`` at the end of a generation; returns it.

    diffusers' `HookRegistry.reset_stateful_hooks` (which pipelines call through
    ``maybe_free_model_hooks``) resets only hooks whose class sets the private flag
    ``_is_stateful`` (diffusers 0.35 to 0.42).
    """
    hook_class._is_stateful = True  # type: ignore[attr-defined]
    return hook_class


@functools.cache
def _no_state() -> type:
    from diffusers.hooks.hooks import BaseState

    class NoState(BaseState):
        def reset(self) -> None:
            """Nothing to reset: the receiver only carries the context."""

    return NoState


def context_receiver() -> ThreadContextReceiver:
    """Return a state manager that diffusers' ``cache_context`` hands its context to, per thread.

    Read it with `read_cache_context`. ``cache_context`` sets the context on the `StateManager` of
    every stateful hook; `StateManager` and `BaseState` live in ``diffusers.hooks.hooks`` and are
    not exported by ``diffusers.hooks`` (diffusers 0.35 to 0.42). The manager's state is empty:
    forecache keeps its own.
    """
    return ThreadContextReceiver(_no_state())


def hooked_forward(hook: Any) -> Callable[..., Any]:
    """Return the forward a registered diffusers hook wraps (``hook.fn_ref.original_forward``)."""
    return hook.fn_ref.original_forward


def set_hooked_forward(hook: Any, forward: Callable[..., Any]) -> None:
    """Replace the forward a registered diffusers hook wraps (``hook.fn_ref.original_forward``).

    `HookRegistry.remove_hook` puts ``fn_ref.original_forward`` back as the module's forward, so
    whoever replaces it restores the module's own forward after removal (diffusers 0.35 to 0.42).
    """
    hook.fn_ref.original_forward = forward
