"""The public entry points: apply, remove, cached and stats, on a pipeline or a bare transformer."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import unwrap_module

from forecache.accel.attach import attach, detach, session_of
from forecache.accel.clock import ScheduleClock
from forecache.accel.config import resolve_config
from forecache.accel.state import CacheSession
from forecache.accel.stats import CacheStats
from forecache.layouts.registry import UnsupportedModelError, layout_for

__all__ = ["apply", "cached", "remove", "stats"]

_ORIGINAL_CLASS = "_forecache_original_class"
#: Pipeline components that hold a denoising transformer. Wan 2.2 has two experts: `transformer`
#: for the high-noise steps and `transformer_2` for the low-noise ones; each gets its own cache.
TRANSFORMER_COMPONENTS = ("transformer", "transformer_2")


def _transformers_of(target: Any) -> dict[str, torch.nn.Module]:
    """Return the transformers to cache by component name (``"transformer"`` for a bare one)."""
    if isinstance(target, DiffusionPipeline):
        found = {
            name: unwrap_module(module)
            for name in TRANSFORMER_COMPONENTS
            if isinstance(module := getattr(target, name, None), torch.nn.Module)
        }
        if not found:
            raise UnsupportedModelError(
                f"{type(target).__name__} has no `transformer` component; "
                "forecache caches diffusion transformers"
            )
        return found
    if isinstance(target, torch.nn.Module):
        return {"transformer": unwrap_module(target)}
    raise TypeError(
        f"forecache: expected a diffusers DiffusionPipeline or transformer, got {type(target).__name__}"
    )


def _hooked(target: Any) -> list[tuple[str, torch.nn.Module, CacheSession]]:
    """Return ``(component name, transformer, session)`` of each transformer forecache is applied to.

    Raises:
        ValueError: If it is applied to none of them.

    """
    hooked = [
        (name, module, session)
        for name, module in _transformers_of(target).items()
        if (session := session_of(module)) is not None
    ]
    if not hooked:
        raise ValueError(
            f"forecache is not applied to this {type(target).__name__}; call forecache.apply first"
        )
    return hooked


def _wrap_pipeline(pipe: DiffusionPipeline, sessions: list[CacheSession]) -> None:
    """Give this pipeline instance a subclass whose `__call__` resets and frees the cache per call."""
    original = type(pipe)

    def __call__(self: DiffusionPipeline, *args: Any, **kwargs: Any) -> Any:
        for session in sessions:
            session.reset()
        try:
            return original.__call__(self, *args, **kwargs)
        finally:
            for session in sessions:
                session.release()

    wrapped = type(original.__name__, (original,), {"__call__": __call__, "__module__": original.__module__})
    setattr(pipe, _ORIGINAL_CLASS, original)
    pipe.__class__ = wrapped


def apply(
    target: Any, config: Any, *, num_inference_steps: int | None = None, scheduler: Any = None
) -> CacheSession:
    """Make a diffusers pipeline or transformer forecast its features at most denoising steps.

    Hooks are attached to this instance only (never to its class) and removed by `remove`, after
    which the model computes exactly what it computed before. On a pipeline, the cache state
    resets at the start of every call and its tensors are freed at the end; on a bare
    transformer, state resets when the timestep jumps back up (a new trajectory). A pipeline with
    two experts (Wan 2.2: `transformer` and `transformer_2`) gets one cache per expert, each with
    its own warm-up from its first step and the cool-down at the end of the steps it denoises.

    Args:
        target: A `DiffusionPipeline` with a `transformer`, or a diffusers transformer
            (``torch.compile``-wrapped ones are unwrapped).
        config: `TaylorSeerConfig`, `AdamsBashforthConfig`, `ConfidenceGateConfig` or a general
            `CacheConfig`. Never mutated.
        num_inference_steps: Steps per generation, for bare transformers (a pipeline knows them
            from its scheduler). Without it (or `scheduler`) the cool-down steps cannot be placed.
        scheduler: For a bare transformer driven by your own loop: the diffusers scheduler of that
            loop. Its ``timesteps`` and ``step_index`` then place each call, so a timestep on the
            GPU is never read back (one host synchronisation saved per call), and they give the
            number of steps. None (default) uses a pipeline's own scheduler.

    Returns:
        The cache session of the (first) transformer; `forecache.stats` reports all of them.

    Raises:
        UnsupportedModelError: If the transformer's class has no layout.
        RuntimeError: If forecache is already applied.
        TypeError: If `config`, `target` or `scheduler` has an unsupported type.

    Example:
        >>> import forecache
        >>> from forecache.testing.tiny import build_tiny
        >>> tiny = build_tiny("DiTTransformer2DModel")
        >>> session = forecache.apply(tiny.model, forecache.TaylorSeerConfig(interval=2))
        >>> forecache.remove(tiny.model)

    """
    cache_config = resolve_config(config)
    if num_inference_steps is not None and (isinstance(num_inference_steps, bool) or num_inference_steps < 1):
        raise ValueError(f"`num_inference_steps` must be an int >= 1 or None, got {num_inference_steps!r}")
    if scheduler is not None and not isinstance(scheduler, SchedulerMixin):
        raise TypeError(f"`scheduler` must be a diffusers scheduler or None, got {type(scheduler).__name__}")
    transformers = _transformers_of(target)
    layouts = {name: layout_for(module) for name, module in transformers.items()}  # refuse before hooking
    if isinstance(target, DiffusionPipeline) and hasattr(target, _ORIGINAL_CLASS):
        raise RuntimeError(f"forecache is already applied to this {type(target).__name__}; remove it first")
    sessions: list[CacheSession] = []
    try:
        for name, module in transformers.items():
            session = attach(module, cache_config, layouts[name], num_inference_steps)
            sessions.append(session)
            if scheduler is not None:
                session.clock = ScheduleClock(lambda: scheduler)
            elif isinstance(target, DiffusionPipeline):
                session.clock = ScheduleClock(lambda: getattr(target, "scheduler", None))
    except BaseException:
        for module in list(transformers.values())[: len(sessions)]:
            detach(module)
        raise
    if isinstance(target, DiffusionPipeline):
        _wrap_pipeline(target, sessions)
    return sessions[0]


def remove(target: Any) -> None:
    """Remove forecache from a pipeline or transformer; its outputs are bitwise what they were before.

    Example:
        >>> import forecache
        >>> from forecache.testing.tiny_pipeline import TinyPipeline
        >>> pipe = TinyPipeline.from_tiny("SD3Transformer2DModel")
        >>> pipe.set_progress_bar_config(disable=True)
        >>> before = pipe(num_inference_steps=6).latents
        >>> _ = forecache.apply(pipe, forecache.TaylorSeerConfig(interval=2, warmup=1))
        >>> forecache.remove(pipe)
        >>> bool((pipe(num_inference_steps=6).latents == before).all())
        True

    Raises:
        ValueError: If forecache is not applied to `target`.

    """
    for _, module, _ in _hooked(target):
        detach(module)
    original = getattr(target, _ORIGINAL_CLASS, None)
    if original is not None:
        target.__class__ = original
        delattr(target, _ORIGINAL_CLASS)


@contextmanager
def cached(
    target: Any, config: Any, *, num_inference_steps: int | None = None, scheduler: Any = None
) -> Iterator[CacheSession]:
    """Apply forecache for the duration of a ``with`` block, removing it on exit (even on error).

    Example:
        >>> import forecache
        >>> from forecache.testing.tiny import build_tiny
        >>> model = build_tiny("FluxTransformer2DModel").model
        >>> with forecache.cached(model, forecache.ConfidenceGateConfig()) as session:
        ...     pass

    """
    session = apply(target, config, num_inference_steps=num_inference_steps, scheduler=scheduler)
    try:
        yield session
    finally:
        remove(target)


def stats(target: Any) -> CacheStats:
    """Return the cache statistics of the current or last generation of `target`.

    Example:
        >>> import forecache
        >>> from forecache.testing.tiny_pipeline import TinyPipeline
        >>> pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
        >>> pipe.set_progress_bar_config(disable=True)
        >>> with forecache.cached(pipe, forecache.TaylorSeerConfig(interval=3, warmup=2)):
        ...     _ = pipe(num_inference_steps=10)
        ...     s = forecache.stats(pipe)
        >>> "".join(s.contexts["branch0"].decisions), round(s.compute_ratio, 2)
        ('CCCFFCFFCC', 1.67)

    Per context (guidance branch): computed and forecast steps, the compute ratio (block or
    module executions without the cache over those with it), gate errors per step and the peak
    bytes held by the cache. The contexts of a second expert (Wan 2.2's `transformer_2`) are
    named ``"transformer_2/<context>"``.

    Raises:
        ValueError: If forecache is not applied to `target`.

    """
    unit, contexts = "", {}
    for name, _, session in _hooked(target):
        part = session.stats()
        prefix = "" if name == "transformer" else f"{name}/"
        unit = part.unit
        for key, ctx in part.contexts.items():
            contexts[prefix + key] = dataclasses.replace(ctx, name=prefix + ctx.name) if prefix else ctx
    return CacheStats(unit, contexts)
