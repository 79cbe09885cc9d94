"""Config files: forecache configs as JSON (or YAML) entries that every tool reads and writes.

One format for `forecache.apply(pipe, "config.json")`, ``forecache bench --config``, the notebook
and `forecache.tune` (which writes it)::

    {"schema_version": 1,
     "methods": [{"label": "tuned 8x", "method": "cache",
                  "params": {"policy": {"type": "timeline", "positions": [0.0, 0.24, ...], "steps": 50},
                             "forecaster": {"type": "taylor", "order": 1, "coordinate": "step"},
                             "target": "blocks", ...}}]}

An entry names a preset (``taylorseer``, ``ab``, ``cg``) with its fields, or the general
``cache`` form whose policy and forecaster name any registered class. Every field is written, so
a file reads back equal. YAML needs PyYAML (``pip install "forecache[yaml]"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forecache._atomic import atomic_write_text
from forecache.accel.config import (
    AdamsBashforthConfig,
    CacheConfig,
    ConfidenceGateConfig,
    TaylorSeerConfig,
    TimelineConfig,
)
from forecache.accel.forecasters import FORECASTERS
from forecache.accel.policies import POLICIES, Verify
from forecache.accel.registry import Registry

__all__ = [
    "ALIASES",
    "FORMER_FIELDS",
    "PRESETS",
    "SCHEMA_VERSION",
    "build_config",
    "check_params",
    "config_entry",
    "config_name",
    "entry_parts",
    "load_config",
    "read_entries",
    "save_config",
]

SCHEMA_VERSION = 1
PRESETS: dict[str, type] = {
    "taylorseer": TaylorSeerConfig,
    "ab": AdamsBashforthConfig,
    "cg": ConfidenceGateConfig,
    "timeline": TimelineConfig,
    "cache": CacheConfig,
}
ALIASES = {"adams-bashforth": "ab", "ab-cache": "ab", "confidence-gate": "cg", "cg-taylor": "cg"}
FORMER_FIELDS: dict[type, dict[str, str]] = {Verify: {"max_run": "max_consecutive"}}
"""Fields renamed since files were first written: class -> former name -> name (files still load)."""
_CACHE_TOP = ("target", "history_dtype", "fallback_margin", "fallback")


def _check_fields(cls: type, owner: str, params: Mapping[str, Any]) -> None:
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key, value in params.items():
        if key not in known:
            raise ValueError(
                f"{owner}: unknown field {key!r} in `params`; fields: {known}, got {key}={value!r}"
            )
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and required and f.name not in params:
            raise ValueError(
                f"{owner}: field `{f.name}` is required, got only {sorted(params)} (fields: {known})"
            )


def _coerce(cls: type, key: str, value: Any) -> Any:
    """Turn ints into floats for float fields, lists into tuples, and C/F or 1/0 strings into a step mask."""
    default = {f.name: f.default for f in dataclasses.fields(cls)}.get(key)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key == "mask" and isinstance(value, (str, int)):
        text = str(value).upper()
        if set(text) - set("CF10"):
            raise ValueError(
                f"{cls.__name__}: `mask` must be a string of C/F (or 1/0) per step, got {value!r}"
            )
        return tuple(ch in "C1" for ch in text)
    if isinstance(value, list):  # JSON and YAML have no tuples
        return tuple(value)
    return value


def _current(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with the former names of `cls`'s fields (`FORMER_FIELDS`) replaced by the current ones."""
    former = FORMER_FIELDS.get(cls, {})
    return {former.get(key, key): value for key, value in params.items()}


def _build(cls: type, owner: str, params: Mapping[str, Any]) -> Any:
    params = _current(cls, params)
    _check_fields(cls, owner, params)
    return cls(**{k: _coerce(cls, k, v) for k, v in params.items()})


def _pick(registry: Registry[type], value: Any, default: str) -> tuple[type, dict[str, Any]]:
    """Resolve a nested ``{"type": name, ...}`` dict or a bare name to (registered class, fields)."""
    spec = dict(value) if isinstance(value, Mapping) else {"type": default if value is None else value}
    name = spec.pop("type", default)
    if name not in registry:
        raise ValueError(f"cache: `{registry.axis}` must be one of {registry.names()}, got {name!r}")
    return registry.get(name), spec


def _build_cache(params: Mapping[str, Any]) -> CacheConfig:
    """Build a `CacheConfig` from nested dicts (files) or flat keys (``cache:policy=gate,threshold=0.2``).

    Without ``policy``, a ``mask`` implies the step mask and ``threshold``/``max_consecutive`` the
    confidence gate; otherwise the interval policy. Without ``forecaster``, Taylor.
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
    for key, value in _current(policy_cls, params).items():
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
    policy = _build(policy_cls, policy_cls.__name__, policy_kw)
    forecaster = _build(forecaster_cls, forecaster_cls.__name__, forecaster_kw)
    return CacheConfig(policy=policy, forecaster=forecaster, **top)


def check_params(params: Any) -> None:
    """Refuse `params` that are not a mapping of field names (strings) to values.

    Raises:
        TypeError: Naming `params` and the value given.

    """
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"`params` must be a mapping of field names to values, got {params!r}")


def entry_parts(entry: Any) -> tuple[Any, Mapping[str, Any], str | None]:
    """Return the ``(method, params, label)`` of a config-file entry, checked.

    Raises:
        ValueError: If the entry is not a mapping with a `method`.
        TypeError: If `params` is not a mapping or `label` not a non-empty string.

    """
    if not isinstance(entry, Mapping) or "method" not in entry:
        raise ValueError(
            "an entry must be a spec string or a mapping with `method` (and optional `params`, "
            f"`label`), got {entry!r}"
        )
    params = entry.get("params")
    params = {} if params is None else params
    check_params(params)
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise TypeError(f"`label` must be a non-empty string, got {label!r}")
    return entry["method"], params, label


def canonical_name(name: str) -> str:
    """Return the preset name `name` stands for (aliases resolved, case ignored); unchanged if unknown."""
    return ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name


def build_config(name: str, params: Mapping[str, Any]) -> Any:
    """Build and validate the config of preset `name` (or ``"cache"``) from its fields.

    Raises:
        ValueError: Unknown preset or field, or a value the config refuses (naming the field).
        TypeError: A value of the wrong type (from the config's own checks).

    """
    canonical = canonical_name(name)
    if canonical not in PRESETS:
        raise ValueError(f"`method` must be one of {list(PRESETS)}, got {name!r}")
    check_params(params)
    if canonical == "cache":
        return _build_cache(params)
    return _build(PRESETS[canonical], canonical, params)


def _fields(obj: object) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        out[f.name] = "".join("C" if m else "F" for m in value) if f.name == "mask" else value
        if isinstance(out[f.name], tuple):
            out[f.name] = list(out[f.name])
    return out


def config_name(config: object) -> str:
    """Return the preset name of a config object (``"cache"`` for a `CacheConfig`).

    Raises:
        TypeError: If the config's type is not one of `PRESETS`.

    """
    for name, cls in PRESETS.items():
        if type(config) is cls:
            return name
    raise TypeError(
        f"`config` must be one of {[c.__name__ for c in PRESETS.values()]}, got {type(config).__name__}"
    )


def config_params(config: object) -> dict[str, Any]:
    """Every field of a config, nested for the general form (so it reads back equal)."""
    if isinstance(config, CacheConfig):
        return {
            "policy": {"type": POLICIES.name_of(config.policy), **_fields(config.policy)},
            "forecaster": {"type": FORECASTERS.name_of(config.forecaster), **_fields(config.forecaster)},
            **{key: getattr(config, key) for key in _CACHE_TOP},
        }
    return _fields(config)


def config_entry(config: object, label: str | None = None) -> dict[str, Any]:
    """Return the config-file entry of a config: ``{"label", "method", "params"}``."""
    name = config_name(config)
    return {"label": label or name, "method": name, "params": config_params(config)}


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as err:
        raise ImportError(
            "YAML config files need PyYAML: pip install 'forecache[yaml]' (or use .json)"
        ) from err
    return yaml


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def write_entries(entries: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write entries as a config file (JSON, or YAML for ``.yaml``/``.yml``), atomically."""
    target = Path(path)
    doc = {"schema_version": SCHEMA_VERSION, "methods": entries}
    text = _yaml().safe_dump(doc, sort_keys=False) if _is_yaml(target) else json.dumps(doc, indent=2) + "\n"
    return atomic_write_text(target, text)


def save_config(config: object, path: str | os.PathLike[str], label: str | None = None) -> Path:
    """Write one config as a config file (readable by `load_config`, `apply` and ``bench --config``).

    Returns:
        The path written.

    """
    return write_entries([config_entry(config, label)], path)


def read_entries(path: str | os.PathLike[str]) -> list[Any]:
    """Read a config file's entries: ``{"methods": [...]}``, a bare list, or one entry.

    Raises:
        ValueError: Unreadable file, invalid JSON/YAML, or an unknown schema version.

    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"`config`: cannot read {str(source)!r}: {err}") from err
    kind = "YAML" if _is_yaml(source) else "JSON"
    errors: tuple[type[Exception], ...] = (
        (ValueError, _yaml().YAMLError) if _is_yaml(source) else (ValueError,)
    )
    try:
        doc = _yaml().safe_load(text) if _is_yaml(source) else json.loads(text)
    except errors as err:
        raise ValueError(f"`config`: {str(source)!r} is not valid {kind}: {err}") from err
    if isinstance(doc, Mapping) and "methods" in doc:
        version = doc.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ValueError(f"`schema_version` of {str(source)!r} must be {SCHEMA_VERSION}, got {version!r}")
        methods = doc["methods"]
        if not isinstance(methods, list):
            raise TypeError(f"`methods` of {str(source)!r} must be a list of entries, got {methods!r}")
        return list(methods)
    return list(doc) if isinstance(doc, list) else [doc]


def load_config(path: str | os.PathLike[str]) -> Any:
    """Read the forecache config of a config file (its first preset or ``cache`` entry).

    Raises:
        ValueError: No such entry, or an invalid one (naming the file, the entry and the field).

    """
    entries = read_entries(path)
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping) and canonical_name(str(entry.get("method", ""))) in PRESETS:
            try:
                method, params, _ = entry_parts(entry)
                return build_config(method, params)
            except (ValueError, TypeError) as err:
                raise type(err)(f"{path}: methods[{index}]: {err}") from err
    found = [entry.get("method") if isinstance(entry, Mapping) else entry for entry in entries]
    raise ValueError(
        f"`config`: {str(path)!r} must hold an entry whose `method` is one of {list(PRESETS)}, "
        f"got methods {found!r}"
    )
