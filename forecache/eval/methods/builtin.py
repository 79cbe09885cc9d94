"""forecache's own methods: the baseline (no cache), each preset of `forecache.configfile`, the tuner."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from forecache.configfile import PRESETS, build_config, config_params
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

__all__ = ["BASELINE", "TUNED", "TUNE_SEED", "Baseline", "Preset", "Tuned"]

BASELINE = "baseline"
TUNED = "tuned"
TUNE_SEED = 100_000
"""The tuner's calibration samples are seeded from here: never the benchmark's own seeds."""


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Baseline(Method):
    """Full compute: attaches nothing."""

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Refuse any parameter: the baseline takes none."""
        if params:
            raise ValueError(f"`baseline` takes no parameters, got {params}")
        return {}, None

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Attach nothing."""
        return _nothing


def _applied(cache_target: Any, config: Any, scheduler: Any) -> Detach:
    import forecache

    forecache.apply(cache_target, config, scheduler=scheduler)
    return lambda: forecache.remove(cache_target)


@dataclass(frozen=True)
class Preset(Method):
    """A preset of `forecache.configfile.PRESETS` with field overrides, validated by the config itself."""

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Build the config; keep every field, so a spec written to a file reads back equal."""
        config = build_config(self.name, params)
        return config_params(config), config

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """`forecache.apply` the built config."""
        return _applied(cache_target, spec.config, scheduler)


_TUNED_FIELDS = {"ratio": 4.0, "calibration": 4, "trials": 6}


@dataclass(frozen=True)
class Tuned(Method):
    """forecache's tuner as a method: ``tuned:ratio=8`` runs `forecache.tune` for that ratio, then applies it.

    The tuner calibrates on samples of its own (other seeds than the benchmark's).
    """

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Validate ``ratio`` > 1, ``calibration`` and ``trials`` ints >= 1 (defaults filled in).

        ``verify``, the former name of ``trials``, is still read (config files written before).
        """
        params = {**_TUNED_FIELDS, **{"trials" if key == "verify" else key: v for key, v in params.items()}}
        refuse_unknown("tuned", params, list(_TUNED_FIELDS))
        ratio = params["ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1:
            raise ValueError(f"tuned: `ratio` must be a float > 1, got {ratio!r}")
        for key in ("calibration", "trials"):
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"tuned: `{key}` must be an int >= 1, got {value!r}")
        return {**params, "ratio": float(ratio)}, None

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Tune for the spec's ratio (once per ratio and run), then `forecache.apply` the result."""
        return _applied(cache_target, _tune(spec, cache_target, run), scheduler)


def _tune(spec: MethodSpec, pipe: Any, run: MethodRun) -> Any:
    """Run `forecache.tune` for the method's ratio (once per ratio and benchmark: memoised in `run`)."""
    import forecache

    if run.calibration is None:
        raise ValueError(
            "tuned: this run has no calibration samples (a pipeline and its call arguments are needed)"
        )
    params = spec.params
    key = f"tuned:{params['ratio']:g}:{params['calibration']}:{params['trials']}"
    result = run.memo.get(key)
    if result is None:
        result = run.memo[key] = forecache.tune(
            pipe,
            run.calibration(params["calibration"]),
            ratio=params["ratio"],
            trials=params["trials"],
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


def _interval(config: Any, steps: int) -> Knob:
    return Knob("interval", values=tuple(range(1, max(steps, 2) + 1)))


def _threshold(config: Any, steps: int) -> Knob:
    return Knob("threshold", low=0.005, high=10.0, start=config.threshold)


def _ratio(config: Any, steps: int) -> Knob:
    return Knob("ratio", low=1.2, high=float(steps), start=config.ratio)


def _cache_knob(config: Any, steps: int) -> Knob:
    """Return the knob of the general ``cache`` method: its policy's interval or its gate's threshold."""
    fields = {f.name for f in dataclasses.fields(config.policy)}
    if "interval" in fields:
        return _interval(config, steps)
    if "threshold" in fields:
        return _threshold(config.policy, steps)
    raise ValueError(
        f"cache: `policy` {type(config.policy).__name__} has no knob to match (matching tunes an "
        "interval or a threshold); give the steps it computes, or drop --match"
    )


register_method(Baseline(BASELINE, "baseline", "full compute, no cache", Style("#252525", "x")))
_PRESET_METHODS = {
    "taylorseer": (
        "TaylorSeer: modules forecast by a Taylor series every N-th step",
        _interval,
        "#2171b5",
        "o",
    ),
    "ab": ("AB-Cache: Adams-Bashforth extrapolation on a fixed schedule", _interval, "#4292c6", "s"),
    "cg": ("CG-Taylor: a probe block's forecast error gates the rest", _threshold, "#6baed6", "D"),
    "timeline": ("a step mask on the normalised timeline for a target ratio", _ratio, "#08519c", "P"),
    "cache": ("the general policy x forecaster x target form", _cache_knob, "#3182bd", "X"),
}
for _name in PRESETS:
    _description, _knob, _colour, _marker = _PRESET_METHODS[_name]
    register_method(Preset(_name, "forecache", _description, Style(_colour, _marker), _knob))
register_method(
    Tuned(
        TUNED,
        "forecache",
        "forecache.tune for a compute ratio, calibrated on samples of other seeds",
        Style("#08306b", "*"),
        lambda config, steps: Knob("ratio", low=1.2, high=float(steps), start=4.0),
    )
)
