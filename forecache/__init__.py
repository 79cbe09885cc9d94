"""forecache: training-free acceleration of diffusion transformers by forecasting cached features.

Wrap a diffusers pipeline in one call and most denoising steps skip the transformer's blocks,
forecasting their features from the steps that ran (TaylorSeer, AB-Cache, CG-Taylor)::

    import forecache
    forecache.apply(pipe, forecache.TaylorSeerConfig())
    image = pipe(prompt).images[0]
    print(forecache.stats(pipe).summary())

Importing forecache loads neither diffusers nor Triton: the hooking functions are imported on first
use (diffusers itself imports Triton when it is installed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import (
    DMD,
    AdamsBashforth,
    Damped,
    FoCa,
    Hermite,
    Reuse,
    Taylor,
    register_forecaster,
)
from forecache.accel.policies import (
    ConfidenceGate,
    Interval,
    Shaped,
    StepMask,
    Timeline,
    Verify,
    register_policy,
)
from forecache.accel.presets import (
    AdamsBashforthConfig,
    ConfidenceGateConfig,
    TaylorSeerConfig,
    TimelineConfig,
    register_preset,
)
from forecache.accel.stats import CacheStats, ContextStats
from forecache.accel.targets import register_target
from forecache.calibrate import TuneResult, tune

if TYPE_CHECKING:
    from forecache.api import Cache, apply, cached, remove, stats
    from forecache.layouts.registry import UnsupportedModelError, register_layout, supported_models

__version__ = "0.1.0"

_LAZY = {
    "Cache": "forecache.api",
    "apply": "forecache.api",
    "cached": "forecache.api",
    "remove": "forecache.api",
    "stats": "forecache.api",
    "UnsupportedModelError": "forecache.layouts.registry",
    "register_layout": "forecache.layouts.registry",
    "supported_models": "forecache.layouts.registry",
}


def __getattr__(name: str) -> Any:
    """Import the hooking API (which needs diffusers) on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forecache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, lazy ones included."""
    return sorted(__all__)


__all__ = [
    "DMD",
    "AdamsBashforth",
    "AdamsBashforthConfig",
    "Cache",
    "CacheConfig",
    "CacheStats",
    "ConfidenceGate",
    "ConfidenceGateConfig",
    "ContextStats",
    "Damped",
    "FoCa",
    "Hermite",
    "Interval",
    "Reuse",
    "Shaped",
    "StepMask",
    "Taylor",
    "TaylorSeerConfig",
    "Timeline",
    "TimelineConfig",
    "TuneResult",
    "UnsupportedModelError",
    "Verify",
    "__version__",
    "apply",
    "cached",
    "register_forecaster",
    "register_layout",
    "register_policy",
    "register_preset",
    "register_target",
    "remove",
    "stats",
    "supported_models",
    "tune",
]
