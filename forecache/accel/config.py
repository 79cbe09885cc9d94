"""The cache configuration: the general policy x forecaster x target form every preset returns.

A frozen dataclass validated on construction. The three axes are open registries: any registered
policy, forecaster or target name is accepted. The presets (names mapped to functions returning
a `CacheConfig`) are the one table of `forecache.accel.presets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from forecache.accel._checks import check_choice, check_float
from forecache.accel.forecasters import FORECASTERS, Forecaster, Taylor
from forecache.accel.policies import POLICIES, Interval, Policy
from forecache.accel.targets import TARGETS

__all__ = ["FALLBACKS", "HISTORY_DTYPES", "CacheConfig", "check_target"]

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
