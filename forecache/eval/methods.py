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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import forecache
from forecache import configfile
from forecache.configfile import ALIASES, PRESETS, SCHEMA_VERSION, build_config, config_params
from forecache.eval.peers import PEERS, PeerRun

__all__ = [
    "BASELINE",
    "CONFIG_SCHEMA_VERSION",
    "PRESETS",
    "TUNED",
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
CONFIG_SCHEMA_VERSION = SCHEMA_VERSION
TUNED = "tuned"
"""forecache's tuner as a method: ``tuned:ratio=8`` runs `forecache.tune` for that compute ratio on
calibration samples of its own (other seeds than the benchmark's), then applies what it found."""
_TUNED_FIELDS = {"ratio": 4.0, "calibration": 4, "verify": 6}


@dataclass(frozen=True)
class MethodSpec:
    """One method to benchmark, validated.

    Attributes:
        name: Canonical method name: ``"baseline"``, a preset in `PRESETS`, ``"tuned"`` or a peer in
            `PEERS`.
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
    """All method names a spec may start with: the baseline, the presets, the tuner, then the peers."""
    return [BASELINE, *PRESETS, TUNED, *PEERS]


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
    canonical = ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    params = dict(params or {})
    if canonical not in method_names():
        raise ValueError(f"`method` must be one of {method_names()}, got {name!r}")
    config = None
    if canonical == BASELINE and params:
        raise ValueError(f"`baseline` takes no parameters, got {params}")
    if canonical in PRESETS:
        config = build_config(canonical, params)
    elif canonical == TUNED:
        params = _check_tuned({**_TUNED_FIELDS, **params})
    elif canonical in PEERS:
        PEERS[canonical].check_params(params)
    text = label or (canonical + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else ""))
    spec = MethodSpec(canonical, params, text, config)
    if config is not None:  # keep every field, so a spec written to a file reads back equal
        spec = dataclasses.replace(spec, params=config_params(config))
    return spec


def _check_tuned(params: dict[str, Any]) -> dict[str, Any]:
    """Validate the tuner method's fields: ``ratio`` > 1, ``calibration`` and ``verify`` ints >= 1."""
    for key, value in params.items():
        if key not in _TUNED_FIELDS:
            raise ValueError(
                f"tuned: unknown field {key!r} in `params`; fields: {list(_TUNED_FIELDS)}, "
                f"got {key}={value!r}"
            )
    ratio = params["ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1:
        raise ValueError(f"tuned: `ratio` must be a float > 1, got {ratio!r}")
    for key in ("calibration", "verify"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"tuned: `{key}` must be an int >= 1, got {value!r}")
    return {**params, "ratio": float(ratio)}


def method_to_dict(spec: MethodSpec) -> dict[str, Any]:
    """Return the config-file form of a method: every field of a preset (so it reads back equal)."""
    if spec.config is None:
        return {"label": spec.label, "method": spec.name, "params": dict(spec.params)}
    return {"label": spec.label, "method": spec.name, "params": config_params(spec.config)}


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
    if spec.name == TUNED:
        tuned = _tune(spec, cache_target, run)
        forecache.apply(cache_target, tuned, scheduler=scheduler)
        try:
            yield
        finally:
            forecache.remove(cache_target)
    elif spec.kind == "forecache":
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


def _tune(spec: MethodSpec, pipe: Any, run: PeerRun) -> Any:
    """Run `forecache.tune` for the method's ratio (once per ratio and benchmark: memoised in `run`)."""
    if run.calibration is None:
        raise ValueError(
            "tuned: this run has no calibration samples (a pipeline and its call arguments are needed)"
        )
    params = spec.params
    key = f"tuned:{params['ratio']:g}:{params['calibration']}:{params['verify']}"
    result = run.memo.get(key)
    if result is None:
        result = run.memo[key] = forecache.tune(
            pipe,
            run.calibration(params["calibration"]),
            ratio=params["ratio"],
            verify=params["verify"],
            seed=TUNE_SEED,
            progress=False,
        )
    chosen = result.chosen
    run.info["tuned"] = {
        "forecaster": repr(chosen.forecaster),
        "computed_steps": chosen.computed,
        "ratio": round(chosen.ratio, 3),
        "calibration_psnr_db": None if chosen.psnr_db is None else round(chosen.psnr_db, 2),
        "candidates_verified": sum(c.psnr_db is not None for c in result.candidates),
    }
    return result.config


TUNE_SEED = 100_000
"""The tuner's calibration samples are seeded from here: never the benchmark's own seeds."""
