"""diffusers' own cache hooks as peers: TaylorSeer, FirstBlockCache and MagCache.

Each goes through ``pipe.transformer.enable_cache(config)`` / ``disable_cache()`` (models without
diffusers' `CacheMixin` cannot take them and are reported with that error). MagCache is calibrated
first: one generation with ``calibrate=True`` records the per-step residual magnitude ratios, which
then drive the real run (see diffusers' ``hooks/mag_cache.py``); the calibration is kept for the
other settings of the same run.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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

__all__ = ["DiffusersCache"]


def _transformer(pipe: Any) -> Any:
    transformer = getattr(pipe, "transformer", None)
    if transformer is None or not hasattr(transformer, "enable_cache"):
        name = type(transformer).__name__ if transformer is not None else type(pipe).__name__
        raise RuntimeError(
            f"{name} has no `enable_cache` (diffusers' CacheMixin): diffusers' cache hooks cannot be enabled"
        )
    return transformer


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


def _enable(pipe: Any, config_name: str, params: dict[str, Any], run: MethodRun) -> Detach:
    import diffusers.hooks

    transformer = _transformer(pipe)
    transformer.enable_cache(getattr(diffusers.hooks, config_name)(**params))
    return transformer.disable_cache


def _taylorseer(pipe: Any, config_name: str, params: dict[str, Any], run: MethodRun) -> Detach:
    """Enable diffusers' TaylorSeer, its own attention patterns made to match numbered attention modules.

    On models whose attention modules are numbered (Wan's ``attn1``/``attn2``) diffusers' default
    patterns (``^blocks.*attn``, matched whole) hook nothing; the same patterns followed by the
    number are given then, unless the run sets its own.
    """
    import re

    from diffusers.hooks import TaylorSeerCacheConfig

    from forecache.eval._private import taylorseer_attention_patterns

    transformer = _transformer(pipe)
    own = ("cache_identifiers", "skip_predict_identifiers", "use_lite_mode")
    names = [name for name, _ in transformer.named_modules()]
    defaults = taylorseer_attention_patterns()
    if not any(params.get(key) for key in own) and not any(
        re.fullmatch(pattern, name) for pattern in defaults for name in names
    ):
        numbered = [rf"{pattern}\d+" for pattern in defaults]
        if any(re.fullmatch(pattern, name) for pattern in numbered for name in names):
            params = {**params, "cache_identifiers": numbered}
            run.info["cache_identifiers"] = (
                f"{numbered}: diffusers' default attention patterns match no module of "
                f"{type(transformer).__name__} (numbered attention modules)"
            )
    transformer.enable_cache(TaylorSeerCacheConfig(**params))
    return transformer.disable_cache


def _magcache(pipe: Any, config_name: str, params: dict[str, Any], run: MethodRun) -> Detach:
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


@dataclass(frozen=True)
class DiffusersCache(Method):
    """A cache config of ``diffusers.hooks`` enabled with the transformer's ``enable_cache``.

    Attributes:
        config_name: The config class in ``diffusers.hooks``.
        hidden: Its fields the harness sets itself (not accepted in specs).
        defaults: Parameters used unless overridden.
        enable: ``enable(pipe, config_name, params, run) -> detach``.

    """

    config_name: str = ""
    hidden: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    enable: Callable[[Any, str, dict[str, Any], MethodRun], Detach] = _enable

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Refuse a field the config class does not have."""
        import diffusers.hooks

        cls = getattr(diffusers.hooks, self.config_name)
        refuse_unknown(
            self.name, params, [f.name for f in dataclasses.fields(cls) if f.name not in self.hidden]
        )
        return params, None

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Enable the cache on the peer target's transformer."""
        return self.enable(peer_target, self.config_name, {**self.defaults, **spec.params}, run)


def _threshold(start: float) -> Callable[[Any, int], Knob]:
    return lambda config, steps: Knob("threshold", low=0.002, high=4.0, start=start)


for _method in (
    DiffusersCache(
        "diffusers.taylorseer",
        "peer",
        "diffusers TaylorSeerCacheConfig (TaylorSeer on attention outputs)",
        Style("#a63603", "o"),
        lambda config, steps: Knob("cache_interval", values=tuple(range(1, steps + 1))),
        config_name="TaylorSeerCacheConfig",
        enable=_taylorseer,
    ),
    DiffusersCache(
        "diffusers.fbcache",
        "peer",
        "diffusers FirstBlockCacheConfig (first-block residual change gates the rest)",
        Style("#e6550d", "s"),
        _threshold(0.05),
        config_name="FirstBlockCacheConfig",
        defaults={"threshold": 0.05},
    ),
    DiffusersCache(
        "diffusers.magcache",
        "peer",
        "diffusers MagCacheConfig, calibrated on the first batch",
        Style("#fd8d3c", "D"),
        _threshold(0.06),
        config_name="MagCacheConfig",
        hidden=("num_inference_steps", "calibrate"),
        enable=_magcache,
    ),
):
    register_method(_method)
