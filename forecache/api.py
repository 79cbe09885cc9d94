"""The public entry points: apply, remove, cached and stats, on a pipeline or a bare transformer.

`apply` returns a `Cache`: the config it applied, the transformers it hooks, their `stats` and
`remove`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import unwrap_module

from forecache._caller import calling_scheduler
from forecache.accel._checks import check_int
from forecache.accel.config import CacheConfig
from forecache.accel.session import CacheSession, Experts, session_of
from forecache.accel.stats import CacheStats
from forecache.configfile import resolve_config
from forecache.layouts.first_call import arm_first_call_check, disarm
from forecache.layouts.registry import UnsupportedModelError, resolve_layout

__all__ = ["Cache", "apply", "cached", "remove", "stats"]

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


def _hint(chained: bool) -> str:
    if chained:
        return ' The "modules" and "output" targets need no chain of blocks: try either.'
    return " Register a layout with forecache.register_layout(...) to hook it anyway."


def _refuse_stacking(name: str, module: torch.nn.Module) -> None:
    """Refuse a transformer on which diffusers' own cache (`enable_cache`) is enabled.

    Raises:
        RuntimeError: Naming both caches.

    """
    if getattr(module, "is_cache_enabled", False):
        raise RuntimeError(
            f"forecache cannot be applied to `{name}` ({type(module).__name__}): diffusers' own cache is "
            "enabled on it (`enable_cache`); call its `disable_cache()` first. Two caches would skip "
            "and forecast the same blocks."
        )


def _scheduler_source(target: Any, module: torch.nn.Module, scheduler: Any) -> Callable[[], Any] | None:
    """Where each call finds its scheduler: the one given, else the calling pipeline's, else none."""
    if scheduler is not None:
        return lambda: scheduler
    if isinstance(target, DiffusionPipeline):
        return calling_scheduler(target, module, TRANSFORMER_COMPONENTS)
    return None


def _merged_stats(hooked: list[tuple[str, torch.nn.Module, CacheSession]]) -> CacheStats:
    """Merge the statistics of several transformers' sessions (a second expert's contexts named after it)."""
    unit, contexts = "", {}
    for name, _, session in hooked:
        part = session.stats()
        prefix = "" if name == "transformer" else f"{name}/"
        unit = part.unit
        for key, ctx in part.contexts.items():
            contexts[prefix + key] = dataclasses.replace(ctx, name=prefix + ctx.name) if prefix else ctx
    return CacheStats(unit, contexts)


def _detach(module: torch.nn.Module, session: CacheSession) -> None:
    disarm(module)
    session.close()


class Cache:
    """What `apply` returns: the applied config, the transformers it hooks, their statistics and removal.

    Attributes:
        config: The `CacheConfig` applied (a preset's name or a config file resolved).
        components: The hooked transformers' component names (``("transformer",)``, or
            ``("transformer", "transformer_2")`` for Wan 2.2's two experts).

    """

    def __init__(self, config: CacheConfig, hooked: list[tuple[str, torch.nn.Module, CacheSession]]) -> None:
        self.config = config
        self.components = tuple(name for name, _, _ in hooked)
        self._hooked = hooked

    def _still(self) -> list[tuple[str, torch.nn.Module, CacheSession]]:
        return [entry for entry in self._hooked if session_of(entry[1]) is entry[2]]

    @property
    def active(self) -> bool:
        """Whether any of its transformers is still hooked (not removed since)."""
        return bool(self._still())

    def stats(self) -> CacheStats:
        """Return the statistics of the current or last generation, as `forecache.stats` does."""
        return _merged_stats(self._hooked)

    def remove(self) -> None:
        """Remove forecache from the transformers it was applied to (those not removed since).

        Raises:
            ValueError: If none of them is hooked any more.

        """
        still = self._still()
        if not still:
            raise ValueError(f"forecache is no longer applied to {list(self.components)}; nothing to remove")
        for _, module, session in still:
            _detach(module, session)

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"Cache({self.config!r}, components={self.components}, {state})"


def apply(
    target: Any, config: Any, *, num_inference_steps: int | None = None, scheduler: Any = None
) -> Cache:
    """Make a diffusers pipeline or transformer forecast its features at most denoising steps.

    Hooks are attached to this instance only (never to its class, and the pipeline keeps its own
    class) and removed by `remove`, after which the model computes exactly what it computed
    before. The cache state resets when a generation starts: when the scheduler's schedule is set
    anew (every diffusers pipeline calls ``scheduler.set_timesteps`` per call; a bare transformer
    with ``scheduler=`` the same), or, without a scheduler, when the timestep jumps back up. Its
    tensors are freed when the pipeline ends its call (diffusers' ``maybe_free_model_hooks``). A
    pipeline with two experts (Wan 2.2: `transformer` and `transformer_2`) gets one cache per
    expert, each with its own warm-up from its first step and the cool-down at the end of the
    steps it denoises. `apply` and `remove` may target the pipeline or one of its transformers in
    any order: each transformer is applied or removed on its own.

    Args:
        target: A `DiffusionPipeline` with a `transformer`, or a diffusers transformer
            (``torch.compile``-wrapped ones are unwrapped).
        config: A `CacheConfig` (never mutated), as the presets return it (`TaylorSeerConfig(...)`,
            `AdamsBashforthConfig`, `ConfidenceGateConfig`, `TimelineConfig`), the name of a preset
            (``"taylorseer"``, or one registered with `forecache.register_preset`: its defaults),
            or the path of a config file (what `forecache.tune` and ``forecache sweep`` write; see
            `forecache.configfile`).
        num_inference_steps: Steps per generation, for bare transformers (a pipeline knows them
            from its scheduler). Without it (or `scheduler`) the cool-down steps cannot be placed.
        scheduler: For a bare transformer driven by your own loop: the diffusers scheduler of that
            loop. Its ``timesteps`` and ``step_index`` then place each call, so a timestep on the
            GPU is never read back (one host synchronisation saved per call), and they give the
            number of steps. None (default) uses a pipeline's own scheduler.

    Returns:
        A `Cache`: the config applied, its `stats()` and `remove()`.

    A transformer class forecache has no registered layout for is laid out from the model itself
    (`forecache.layouts.infer`: its block lists, their order, streams, cached sub-modules and time
    argument) and that layout is checked at its first call; when the call shows it does not hold,
    forecache removes itself and that call raises `UnsupportedModelError` (the model is left as it
    was). ``forecache models --model M`` prints how a model is laid out.

    Raises:
        UnsupportedModelError: If the transformer cannot be laid out for ``config``'s target (the
            message names the block list or output and the reason).
        RuntimeError: If forecache is already applied to a transformer of `target`, or diffusers'
            own cache (`enable_cache`) is enabled on it.
        TypeError: If `config`, `target` or `scheduler` has an unsupported type, or
            `num_inference_steps` is not an int (``"3"``, ``2.5``).
        ValueError: If `num_inference_steps` is < 1, or a config file is invalid (naming the file,
            the entry and the field).

    Example:
        >>> import forecache
        >>> from forecache.reference import load_reference
        >>> pipe = load_reference("dit-digits")
        >>> cache = forecache.apply(pipe.transformer, forecache.TaylorSeerConfig(interval=2))
        >>> cache.components
        ('transformer',)
        >>> cache.remove()

    """
    if num_inference_steps is not None:
        check_int("apply", "num_inference_steps", num_inference_steps, 1)
    cache_config = resolve_config(config)
    if scheduler is not None and not isinstance(scheduler, SchedulerMixin):
        raise TypeError(f"`scheduler` must be a diffusers scheduler or None, got {type(scheduler).__name__}")
    transformers = _transformers_of(target)
    for name, module in transformers.items():
        if session_of(module) is not None:
            raise RuntimeError(
                f"forecache is already applied to `{name}` ({type(module).__name__}) of this "
                f"{type(target).__name__}; call forecache.remove(...) first"
            )
        _refuse_stacking(name, module)
    # refuse before hooking anything: registered layouts, else inferred ones (with the reason)
    layouts = {name: resolve_layout(module, cache_config.target) for name, module in transformers.items()}
    experts = Experts()
    hooked: list[tuple[str, torch.nn.Module, CacheSession]] = []
    try:
        for name, module in transformers.items():
            resolution = layouts[name]
            source = _scheduler_source(target, module, scheduler)
            session = CacheSession(
                module, cache_config, resolution.layout, num_inference_steps, source, experts
            )
            hooked.append((name, module, session))
            if resolution.source == "inferred":
                arm_first_call_check(module, resolution.layout, resolution.chained, _hint(resolution.chained))
    except BaseException:
        for _, module, session in hooked:
            _detach(module, session)
        raise
    return Cache(cache_config, hooked)


def remove(target: Any) -> None:
    """Remove forecache from a pipeline or transformer; its outputs are bitwise what they were before.

    On a pipeline, every transformer forecache is applied to is freed of it (one applied through
    the pipeline and removed alone before is simply no longer there).

    Example:
        >>> import forecache, torch
        >>> from forecache.reference import load_reference
        >>> pipe = load_reference("flux-digits")
        >>> pipe.set_progress_bar_config(disable=True)
        >>> def draw():
        ...     seed = torch.Generator().manual_seed(0)
        ...     return pipe([3], num_inference_steps=6, generator=seed, output_type="pt").images
        >>> before = draw()
        >>> _ = forecache.apply(pipe, forecache.TaylorSeerConfig(interval=2, warmup=1))
        >>> forecache.remove(pipe)
        >>> torch.equal(draw(), before)
        True

    Raises:
        ValueError: If forecache is not applied to `target` (nor to any of its transformers).

    """
    for _, module, session in _hooked(target):
        _detach(module, session)


@contextmanager
def cached(
    target: Any, config: Any, *, num_inference_steps: int | None = None, scheduler: Any = None
) -> Iterator[Cache]:
    """Apply forecache for the duration of a ``with`` block, removing it on exit (even on error).

    Example:
        >>> import forecache
        >>> from forecache.reference import load_reference
        >>> pipe = load_reference("flux-digits")
        >>> with forecache.cached(pipe, forecache.ConfidenceGateConfig()) as cache:
        ...     cache.components
        ('transformer',)

    """
    cache = apply(target, config, num_inference_steps=num_inference_steps, scheduler=scheduler)
    try:
        yield cache
    finally:
        remove(target)


def stats(target: Any) -> CacheStats:
    """Return the cache statistics of the current or last generation of `target`.

    Example:
        >>> import forecache
        >>> from forecache.reference import load_reference
        >>> pipe = load_reference("flux-digits")
        >>> pipe.set_progress_bar_config(disable=True)
        >>> with forecache.cached(pipe, forecache.TaylorSeerConfig(interval=3, warmup=2)):
        ...     _ = pipe([3], num_inference_steps=10, output_type="np")
        ...     s = forecache.stats(pipe)
        >>> "".join(s.contexts["cond"].decisions), round(s.compute_ratio, 2)
        ('CCCFFCFFCC', 1.67)

    Per context (guidance branch): computed and forecast steps, the compute ratio (block or
    module executions without the cache over those with it), gate errors per step and the peak
    bytes held by the cache. With several threads generating on one transformer, the calling
    thread's generation (in a thread that never ran one: the generation started last). The
    contexts of a second expert (Wan 2.2's `transformer_2`) are named ``"transformer_2/<context>"``.

    Raises:
        ValueError: If forecache is not applied to `target`.

    """
    return _merged_stats(_hooked(target))
