"""Keep the cache's Python decisions outside `torch.compile` graphs, without importing dynamo early."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from forecache.accel._private import (
    compile_context,
    compiled_call,
    hooked_forward,
    lazy_compiler_disable,
    set_compiled_call,
    set_hooked_forward,
)

F = TypeVar("F", bound=Callable[..., Any])


def compiler_disable(fn: F) -> F:
    """Return `fn` excluded from `torch.compile` tracing (a graph break), resolved at first call."""
    return lazy_compiler_disable(fn)


def _compile_context(module: torch.nn.Module) -> Any:
    """Return the `torch.compile` context of a `Module.compile()`d module, None if not compiled.

    Raises:
        ValueError: If the module is compiled but its compile context cannot be found.

    """
    compiled = compiled_call(module)
    if compiled is None:
        return None
    context = compile_context(compiled)
    if context is None:
        raise ValueError(
            f"forecache: {type(module).__name__} was compiled with `Module.compile()` in a form forecache "
            f"cannot move inside its hooks (torch {torch.__version__}; regional compilation is supported "
            "from torch 2.6); compile its forward instead: block.forward = torch.compile(block.forward)"
        )
    return context


def move_compile_inside(
    module: torch.nn.Module, hook: Any, owner: str, allow_fullgraph: bool
) -> Callable[[], None] | None:
    """Compile the forward under `hook` instead of `module`'s whole call, so the hook runs outside the graph.

    diffusers' regional compilation (`compile_repeated_blocks`) compiles each block's whole call,
    hooks included: the cache's Python decisions would then be traced, break the graph (an error
    with ``fullgraph=True``) and guard on per-step state. Moving the same compile context (backend,
    mode, fullgraph) onto the forward that the hook wraps keeps exactly the block's own computation
    compiled, once per block class, and the decisions eager.

    Args:
        module: A block, possibly compiled with `Module.compile()` (before or after forecache).
        hook: The forecache hook registered on `module` (its ``fn_ref.original_forward`` is the
            block's own forward), or None when the target hooks only inside the block.
        owner: The block's name, for errors.
        allow_fullgraph: False when hooks also sit inside the block (the ``"modules"`` target),
            which a ``fullgraph=True`` compile cannot contain.

    Returns:
        A function that undoes the move once the hooks are removed (the block gets its compiled
        call back, exactly), or None if `module` is not compiled with `Module.compile()`.

    Raises:
        ValueError: If the compile cannot be moved, or is ``fullgraph`` where hooks go inside.

    """
    context = _compile_context(module)
    if context is None:
        return None
    if context.fullgraph and not allow_fullgraph:
        raise ValueError(
            f"forecache: `{owner}` is compiled with fullgraph=True, but target='modules' hooks its "
            "attention and feed-forward inside the block, which a full graph cannot contain; use "
            "target='blocks' (or 'output'), or compile without fullgraph"
        )
    if hook is None:  # no hook on the block itself: it keeps its compiled call
        return None
    compiled = compiled_call(module)
    original = hooked_forward(hook)
    set_compiled_call(module, None)
    set_hooked_forward(hook, context(original))

    def restore() -> None:
        module.forward = original  # removing the hook left the compiled forward there
        set_compiled_call(module, compiled)

    return restore
