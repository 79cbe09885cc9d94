"""Method specs: parse ``name:key=value,...`` strings and config files into validated methods.

A spec names a registered `Method` (the baseline, a forecache preset such as ``taylorseer``, ``ab``,
``cg`` or the general ``cache`` form, the tuner, or a peer) with field overrides. Each method
validates its own fields when the spec is parsed (presets through the config dataclasses), so a bad
value fails before any model is loaded. Config files are JSON (or YAML when PyYAML is importable)::

    {"schema_version": 1,
     "methods": [{"label": "ts-fast", "method": "taylorseer", "params": {"interval": 6, "order": 2}},
                 {"method": "diffusers.fbcache", "params": {"threshold": 0.1}}]}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from forecache import configfile
from forecache.accel.presets import canonical_name
from forecache.configfile import SCHEMA_VERSION
from forecache.eval.methods.base import METHODS, MethodRun, MethodSpec

__all__ = [
    "CONFIG_SCHEMA_VERSION",
    "attached",
    "load_methods",
    "make_method",
    "method_names",
    "method_to_dict",
    "parse_method",
    "parse_value",
    "save_methods",
]

CONFIG_SCHEMA_VERSION = SCHEMA_VERSION


def method_names() -> list[str]:
    """All method names a spec may start with, in registration order (baseline, forecache's, peers)."""
    return list(METHODS)


def parse_value(text: str) -> Any:
    """Parse one override value: int, float, ``true``/``false``, ``none``, else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip()


def parse_method(text: str) -> MethodSpec:
    """Parse ``name`` or ``name:key=value,key=value`` (e.g. ``taylorseer:interval=5,order=2``).

    Raises:
        ValueError: Unknown method, malformed override, unknown field, or a value the config refuses;
            the message names the field, the allowed values and the value given.

    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"a `method` spec must be a non-empty string like 'taylorseer:interval=5', got {text!r}"
        )
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"`method` {name!r}: overrides must be key=value after the ':', got {item!r} in {text!r}"
            )
        params[key.strip()] = parse_value(value)
    return make_method(name.strip(), params, label=text.strip())


def make_method(name: str, params: Mapping[str, Any] | None = None, label: str | None = None) -> MethodSpec:
    """Build a validated `MethodSpec` from a name and overrides.

    Raises:
        ValueError: Unknown method or field, or a value the config refuses.
        TypeError: A value of the wrong type (from the config's own checks).

    """
    if not isinstance(name, str):
        raise TypeError(f"`method` must be a string, one of {method_names()}, got {name!r}")
    canonical = canonical_name(name)
    params = dict(params or {})
    if canonical not in METHODS:
        raise ValueError(f"`method` must be one of {method_names()}, got {name!r}")
    kept, config = METHODS[canonical].build(params)
    shown = params if config is not None else kept  # a preset's label shows the fields given
    text = label or (canonical + (":" + ",".join(f"{k}={v}" for k, v in shown.items()) if shown else ""))
    return MethodSpec(canonical, kept, text, config)


def method_to_dict(spec: MethodSpec) -> dict[str, Any]:
    """Return the config-file form of a method: every field of a preset (so it reads back equal)."""
    return {"label": spec.label, "method": spec.name, "params": dict(spec.params)}


def save_methods(specs: Sequence[MethodSpec], path: str | Path) -> Path:
    """Write methods as a config file (JSON, or YAML for ``.yaml``/``.yml``), atomically.

    Returns:
        The path written.

    """
    return configfile.write_entries([method_to_dict(s) for s in specs], path)


def load_methods(path: str | Path) -> list[MethodSpec]:
    """Read a config file written by `save_methods` or `forecache.tune` (or by hand) into methods.

    Accepts ``{"methods": [...]}``, a bare list of method entries, or one entry
    ``{"method": ..., "params": {...}}``. An entry may also be a spec string.

    Raises:
        ValueError: Unreadable file, unknown schema version, or an invalid method (the message
            names the file, the entry and the field).

    """
    specs = []
    for index, entry in enumerate(configfile.read_entries(path)):
        try:
            if isinstance(entry, str):
                specs.append(parse_method(entry))
            else:
                specs.append(make_method(*configfile.entry_parts(entry)))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path}: methods[{index}]: {err}") from err
    return specs


@contextlib.contextmanager
def attached(
    spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any = None
) -> Iterator[None]:
    """Apply one method for the duration of a ``with`` block and remove it after, even on error.

    Args:
        spec: The method; a baseline attaches nothing.
        cache_target: What `forecache.apply` receives (a pipeline or a transformer).
        peer_target: What a peer's `attach` receives (an object with a `transformer`).
        run: The method's run; its `info` is filled by the method.
        scheduler: The scheduler of a loop that calls a bare transformer (`forecache.apply`'s
            `scheduler`); None for a pipeline.

    """
    detach = spec.method.attach(spec, cache_target, peer_target, run, scheduler)
    try:
        yield
    finally:
        detach()
