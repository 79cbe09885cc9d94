"""Every private name of torch, diffusers and cache-dit that the benchmark harness relies on, in one place.

The engine's own are in `forecache.accel._private`; this is its twin for the harness (the peers,
the profile, the architectures it builds). Each accessor names what it reads and the versions it
was checked on; `tests/eval/test_private.py` checks each against the installed versions (the
harness's tests run at the newest supported versions: torch 2.13, diffusers 0.42.1, cache-dit
1.5.3), and `tests/test_private_names.py` finds none outside the two modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "graphs_compiled",
    "keep_in_fp32_modules",
    "raise_recompile_limit",
    "reset_stateful_cache",
    "snapshot_forwards",
    "taylorseer_attention_patterns",
]


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (``torch._dynamo.utils.counters``).

    ``counters["stats"]["unique_graphs"]``: torch 2.5 to 2.13 (no public counter of compiled graphs).
    """
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def raise_recompile_limit(limit: int = 64) -> None:
    """Let dynamo keep up to `limit` graphs per frame before it gives up on compiling it.

    Every method measured on one compiled model may add graphs of its own (hooks attached and
    removed); past the default limit (8) dynamo runs the frame eagerly without a word, and later
    methods would be timed uncompiled. ``torch._dynamo.config.recompile_limit`` (torch >= 2.6;
    ``cache_size_limit`` before).
    """
    from torch._dynamo import config

    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    if getattr(config, name) < limit:
        setattr(config, name, limit)


def reset_stateful_cache(model: torch.nn.Module) -> None:
    """End a generation of a bare transformer as a pipeline would (``ModelMixin._reset_stateful_cache``).

    Pipelines reset a transformer's stateful hooks at the end of a call through
    ``maybe_free_model_hooks``; a loop that calls the transformer itself has no pipeline, so this
    calls the private reset (diffusers 0.35 to 0.42), where the model has one.
    """
    reset = getattr(model, "_reset_stateful_cache", None)
    if reset is not None:
        reset()


def keep_in_fp32_modules(model: torch.nn.Module) -> set[str]:
    """Return the modules a diffusers model keeps in float32 at lower precision (``_keep_in_fp32_modules``).

    `from_pretrained(torch_dtype=...)` reads this private class attribute (diffusers 0.35 to 0.42);
    a model built from its config gets the same treatment from `forecache.eval.arch`.
    """
    return set(getattr(model, "_keep_in_fp32_modules", None) or ())


def taylorseer_attention_patterns() -> tuple[str, ...]:
    """Return the patterns diffusers' TaylorSeerCache matches attention modules with by default.

    ``diffusers.hooks.taylorseer_cache._TRANSFORMER_BLOCK_IDENTIFIERS`` (checked on diffusers
    0.42.1): regular expressions such as ``^blocks.*attn``, matched against whole module names,
    which hook nothing on models whose attention modules are numbered (Wan's ``attn1``/``attn2``).
    """
    from diffusers.hooks import taylorseer_cache

    return tuple(taylorseer_cache._TRANSFORMER_BLOCK_IDENTIFIERS)


_PATCHED = ("forward", "_is_patched")


def snapshot_forwards(transformer: torch.nn.Module) -> Callable[[], None]:
    """Record every module's instance ``forward`` and children; the returned function puts them back.

    cache-dit's patch functors replace the transformer's and some blocks' ``forward`` in the
    instance ``__dict__`` (and mark ``_is_patched``), and its adapter re-registers the block lists
    in ``Module._modules`` (changing the order in which `named_modules` lists them);
    `disable_cache` leaves both (cache-dit 1.5.3), which breaks caches run afterwards (diffusers'
    FirstBlockCache takes the first block it lists as the leader).
    """
    saved: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
        (m, {k: m.__dict__[k] for k in _PATCHED if k in m.__dict__}, dict(m._modules))
        for m in transformer.modules()
    ]

    def restore() -> None:
        for module, attributes, children in saved:
            for key in _PATCHED:
                if key in attributes:
                    module.__dict__[key] = attributes[key]
                else:
                    module.__dict__.pop(key, None)
            module._modules.clear()
            module._modules.update(children)

    return restore
