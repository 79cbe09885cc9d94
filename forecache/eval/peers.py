"""Peer caches measured in the same harness: diffusers' built-in cache hooks and cache-dit.

Each peer is an `attach(pipe, params, run)` function that enables the peer on a pipeline and
returns the function that disables it. diffusers' peers go through
``pipe.transformer.enable_cache(config)`` / ``disable_cache()`` (models without diffusers'
`CacheMixin` cannot take them and are reported with that error). MagCache is calibrated first:
one generation with ``calibrate=True`` records the per-step residual magnitude ratios, which then
drive the real run (see diffusers' ``hooks/mag_cache.py``); the calibration is kept for the other
settings of the same run. cache-dit's DBCache runs with each of its calibrators (TaylorSeer, FoCa,
DMD) and with its static step masks; on a pipeline that calls the transformer twice per step
(classifier-free guidance in two calls, like FLUX's true CFG or Wan) it gets
``enable_separate_cfg=True``, so the two branches keep separate caches.
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
        calls_per_step: Transformer calls per denoising step of the baseline (2: guidance in two
            calls).
        memo: Kept across the settings of one peer in one run (MagCache's calibration).
        info: Filled by the peer: calibration results and notes, copied into the report.
        calibration: ``calibration(k)`` returns the pipeline arguments of a call generating `k`
            calibration samples (the benchmark's first `k` conditions; the caller seeds it apart
            from the benchmark's own samples). None where the harness drives a bare transformer.

    """

    num_inference_steps: int
    run_once: Callable[[], object]
    calls_per_step: int = 1
    memo: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    calibration: Callable[[int], dict[str, Any]] | None = None


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


def _taylorseer(pipe: Any, params: dict[str, Any], run: PeerRun) -> Detach:
    """Enable diffusers' TaylorSeer, its own attention patterns made to match numbered attention modules.

    On models whose attention modules are numbered (Wan's ``attn1``/``attn2``) diffusers' default
    patterns (``^blocks.*attn``, matched whole) hook nothing; the same patterns followed by the
    number are given then, unless the run sets its own.
    """
    import re

    from diffusers.hooks import TaylorSeerCacheConfig
    from diffusers.hooks.taylorseer_cache import _TRANSFORMER_BLOCK_IDENTIFIERS

    transformer = _transformer(pipe)
    own = ("cache_identifiers", "skip_predict_identifiers", "use_lite_mode")
    names = [name for name, _ in transformer.named_modules()]
    if not any(params.get(key) for key in own) and not any(
        re.fullmatch(pattern, name) for pattern in _TRANSFORMER_BLOCK_IDENTIFIERS for name in names
    ):
        numbered = [rf"{pattern}\d+" for pattern in _TRANSFORMER_BLOCK_IDENTIFIERS]
        if any(re.fullmatch(pattern, name) for pattern in numbered for name in names):
            params = {**params, "cache_identifiers": numbered}
            run.info["cache_identifiers"] = (
                f"{numbered}: diffusers' default attention patterns match no module of "
                f"{type(transformer).__name__} (numbered attention modules)"
            )
    transformer.enable_cache(TaylorSeerCacheConfig(**params))
    return transformer.disable_cache


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
    ratios = params.pop("mag_ratios", None) or run.memo.get("mag_ratios")
    if ratios is None:
        transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=run.num_inference_steps))
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                run.run_once()
        finally:
            transformer.disable_cache()
        ratios = run.memo["mag_ratios"] = _parse_ratios(printed.getvalue())
    run.info["calibration"] = "one generation of the first batch with calibrate=True"
    run.info["mag_ratios"] = [round(float(r), 5) for r in ratios]
    config = MagCacheConfig(mag_ratios=ratios, num_inference_steps=run.num_inference_steps, **params)
    transformer.enable_cache(config)
    return transformer.disable_cache


_CALIBRATORS = {
    "taylorseer": "TaylorSeerCalibratorConfig",
    "foca": "FoCaCalibratorConfig",
    "dmd": "DMDCalibratorConfig",
}
_CACHEDIT_OWN = ("calibrator", "taylorseer_order", "mask_policy")


def _cachedit_fields() -> list[str] | None:
    try:
        import cache_dit
    except ImportError:
        return None
    names = list(inspect.signature(cache_dit.DBCacheConfig).parameters)
    return [n for n in names if n not in ("cache_type", "num_inference_steps")] + list(_CACHEDIT_OWN)


def _cachedit(pipe: Any, params: dict[str, Any], run: PeerRun) -> Detach:
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
    restore = _snapshot_forwards(getattr(pipe, "transformer", pipe))  # a pipeline, or a bare transformer
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


_PATCHED = ("forward", "_is_patched")


def _snapshot_forwards(transformer: Any) -> Detach:
    """Record every module's instance ``forward`` and children; the returned function puts them back.

    cache-dit's patch functors replace the transformer's and some blocks' ``forward`` (and mark
    ``_is_patched``), and its adapter re-registers the block lists (changing the order in which
    `named_modules` lists them); `disable_cache` leaves both, which breaks caches run afterwards
    (diffusers' FirstBlockCache takes the first block it lists as the leader).
    """
    saved = [
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


_DBCACHE = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "max_warmup_steps": 3}

PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            "diffusers.taylorseer",
            "diffusers TaylorSeerCacheConfig (TaylorSeer on attention outputs)",
            _taylorseer,
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
            _DBCACHE,
        ),
        Peer(
            "cachedit.foca",
            "cache-dit DBCache (F1B0) with its FoCa calibrator",
            _cachedit,
            _cachedit_fields,
            {**_DBCACHE, "calibrator": "foca"},
        ),
        Peer(
            "cachedit.dmd",
            "cache-dit DBCache (F1B0) with its DMD (exponential fit) calibrator",
            _cachedit,
            _cachedit_fields,
            {**_DBCACHE, "calibrator": "dmd"},
        ),
        Peer(
            "cachedit.scm",
            "cache-dit DBCache (F1B0) + TaylorSeer under a static step mask (steps_mask policy)",
            _cachedit,
            _cachedit_fields,
            {**_DBCACHE, "mask_policy": "medium"},
        ),
    )
}
