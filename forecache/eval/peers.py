"""Peer caches measured in the same harness: diffusers' built-in cache hooks and cache-dit's DBCache.

Each peer is an `attach(pipe, params, run)` function that enables the peer on a pipeline and
returns the function that disables it. diffusers' peers go through
``pipe.transformer.enable_cache(config)`` / ``disable_cache()`` (models without diffusers'
`CacheMixin` cannot take them and are reported with that error). MagCache is calibrated first:
one generation with ``calibrate=True`` records the per-step residual magnitude ratios, which then
drive the real run (see diffusers' ``hooks/mag_cache.py``).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PEERS", "Peer", "PeerRun"]

Detach = Callable[[], None]


@dataclass
class PeerRun:
    """What a peer may use while attaching.

    Attributes:
        num_inference_steps: Steps per generation (MagCache and cache-dit need them up front).
        run_once: Runs one generation (the first batch) on the pipeline as it is; for calibration.
        info: Filled by the peer: calibration results and notes, copied into the report.

    """

    num_inference_steps: int
    run_once: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """A registered peer method.

    Attributes:
        name: The method name in specs, e.g. ``"diffusers.fbcache"``.
        description: One line for reports.
        attach: ``attach(pipe, params, run) -> detach``.
        fields: The accepted parameter names, or a function returning them (None: unchecked).
        defaults: Parameters used unless overridden.

    """

    name: str
    description: str
    attach: Callable[[Any, dict[str, Any], PeerRun], Detach]
    fields: Callable[[], list[str] | None]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise `ValueError` naming an unknown parameter and listing the accepted ones."""
        known = self.fields()
        if known is None:
            return
        for key, value in params.items():
            if key not in known:
                raise ValueError(
                    f"{self.name}: unknown field `{key}` (given {key}={value!r}); fields: {known}"
                )


def _transformer(pipe: Any) -> Any:
    transformer = getattr(pipe, "transformer", None)
    if transformer is None or not hasattr(transformer, "enable_cache"):
        name = type(transformer).__name__ if transformer is not None else type(pipe).__name__
        raise RuntimeError(
            f"{name} has no `enable_cache` (diffusers' CacheMixin): diffusers' cache hooks cannot be enabled"
        )
    return transformer


def _diffusers_fields(config_name: str, hidden: tuple[str, ...] = ()) -> Callable[[], list[str]]:
    def fields() -> list[str]:
        import diffusers.hooks

        cls = getattr(diffusers.hooks, config_name)
        return [f.name for f in dataclasses.fields(cls) if f.name not in hidden]

    return fields


def _diffusers_peer(config_name: str) -> Callable[[Any, dict[str, Any], PeerRun], Detach]:
    def attach(pipe: Any, params: dict[str, Any], run: PeerRun) -> Detach:
        import diffusers.hooks

        transformer = _transformer(pipe)
        transformer.enable_cache(getattr(diffusers.hooks, config_name)(**params))
        return transformer.disable_cache

    return attach


def _parse_ratios(printed: str) -> list[float]:
    """Average the ratio lists MagCache printed (one per guidance context) element-wise."""
    lists = []
    for line in printed.splitlines():
        try:
            value = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            lists.append(value)
    if not lists:
        raise RuntimeError("MagCache calibration printed no ratios (did the run reach its last step?)")
    length = min(len(values) for values in lists)
    return [sum(values[i] for values in lists) / len(lists) for i in range(length)]


def _magcache(pipe: Any, params: dict[str, Any], run: PeerRun) -> Detach:
    from diffusers.hooks import MagCacheConfig

    transformer = _transformer(pipe)
    ratios = params.pop("mag_ratios", None)
    if ratios is None:
        transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=run.num_inference_steps))
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                run.run_once()
        finally:
            transformer.disable_cache()
        ratios = _parse_ratios(printed.getvalue())
        run.info["calibration"] = "one generation of the first batch with calibrate=True"
    run.info["mag_ratios"] = [round(float(r), 5) for r in ratios]
    config = MagCacheConfig(mag_ratios=ratios, num_inference_steps=run.num_inference_steps, **params)
    transformer.enable_cache(config)
    return transformer.disable_cache


def _cachedit_fields() -> list[str] | None:
    try:
        import cache_dit
    except ImportError:
        return None
    names = list(inspect.signature(cache_dit.DBCacheConfig).parameters)
    return [n for n in names if n not in ("cache_type", "num_inference_steps")] + ["taylorseer_order"]


def _cachedit(pipe: Any, params: dict[str, Any], run: PeerRun) -> Detach:
    try:
        import cache_dit
    except ImportError as err:
        raise RuntimeError("cache-dit is not installed: pip install cache-dit") from err
    order = int(params.pop("taylorseer_order", 1))
    config = cache_dit.DBCacheConfig(num_inference_steps=run.num_inference_steps, **params)
    calibrator = cache_dit.TaylorSeerCalibratorConfig(taylorseer_order=order) if order > 0 else None
    run.info["cache_dit_version"] = getattr(cache_dit, "__version__", "unknown")
    try:
        cache_dit.enable_cache(pipe, cache_config=config, calibrator_config=calibrator)
    except Exception:
        with contextlib.suppress(Exception):  # leave the pipeline as it was, then report the error
            cache_dit.disable_cache(pipe)
        raise
    return lambda: cache_dit.disable_cache(pipe)


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            "diffusers.taylorseer",
            "diffusers TaylorSeerCacheConfig (TaylorSeer on attention outputs)",
            _diffusers_peer("TaylorSeerCacheConfig"),
            _diffusers_fields("TaylorSeerCacheConfig"),
        ),
        Peer(
            "diffusers.fbcache",
            "diffusers FirstBlockCacheConfig (first-block residual change gates the rest)",
            _diffusers_peer("FirstBlockCacheConfig"),
            _diffusers_fields("FirstBlockCacheConfig"),
            {"threshold": 0.05},
        ),
        Peer(
            "diffusers.magcache",
            "diffusers MagCacheConfig, calibrated on the first batch",
            _magcache,
            _diffusers_fields("MagCacheConfig", hidden=("num_inference_steps", "calibrate")),
        ),
        Peer(
            "cachedit.dbcache",
            "cache-dit DBCache (F1B0) with its TaylorSeer calibrator (order 1)",
            _cachedit,
            _cachedit_fields,
            {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "max_warmup_steps": 3},
        ),
    )
}
