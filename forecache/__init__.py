"""forecache: training-free acceleration of diffusion transformers by forecasting cached features.

Wrap a diffusers pipeline in one call and most denoising steps skip the transformer's blocks,
forecasting their features from the steps that ran (TaylorSeer, AB-Cache, CG-Taylor)::

    import forecache
    forecache.apply(pipe, forecache.TaylorSeerConfig())
    image = pipe(prompt).images[0]
    print(forecache.stats(pipe).summary())
"""

from forecache.accel.config import (
    AdamsBashforthConfig,
    CacheConfig,
    ConfidenceGateConfig,
    TaylorSeerConfig,
    register_config,
)
from forecache.accel.forecasters import AdamsBashforth, Reuse, Taylor
from forecache.accel.policies import ConfidenceGate, Interval, StepMask
from forecache.accel.stats import CacheStats, ContextStats
from forecache.pipelines.api import apply, cached, remove, stats
from forecache.pipelines.registry import UnsupportedModelError, register_layout, supported_models

__version__ = "0.1.0"

__all__ = [
    "AdamsBashforth",
    "AdamsBashforthConfig",
    "CacheConfig",
    "CacheStats",
    "ConfidenceGate",
    "ConfidenceGateConfig",
    "ContextStats",
    "Interval",
    "Reuse",
    "StepMask",
    "Taylor",
    "TaylorSeerConfig",
    "UnsupportedModelError",
    "__version__",
    "apply",
    "cached",
    "register_config",
    "register_layout",
    "remove",
    "stats",
    "supported_models",
]
