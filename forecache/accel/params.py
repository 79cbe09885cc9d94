"""Configs from plain values (a config file's or the command line's fields) and back.

`build` calls a preset, a policy or a forecaster with fields read from JSON, YAML or
``name:key=value`` text: unknown and missing fields are refused by name, integers become floats
where the default is a float, lists become tuples, and a step mask may be written ``"CCFCF"``.
`cache_from_params` builds the general form from nested ``{"type": name, ...}`` entries or flat
fields; `cache_params` writes a `CacheConfig` back, every field, so it reads back equal.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import FORECASTERS
from forecache.accel.policies import POLICIES, Verify
from forecache.accel.registry import Registry

__all__ = ["FORMER_FIELDS", "build", "cache_from_params", "cache_params"]

FORMER_FIELDS: dict[Any, dict[str, str]] = {Verify: {"max_run": "max_consecutive"}}
"""Fields renamed since files were first written: class -> former name -> name (files still load)."""
_CACHE_TOP = ("target", "history_dtype", "fallback_margin", "fallback")


def _coerce(owner: str, default: Any, key: str, value: Any) -> Any:
    """Turn ints into floats for float fields, lists into tuples, and C/F or 1/0 strings into a step mask."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key == "mask" and isinstance(value, (str, int)):
        text = str(value).upper()
        if set(text) - set("CF10"):
            raise ValueError(f"{owner}: `mask` must be a string of C/F (or 1/0) per step, got {value!r}")
        return tuple(ch in "C1" for ch in text)
    if isinstance(value, list):  # JSON and YAML have no tuples
        return tuple(value)
    return value


def build(function: Callable[..., Any], owner: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Call `function` (a preset, a policy or forecaster class) with fields read from a file or text.

    Args:
        function: What to call; its parameters are the fields (any field when it takes ``**kwargs``).
        owner: Its name in errors (a preset's name or the class name).
        params: The fields as read.

    Returns:
        The fields as passed (former names renamed, values coerced) and what `function` returned.

    Raises:
        ValueError: An unknown or missing field, or a value it refuses (naming the field).
        TypeError: A value of the wrong type.

    """
    former = FORMER_FIELDS.get(function, {})
    params = {former.get(key, key): value for key, value in params.items()}
    parameters = inspect.signature(function).parameters
    free = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    known = [name for name, p in parameters.items() if p.kind is not p.VAR_KEYWORD]
    if not free:
        for key, value in params.items():
            if key not in known:
                raise ValueError(
                    f"{owner}: unknown field {key!r} in `params`; fields: {known}, got {key}={value!r}"
                )
        for name, p in parameters.items():
            if p.default is p.empty and name not in params:
                raise ValueError(
                    f"{owner}: field `{name}` is required, got only {sorted(params)} (fields: {known})"
                )
    kwargs = {
        key: _coerce(owner, parameters[key].default if key in parameters else None, key, value)
        for key, value in params.items()
    }
    return kwargs, function(**kwargs)


def _pick(registry: Registry[type], value: Any, default: str) -> tuple[type, dict[str, Any]]:
    """Resolve a nested ``{"type": name, ...}`` dict or a bare name to (registered class, fields)."""
    spec = dict(value) if isinstance(value, Mapping) else {"type": default if value is None else value}
    name = spec.pop("type", default)
    if name not in registry:
        raise ValueError(f"cache: `{registry.axis}` must be one of {registry.names()}, got {name!r}")
    return registry.get(name), spec


def cache_from_params(params: Mapping[str, Any]) -> CacheConfig:
    """Build a `CacheConfig` from nested dicts (files) or flat keys (``cache:policy=gate,threshold=0.2``).

    Without ``policy``, a ``mask`` implies the step mask and ``threshold``/``max_consecutive`` the
    confidence gate; otherwise the interval policy. Without ``forecaster``, Taylor.

    Raises:
        ValueError: An unknown field or type name, or a value the config refuses.
        TypeError: A value of the wrong type.

    """
    params = dict(params)
    inferred = (
        "mask"
        if "mask" in params
        else "gate"
        if {"threshold", "max_consecutive"} & set(params)
        else "interval"
    )
    policy_cls, policy_kw = _pick(POLICIES, params.pop("policy", None), inferred)
    forecaster_cls, forecaster_kw = _pick(FORECASTERS, params.pop("forecaster", None), "taylor")
    top: dict[str, Any] = {}
    policy_fields = [f.name for f in dataclasses.fields(policy_cls)]
    forecaster_fields = [f.name for f in dataclasses.fields(forecaster_cls)]
    former = FORMER_FIELDS.get(policy_cls, {})
    for key, value in params.items():
        key = former.get(key, key)
        if key in _CACHE_TOP:
            top[key] = value
        elif key in policy_fields:
            policy_kw[key] = value
        elif key in forecaster_fields:
            forecaster_kw[key] = value
        else:
            known = [*_CACHE_TOP, "policy", "forecaster", *policy_fields, *forecaster_fields]
            raise ValueError(
                f"cache: unknown field {key!r} in `params`; fields: {known}, got {key}={value!r}"
            )
    _, policy = build(policy_cls, policy_cls.__name__, policy_kw)
    _, forecaster = build(forecaster_cls, forecaster_cls.__name__, forecaster_kw)
    return CacheConfig(policy=policy, forecaster=forecaster, **top)


def _fields(obj: object) -> dict[str, Any]:
    """Return the fields of a policy or forecaster as plain values (a mask as ``"CCFCF"``, lists)."""
    out = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        out[f.name] = "".join("C" if m else "F" for m in value) if f.name == "mask" else value
        if isinstance(out[f.name], tuple):
            out[f.name] = list(out[f.name])
    return out


def cache_params(config: CacheConfig) -> dict[str, Any]:
    """Every field of a `CacheConfig`, the policy and forecaster nested (so it reads back equal)."""
    return {
        "policy": {"type": POLICIES.name_of(config.policy), **_fields(config.policy)},
        "forecaster": {"type": FORECASTERS.name_of(config.forecaster), **_fields(config.forecaster)},
        **{key: getattr(config, key) for key in _CACHE_TOP},
    }
