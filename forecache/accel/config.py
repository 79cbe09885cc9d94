"""Cache configurations: the general policy x forecaster x target form and the papers' presets.

Every config is a frozen dataclass validated on construction. Presets resolve to a `CacheConfig`
through a registry (`register_config`), so `forecache.apply` dispatches on the config's type
without an isinstance ladder and third-party presets can plug in. The three axes are open
registries too: any registered policy, forecaster or target name is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch

from forecache.accel._checks import check_choice, check_float, check_instance, check_int
from forecache.accel.forecasters import COORDINATES, FORECASTERS, AdamsBashforth, Forecaster, Taylor
from forecache.accel.policies import POLICIES, ConfidenceGate, Interval, Policy, Shaped
from forecache.accel.targets import TARGETS

__all__ = [
    "FALLBACKS",
    "HISTORY_DTYPES",
    "AdamsBashforthConfig",
    "CacheConfig",
    "ConfidenceGateConfig",
    "TaylorSeerConfig",
    "TimelineConfig",
    "check_target",
    "register_config",
    "resolve_config",
]

FALLBACKS: tuple[str, ...] = ("reuse", "recompute")
HISTORY_DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class CacheConfig:
    """The general form: when to compute (policy), how to forecast (forecaster), what (target).

    Args:
        policy: Any registered policy, e.g. `Interval`, `StepMask` or `ConfidenceGate`. Default
            `Interval()`.
        forecaster: Any registered forecaster, e.g. `Reuse`, `Taylor` or `AdamsBashforth`.
            Default `Taylor(order=1)`.
        target: The name of a registered target: what is cached and forecast. ``"modules"``:
            the attention and feed-forward outputs inside every block (most faithful, most
            memory: several features per block and order); ``"blocks"`` (default): the residual
            of the block stack after the probe blocks, one feature per stream; ``"output"``: the
            denoiser's output (cheapest, also skips the embeddings and the head, least faithful).
        history_dtype: Storage dtype of the history: ``"auto"`` (default, the feature's dtype),
            ``"float32"``, ``"bfloat16"`` or ``"float16"``. Lower precision halves the cache memory
            and bandwidth; differences of close features lose relative precision. A dtype with a
            narrower range than the features' (``"float16"`` for bfloat16 or float32 features) is
            refused at the first store, with the reason.
        fallback_margin: Guard against diverging forecasts: a forecast element that is not
            finite (in the feature's dtype, after a forecast residual is added to its input), or
            larger in magnitude than this factor times the largest magnitude its site had at the
            computed steps, is refused (the step is counted in `stats().fallbacks`).
            Default 4.0. The check is fused into the forecast kernel: no extra memory traffic on
            GPU. None disables it.
        fallback: What happens to a refused element. ``"reuse"`` (default): it takes its last
            computed value, on the device, so the guard never synchronises the host; the counter
            is read when `stats()` is called or the pipeline call ends. ``"recompute"``: the whole
            step is computed instead, exact, at the price of one host synchronisation per
            forecast step.

    """

    policy: Policy = field(default_factory=Interval)
    forecaster: Forecaster = field(default_factory=Taylor)
    target: str = "blocks"
    history_dtype: str = "auto"
    fallback_margin: float | None = 4.0
    fallback: Literal["reuse", "recompute"] = "reuse"

    def __post_init__(self) -> None:
        if self.fallback_margin is not None:
            check_float("CacheConfig", "fallback_margin", self.fallback_margin, 1.0)
        check_choice("CacheConfig", "fallback", self.fallback, FALLBACKS)
        POLICIES.check("CacheConfig", "policy", self.policy)
        FORECASTERS.check("CacheConfig", "forecaster", self.forecaster)
        check_target("CacheConfig", self.target)
        check_choice("CacheConfig", "history_dtype", self.history_dtype, HISTORY_DTYPES)

    @property
    def storage_dtype(self) -> torch.dtype | None:
        """The torch dtype of the history, None for the feature's own dtype."""
        return HISTORY_DTYPES[self.history_dtype]


def check_target(owner: str, value: Any) -> None:
    """Raise `ValueError` unless `value` names a registered target (listing the registered ones)."""
    if value not in TARGETS:
        raise ValueError(f"{owner}: `target` must be one of {TARGETS.names()}, got {value!r}")


def _check_schedule_fields(owner: str, config: Any, min_cooldown: int) -> None:
    """Validate the fields every preset shares (warm-up, cool-down, target, coordinate, dtype)."""
    check_int(owner, "warmup", config.warmup, 1)
    check_int(owner, "cooldown", config.cooldown, min_cooldown)
    check_target(owner, config.target)
    check_choice(owner, "coordinate", config.coordinate, COORDINATES)
    check_choice(owner, "history_dtype", config.history_dtype, HISTORY_DTYPES)


@dataclass(frozen=True)
class TaylorSeerConfig:
    """TaylorSeer ("From Reusing to Forecasting", arXiv:2503.06923) as a preset.

    Caches the attention and feed-forward outputs of every block and forecasts them with a
    Taylor series over the step index; the blocks run at warm-up, every `interval`-th step and at
    the last `cooldown` steps. The paper reports 4.99x fewer FLOPs on FLUX.1-dev without
    ImageReward loss (3.53x wall clock).

    Args:
        interval: Steps between full computations (>= 1). Default 5. Larger is faster and lossier.
        order: Taylor order in [0, 8]. Default 2. 0 is plain reuse.
        warmup: Leading full steps (>= 1). Default 3.
        cooldown: Trailing full steps (>= 0). Default 1.
        target: See `CacheConfig.target`. Default ``"modules"`` (the paper's choice).
        coordinate: ``"step"`` (default, the paper's) or ``"timestep"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    """

    interval: int = 5
    order: int = 2
    warmup: int = 3
    cooldown: int = 1
    target: str = "modules"
    coordinate: Literal["step", "timestep"] = "step"
    history_dtype: str = "auto"

    def __post_init__(self) -> None:
        _check_schedule_fields("TaylorSeerConfig", self, min_cooldown=0)
        check_int("TaylorSeerConfig", "interval", self.interval, 1)
        check_int("TaylorSeerConfig", "order", self.order, 0, 8)


@dataclass(frozen=True)
class AdamsBashforthConfig:
    """AB-Cache (arXiv:2504.10540) as a preset: k-th order extrapolation on the real timestep grid.

    The cached output is computed on a fixed interval and extrapolated in between with
    Adams-Bashforth / polynomial weights of the non-uniform timestep grid (error O(h^k)). The
    paper reports about 3x on FLUX and HunyuanVideo.

    Args:
        interval: Steps between full computations (>= 1). Default 3.
        order: Extrapolation order k in [1, 8]. Default 2. 1 is reuse.
        warmup: Leading full steps (>= 1). Default 2.
        cooldown: Trailing full steps (>= 0). Default 1.
        target: See `CacheConfig.target`. Default ``"output"`` (the denoiser output, as the paper).
        coordinate: ``"timestep"`` (default) or ``"step"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    """

    interval: int = 3
    order: int = 2
    warmup: int = 2
    cooldown: int = 1
    target: str = "output"
    coordinate: Literal["step", "timestep"] = "timestep"
    history_dtype: str = "auto"

    def __post_init__(self) -> None:
        _check_schedule_fields("AdamsBashforthConfig", self, min_cooldown=0)
        check_int("AdamsBashforthConfig", "interval", self.interval, 1)
        check_int("AdamsBashforthConfig", "order", self.order, 1, 8)


@dataclass(frozen=True)
class ConfidenceGateConfig:
    """CG-Taylor ("Forecasting When to Forecast") as a preset.

    The first `probe_blocks` blocks always run; their Taylor forecast is compared with their real
    output, and when the relative L1 error is under `threshold` the rest of the stack is forecast
    (the residual of the last block), otherwise everything runs. The paper reports 3.17x on FLUX,
    2.36x on DiT and 4.14x on Wan with negligible quality drop.

    Args:
        threshold: Relative L1 error in (0, 10]. Default 0.1. Larger is faster and lossier.
        order: Taylor order in [0, 8]. Default 1.
        max_consecutive: Cap on forecasts in a row (>= 1). Default 4.
        warmup: Leading full steps (>= 1). Default 2.
        cooldown: Trailing full steps (>= 1). Default 1.
        probe_blocks: Blocks that always run (>= 1). Default 1.
        reduce_across_ranks: All-reduce the gate's error over the default `torch.distributed`
            group (a sequence sharded by other means than diffusers). Under diffusers' context
            parallelism the gate reduces over the context-parallel ranks by itself. Default False.
        target: See `CacheConfig.target`. Default ``"blocks"``.
        coordinate: ``"step"`` (default) or ``"timestep"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    """

    threshold: float = 0.1
    order: int = 1
    max_consecutive: int = 4
    warmup: int = 2
    cooldown: int = 1
    probe_blocks: int = 1
    reduce_across_ranks: bool = False
    target: str = "blocks"
    coordinate: Literal["step", "timestep"] = "step"
    history_dtype: str = "auto"

    def __post_init__(self) -> None:
        _check_schedule_fields("ConfidenceGateConfig", self, min_cooldown=1)
        check_float("ConfidenceGateConfig", "threshold", self.threshold, 0.0, 10.0)
        check_int("ConfidenceGateConfig", "order", self.order, 0, 8)
        check_int("ConfidenceGateConfig", "max_consecutive", self.max_consecutive, 1)
        check_int("ConfidenceGateConfig", "probe_blocks", self.probe_blocks, 1)
        check_instance("ConfidenceGateConfig", "reduce_across_ranks", self.reduce_across_ranks, (bool,))


@dataclass(frozen=True)
class TimelineConfig:
    """The measured default: steps placed denser late on the normalised timeline, Taylor on the blocks.

    No paper's preset but what the shipped reference models measured best without tuning (see
    BENCHMARKS.md, "Past 5x"): at 50 steps, computing ``round(50 / ratio)`` steps at the
    positions ``1 - (1 - u) ** shape`` (``u`` evenly spaced in [0, 1]: sparse early where the
    features change slowly in the forecaster's eyes, dense late where errors are no longer
    corrected) and forecasting the block stack's residual with a Taylor series. The schedule is a
    `Shaped` policy: every step count gets the same compute ratio with the same density. For the
    most out of one model, tune it: `forecache.tune`.

    Args:
        ratio: Steps over computed steps (> 1). Default 5.5. Larger is faster and lossier.
        shape: Density exponent (> 0): 1 spaces computed steps evenly, larger puts more of them
            late. Default 1.3 (flow-matching models prefer ~1.6, DDIM ones ~1.0).
        order: Taylor order in [0, 8]. Default 2.
        target: See `CacheConfig.target`. Default ``"blocks"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    """

    ratio: float = 5.5
    shape: float = 1.3
    order: int = 2
    target: str = "blocks"
    history_dtype: str = "auto"

    def __post_init__(self) -> None:
        check_float("TimelineConfig", "ratio", self.ratio, 1.0, 50.0)
        check_float("TimelineConfig", "shape", self.shape, 0.0, 10.0)
        check_int("TimelineConfig", "order", self.order, 0, 8)
        check_target("TimelineConfig", self.target)
        check_choice("TimelineConfig", "history_dtype", self.history_dtype, HISTORY_DTYPES)


C = TypeVar("C")
_RESOLVERS: dict[type, Callable[[object], CacheConfig]] = {}


def register_config(
    config_type: type[C],
) -> Callable[[Callable[[C], CacheConfig]], Callable[[C], CacheConfig]]:
    """Register a function turning configs of `config_type` into a `CacheConfig`.

    Example:
        >>> @register_config(MyPreset)  # doctest: +SKIP
        ... def _(cfg): return CacheConfig(policy=Interval(every=cfg.n))

    """

    def decorator(fn: Callable[[C], CacheConfig]) -> Callable[[C], CacheConfig]:
        _RESOLVERS[config_type] = fn  # type: ignore[assignment]
        return fn

    return decorator


def resolve_config(config: object) -> CacheConfig:
    """Return the `CacheConfig` a preset (or a `CacheConfig`) stands for.

    Raises:
        TypeError: If no resolver is registered for the config's type; the message lists the known ones.

    """
    resolver = _RESOLVERS.get(type(config))
    if resolver is None:
        known = sorted(t.__name__ for t in _RESOLVERS)
        raise TypeError(f"`config` must be one of {known}, got {config!r} ({type(config).__name__})")
    return resolver(config)


@register_config(CacheConfig)
def _identity(config: CacheConfig) -> CacheConfig:
    return config


@register_config(TaylorSeerConfig)
def _taylorseer(config: TaylorSeerConfig) -> CacheConfig:
    return CacheConfig(
        policy=Interval(every=config.interval, warmup=config.warmup, cooldown=config.cooldown),
        forecaster=Taylor(order=config.order, coordinate=config.coordinate),
        target=config.target,
        history_dtype=config.history_dtype,
    )


@register_config(AdamsBashforthConfig)
def _adams_bashforth(config: AdamsBashforthConfig) -> CacheConfig:
    return CacheConfig(
        policy=Interval(every=config.interval, warmup=config.warmup, cooldown=config.cooldown),
        forecaster=AdamsBashforth(order=config.order, coordinate=config.coordinate),
        target=config.target,
        history_dtype=config.history_dtype,
    )


@register_config(ConfidenceGateConfig)
def _confidence_gate(config: ConfidenceGateConfig) -> CacheConfig:
    return CacheConfig(
        policy=ConfidenceGate(
            threshold=config.threshold,
            max_consecutive=config.max_consecutive,
            warmup=config.warmup,
            cooldown=config.cooldown,
            probe_blocks=config.probe_blocks,
            reduce_across_ranks=config.reduce_across_ranks,
        ),
        forecaster=Taylor(order=config.order, coordinate=config.coordinate),
        target=config.target,
        history_dtype=config.history_dtype,
    )


@register_config(TimelineConfig)
def _timeline(config: TimelineConfig) -> CacheConfig:
    return CacheConfig(
        policy=Shaped(ratio=config.ratio, shape=config.shape),
        forecaster=Taylor(order=config.order),
        target=config.target,
        history_dtype=config.history_dtype,
    )
