"""Config files: forecache configs as JSON (or YAML) entries that every tool reads and writes.

One format for `forecache.apply(pipe, "config.json")`, ``forecache bench --config``, the notebook
and `forecache.tune` (which writes it)::

    {"schema_version": 1,
     "methods": [{"label": "tuned 8x", "method": "cache",
                  "params": {"policy": {"type": "timeline", "positions": [0.0, 0.24, ...], "steps": 50},
                             "forecaster": {"type": "taylor", "order": 1, "coordinate": "step"},
                             "target": "blocks", ...}}]}

An entry names a preset of the one table (`forecache.accel.presets`: ``taylorseer``, ``ab``,
``cg``, ``timeline``, any registered with `forecache.register_preset`) with its fields, or the
general ``cache`` form whose policy and forecaster name any registered class. Every field is
written, so a file reads back equal. YAML needs PyYAML (``pip install "forecache[yaml]"``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forecache._atomic import atomic_write_text
from forecache.accel.config import CacheConfig
from forecache.accel.params import cache_params
from forecache.accel.presets import PRESETS, canonical_name, preset_named

__all__ = [
    "SCHEMA_VERSION",
    "build_config",
    "check_params",
    "config_entry",
    "entry_parts",
    "load_config",
    "read_entries",
    "resolve_config",
    "save_config",
    "write_entries",
]

SCHEMA_VERSION = 1


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


def build_config(name: str, params: Mapping[str, Any]) -> CacheConfig:
    """Build the config of preset `name` (any name of `forecache.accel.presets.PRESETS`) from its fields.

    Raises:
        ValueError: Unknown preset or field, or a value the config refuses (naming the field).
        TypeError: A value of the wrong type (from the config's own checks).

    """
    preset = preset_named(name)
    check_params(params)
    return preset.build(params)[1]


def config_entry(config: CacheConfig, label: str | None = None) -> dict[str, Any]:
    """Return the config-file entry of a config: ``{"label", "method": "cache", "params"}``, every field."""
    return {"label": label or "cache", "method": "cache", "params": cache_params(config)}


def resolve_config(config: Any) -> CacheConfig:
    """Return the `CacheConfig` that `config` stands for.

    Args:
        config: A `CacheConfig` (what the presets, e.g. `TaylorSeerConfig(...)`, return), the name of
            a preset (`forecache.accel.presets.PRESETS`; its defaults), or the path of a config file.

    Raises:
        TypeError: For any other type, naming the accepted ones.
        ValueError: An invalid config file (naming the file, the entry and the field).

    """
    if isinstance(config, CacheConfig):
        return config
    if isinstance(config, str) and canonical_name(config) in PRESETS:
        return build_config(config, {})
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError(
        "`config` must be a CacheConfig (e.g. forecache.TaylorSeerConfig(...)), a preset name "
        f"({list(PRESETS)}) or a config file path, got {config!r} ({type(config).__name__})"
    )


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


def save_config(config: CacheConfig, path: str | os.PathLike[str], label: str | None = None) -> Path:
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


def load_config(path: str | os.PathLike[str]) -> CacheConfig:
    """Read the forecache config of a config file (its first entry naming a preset, ``cache`` included).

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
