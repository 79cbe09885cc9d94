"""Method specs: parse ``name:key=value,...`` strings and config files into validated methods.

A method is the baseline (no cache), a forecache preset (``taylorseer``, ``ab``, ``cg``, or the
general ``cache`` form) with field overrides, or a peer (see `forecache.eval.peers`). Presets are
validated when parsed, by the config dataclasses themselves, so a bad value fails before any model
is loaded. Config files are JSON (or YAML when PyYAML is importable)::

    {"schema_version": 1,
     "methods": [{"label": "ts-fast", "method": "taylorseer", "params": {"interval": 6, "order": 2}},
                 {"method": "diffusers.fbcache", "params": {"threshold": 0.1}}]}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import forecache
from forecache.accel.forecasters import FORECASTERS
from forecache.accel.policies import POLICIES
from forecache.accel.registry import Registry
from forecache.eval.files import atomic_write_text
from forecache.eval.peers import PEERS, PeerRun

__all__ = [
    "BASELINE",
    "CONFIG_SCHEMA_VERSION",
    "PRESETS",
    "MethodSpec",
    "load_methods",
    "make_method",
    "method_names",
    "method_to_dict",
    "parse_method",
    "parse_value",
    "save_methods",
]

BASELINE = "baseline"
CONFIG_SCHEMA_VERSION = 1
PRESETS: dict[str, type] = {
    "taylorseer": forecache.TaylorSeerConfig,
    "ab": forecache.AdamsBashforthConfig,
    "cg": forecache.ConfidenceGateConfig,
    "cache": forecache.CacheConfig,
}
_ALIASES = {"adams-bashforth": "ab", "ab-cache": "ab", "confidence-gate": "cg", "cg-taylor": "cg"}
_CACHE_TOP = ("target", "history_dtype", "fallback_margin", "fallback")


@dataclass(frozen=True)
class MethodSpec:
    """One method to benchmark, validated.

    Attributes:
        name: Canonical method name: ``"baseline"``, a preset in `PRESETS` or a peer in `PEERS`.
        params: Presets: every field of the built config (nested for ``cache``); peers: the
            overrides given.
        label: The row name in reports (the spec text unless a config file names it).
        config: The built forecache config for presets; None for the baseline and peers.

    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    config: Any = None

    @property
    def kind(self) -> str:
        """``"baseline"``, ``"forecache"`` or ``"peer"``."""
        if self.name == BASELINE:
            return "baseline"
        return "peer" if self.name in PEERS else "forecache"


def method_names() -> list[str]:
    """All method names a spec may start with: the baseline, the presets, then the peers."""
    return [BASELINE, *PRESETS, *PEERS]


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
            f"a method spec must be a non-empty string like 'taylorseer:interval=5', got {text!r}"
        )
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"method {name!r}: overrides must be key=value, got {item!r} in {text!r}")
        params[key.strip()] = parse_value(value)
    return make_method(name.strip(), params, label=text.strip())


def make_method(name: str, params: Mapping[str, Any] | None = None, label: str | None = None) -> MethodSpec:
    """Build a validated `MethodSpec` from a name and overrides.

    Raises:
        ValueError: Unknown method or field, or a value the config refuses.
        TypeError: A value of the wrong type (from the config's own checks).

    """
    canonical = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    params = dict(params or {})
    if canonical not in method_names():
        raise ValueError(f"`method` must be one of {method_names()}, got {name!r}")
    config = None
    if canonical == BASELINE and params:
        raise ValueError(f"`baseline` takes no parameters, got {params}")
    if canonical in PRESETS:
        config = (
            _build_cache(params) if canonical == "cache" else _build(PRESETS[canonical], canonical, params)
        )
    elif canonical in PEERS:
        PEERS[canonical].check_params(params)
    text = label or (canonical + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else ""))
    spec = MethodSpec(canonical, params, text, config)
    if config is not None:  # keep every field, so a spec written to a file reads back equal
        spec = dataclasses.replace(spec, params=method_to_dict(spec)["params"])
    return spec


def _check_fields(cls: type, owner: str, params: Mapping[str, Any]) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in params.items():
        if key not in known:
            raise ValueError(f"{owner}: unknown field `{key}` (given {key}={value!r}); fields: {known}")


def _coerce(cls: type, key: str, value: Any) -> Any:
    """Turn ints into floats for float fields, and C/F or 1/0 strings into a step mask."""
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
    if key == "mask" and isinstance(value, list):
        return tuple(value)
    return value


def _build(cls: type, owner: str, params: Mapping[str, Any]) -> Any:
    _check_fields(cls, owner, params)
    return cls(**{k: _coerce(cls, k, v) for k, v in params.items()})


def _pick(registry: Registry[type], value: Any, default: str) -> tuple[type, dict[str, Any]]:
    """Resolve a nested ``{"type": name, ...}`` dict or a bare name to (registered class, fields)."""
    spec = dict(value) if isinstance(value, Mapping) else {"type": default if value is None else value}
    name = spec.pop("type", default)
    if name not in registry:
        raise ValueError(f"cache: `{registry.axis}` must be one of {registry.names()}, got {name!r}")
    return registry.get(name), spec


def _build_cache(params: Mapping[str, Any]) -> Any:
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
    for key, value in params.items():
        if key in _CACHE_TOP:
            top[key] = value
        elif key in policy_fields:
            policy_kw[key] = value
        elif key in forecaster_fields:
            forecaster_kw[key] = value
        else:
            known = [*_CACHE_TOP, "policy", "forecaster", *policy_fields, *forecaster_fields]
            raise ValueError(f"cache: unknown field `{key}` (given {key}={value!r}); fields: {known}")
    policy = _build(policy_cls, policy_cls.__name__, policy_kw)
    forecaster = _build(forecaster_cls, forecaster_cls.__name__, forecaster_kw)
    return forecache.CacheConfig(policy=policy, forecaster=forecaster, **top)


def _fields(obj: object) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        out[f.name] = "".join("C" if m else "F" for m in value) if f.name == "mask" else value
    return out


def method_to_dict(spec: MethodSpec) -> dict[str, Any]:
    """Return the config-file form of a method: every field of a preset (so it reads back equal)."""
    if spec.kind != "forecache":
        return {"label": spec.label, "method": spec.name, "params": dict(spec.params)}
    config = spec.config
    if spec.name == "cache":
        params: dict[str, Any] = {
            "policy": {"type": POLICIES.name_of(config.policy), **_fields(config.policy)},
            "forecaster": {"type": FORECASTERS.name_of(config.forecaster), **_fields(config.forecaster)},
            **{key: getattr(config, key) for key in _CACHE_TOP},
        }
    else:
        params = _fields(config)
    return {"label": spec.label, "method": spec.name, "params": params}


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as err:
        raise ImportError("YAML config files need PyYAML: pip install pyyaml (or use a .json file)") from err
    return yaml


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def save_methods(specs: Sequence[MethodSpec], path: str | Path) -> Path:
    """Write methods as a config file (JSON, or YAML for ``.yaml``/``.yml``), atomically.

    Returns:
        The path written.

    """
    path = Path(path)
    doc = {"schema_version": CONFIG_SCHEMA_VERSION, "methods": [method_to_dict(s) for s in specs]}
    text = _yaml().safe_dump(doc, sort_keys=False) if _is_yaml(path) else json.dumps(doc, indent=2) + "\n"
    return atomic_write_text(path, text)


def load_methods(path: str | Path) -> list[MethodSpec]:
    """Read a config file written by `save_methods` (or by hand) into validated methods.

    Accepts ``{"methods": [...]}``, a bare list of method entries, or one entry
    ``{"method": ..., "params": {...}}``. An entry may also be a spec string.

    Raises:
        ValueError: Unreadable file, unknown schema version, or an invalid method (the message
            names the file, the entry and the field).

    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"`config`: cannot read {str(path)!r}: {err}") from err
    kind = "YAML" if _is_yaml(path) else "JSON"
    errors: tuple[type[Exception], ...] = (ValueError, _yaml().YAMLError) if _is_yaml(path) else (ValueError,)
    try:
        doc = _yaml().safe_load(text) if _is_yaml(path) else json.loads(text)
    except errors as err:
        raise ValueError(f"`config`: {str(path)!r} is not valid {kind}: {err}") from err
    if isinstance(doc, Mapping) and "methods" in doc:
        version = doc.get("schema_version", CONFIG_SCHEMA_VERSION)
        if version != CONFIG_SCHEMA_VERSION:
            raise ValueError(
                f"`schema_version` of {str(path)!r} must be {CONFIG_SCHEMA_VERSION}, got {version!r}"
            )
        entries = doc["methods"]
    else:
        entries = doc if isinstance(doc, list) else [doc]
    specs = []
    for index, entry in enumerate(entries):
        try:
            if isinstance(entry, str):
                specs.append(parse_method(entry))
            elif isinstance(entry, Mapping) and "method" in entry:
                specs.append(make_method(entry["method"], entry.get("params") or {}, entry.get("label")))
            else:
                raise ValueError(
                    f"an entry must be a spec string or {{'method': ..., 'params': ...}}, got {entry!r}"
                )
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path}: methods[{index}]: {err}") from err
    return specs


@contextlib.contextmanager
def attached(
    spec: MethodSpec, cache_target: Any, peer_target: Any, run: PeerRun, scheduler: Any = None
) -> Iterator[None]:
    """Apply one method for the duration of a ``with`` block and remove it after, even on error.

    Args:
        spec: The method; a baseline attaches nothing.
        cache_target: What `forecache.apply` receives (a pipeline or a transformer).
        peer_target: What a peer's `attach` receives (an object with a `transformer`).
        run: The peer's calibration run; its `info` is filled by the peer.
        scheduler: The scheduler of a loop that calls a bare transformer (`forecache.apply`'s
            `scheduler`); None for a pipeline.

    """
    if spec.kind == "forecache":
        forecache.apply(cache_target, spec.config, scheduler=scheduler)
        try:
            yield
        finally:
            forecache.remove(cache_target)
    elif spec.kind == "peer":
        peer = PEERS[spec.name]
        detach = peer.attach(peer_target, {**peer.defaults, **spec.params}, run)
        try:
            yield
        finally:
            detach()
    else:
        yield
