"""cache-dit's DBCache as peers: with each of its calibrators (TaylorSeer, FoCa, DMD) and its step masks.

On a pipeline that calls the transformer twice per step (classifier-free guidance in two calls,
like FLUX's true CFG or Wan) DBCache gets ``enable_separate_cfg=True``, so the two branches keep
separate caches. Needs ``pip install cache-dit`` (``forecache[peers]``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forecache.eval._private import snapshot_forwards
from forecache.eval.methods.base import (
    Detach,
    Knob,
    Method,
    MethodRun,
    MethodSpec,
    Style,
    refuse_unknown,
    register_method,
)

__all__ = ["CacheDit"]

_CALIBRATORS = {
    "taylorseer": "TaylorSeerCalibratorConfig",
    "foca": "FoCaCalibratorConfig",
    "dmd": "DMDCalibratorConfig",
}
_CACHEDIT_OWN = ("calibrator", "taylorseer_order", "mask_policy")


def _fields() -> list[str] | None:
    try:
        import cache_dit
    except ImportError:
        return None
    names = list(inspect.signature(cache_dit.DBCacheConfig).parameters)
    return [n for n in names if n not in ("cache_type", "num_inference_steps")] + list(_CACHEDIT_OWN)


def _enable(pipe: Any, params: dict[str, Any], run: MethodRun) -> Detach:
    """cache-dit's DBCache with a calibrator (``calibrator``: taylorseer, foca, dmd or none).

    ``mask_policy`` (slow, medium, fast, ultra) adds cache-dit's predefined static step mask
    (`cache_dit.steps_mask`): the steps it marks are computed, the others reuse the cache.
    """
    try:
        import cache_dit
    except ImportError as err:
        raise RuntimeError("cache-dit is not installed: pip install cache-dit (or forecache[peers])") from err
    calibrator = str(params.pop("calibrator", "taylorseer")).lower()
    order = int(params.pop("taylorseer_order", 1))
    policy = params.pop("mask_policy", None)
    if calibrator not in (*_CALIBRATORS, "none"):
        raise ValueError(
            f"cache-dit: `calibrator` must be one of {[*_CALIBRATORS, 'none']}, got {calibrator!r}"
        )
    if policy is not None:
        params.setdefault(
            "steps_computation_mask",
            cache_dit.steps_mask(total_steps=run.num_inference_steps, mask_policy=str(policy)),
        )
        params.setdefault("steps_computation_policy", "static")
    params.setdefault("enable_separate_cfg", run.calls_per_step == 2)
    config = cache_dit.DBCacheConfig(num_inference_steps=run.num_inference_steps, **params)
    calibration = None
    if calibrator == "taylorseer" and order > 0:
        calibration = cache_dit.TaylorSeerCalibratorConfig(taylorseer_order=order)
    elif calibrator in ("foca", "dmd"):
        calibration = getattr(cache_dit, _CALIBRATORS[calibrator])()
    run.info["cache_dit_version"] = getattr(cache_dit, "__version__", "unknown")
    run.info["enable_separate_cfg"] = params["enable_separate_cfg"]
    restore = snapshot_forwards(getattr(pipe, "transformer", pipe))  # a pipeline, or a bare transformer
    try:
        cache_dit.enable_cache(pipe, cache_config=config, calibrator_config=calibration)
    except Exception:
        with contextlib.suppress(Exception):  # leave the pipeline as it was, then report the error
            cache_dit.disable_cache(pipe)
        restore()
        raise

    def detach() -> None:
        try:
            cache_dit.disable_cache(pipe)
        finally:
            restore()

    return detach


@dataclass(frozen=True)
class CacheDit(Method):
    """cache-dit's DBCache (F1B0) with a calibrator or a step mask.

    Attributes:
        defaults: Parameters used unless overridden (the calibrator, the mask policy, DBCache's
            block counts and warm-up).

    """

    defaults: Mapping[str, Any] = field(default_factory=dict)

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Refuse a field DBCache and its calibrators do not take (unchecked without cache-dit)."""
        known = _fields()
        if known is not None:
            refuse_unknown(self.name, params, known)
        return params, None

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Enable DBCache on the peer target (a pipeline, or the bare transformer in `profile`)."""
        return _enable(peer_target, {**self.defaults, **spec.params}, run)


def _threshold(config: Any, steps: int) -> Knob:
    return Knob("residual_diff_threshold", low=0.002, high=8.0, start=0.08)


_DBCACHE = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "max_warmup_steps": 3}
# profile calls the bare transformer once per step (no classifier-free guidance as a second call),
# so separate CFG caches are off unless given (Wan's adapter turns them on and counts two calls)
_PROFILE = {"enable_separate_cfg": False}

for _method in (
    CacheDit(
        "cachedit.dbcache",
        "peer",
        "cache-dit DBCache (F1B0) with its TaylorSeer calibrator (order 1)",
        Style("#006d2c", "^"),
        _threshold,
        ("cache_dit",),
        _PROFILE,
        defaults=_DBCACHE,
    ),
    CacheDit(
        "cachedit.foca",
        "peer",
        "cache-dit DBCache (F1B0) with its FoCa calibrator",
        Style("#31a354", "v"),
        _threshold,
        ("cache_dit",),
        _PROFILE,
        defaults={**_DBCACHE, "calibrator": "foca"},
    ),
    CacheDit(
        "cachedit.dmd",
        "peer",
        "cache-dit DBCache (F1B0) with its DMD (exponential fit) calibrator",
        Style("#74c476", "<"),
        _threshold,
        ("cache_dit",),
        _PROFILE,
        defaults={**_DBCACHE, "calibrator": "dmd"},
    ),
    CacheDit(
        "cachedit.scm",
        "peer",
        "cache-dit DBCache (F1B0) + TaylorSeer under a static step mask (steps_mask policy)",
        Style("#41ab5d", ">"),
        lambda config, steps: Knob("mask_policy", values=("slow", "medium", "fast", "ultra")),
        ("cache_dit",),
        _PROFILE,
        defaults={**_DBCACHE, "mask_policy": "medium"},
    ),
):
    register_method(_method)
