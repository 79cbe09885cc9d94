"""forecache's own methods: the baseline (no cache), every preset of the one table, the tuner.

Each preset of `forecache.accel.presets` is a method under its name, registered here for the
presets in the table when this module is imported and for any registered later
(`forecache.register_preset`) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forecache.accel.presets import PRESETS, Knob, compute_ratio_knob, on_register
from forecache.accel.presets import Preset as TablePreset
from forecache.calibrate.tuner import tune, tune_defaults
from forecache.eval.methods.base import (
    METHODS,
    Detach,
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
    """A preset of the one table (`forecache.accel.presets.PRESETS`) with field overrides.

    Attributes:
        preset: The table's entry (its function, fields and knob).

    """

    preset: TablePreset | None = None

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Build the config; keep every field, so a spec written to a file reads back equal."""
        assert self.preset is not None
        return self.preset.build(params)

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """`forecache.apply` the built config."""
        return _applied(cache_target, spec.config, scheduler)


_TUNER_DEFAULTS = ("trials", "partial", "refine", "damp")
_TUNED_FIELDS = {
    "ratio": 4.0,
    "calibration": 4,
    **{name: value for name, value in tune_defaults().items() if name in _TUNER_DEFAULTS},
}
"""The tuned method's fields and defaults: those it passes on to `forecache.tune` default to the tuner's
own, so ``tuned:ratio=R`` in a benchmark is what ``forecache.tune(..., ratio=R)`` returns."""


@dataclass(frozen=True)
class Tuned(Method):
    """forecache's tuner as a method: ``tuned:ratio=8`` runs `forecache.tune` for that ratio, then applies it.

    The tuner calibrates on samples of its own (other seeds than the benchmark's).
    """

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Validate the fields: ``ratio`` > 1; ``calibration``, ``trials`` ints >= 1; ``refine`` >= 0.

        ``partial`` and ``damp`` are bools. Missing fields get their defaults.

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
        for key in ("partial", "damp"):
            if not isinstance(params[key], bool):
                raise ValueError(f"tuned: `{key}` must be true or false, got {params[key]!r}")
        refine = params["refine"]
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise ValueError(f"tuned: `refine` must be an int >= 0, got {refine!r}")
        return {**params, "ratio": float(ratio)}, None

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Tune for the spec's ratio (once per ratio and run), then `forecache.apply` the result."""
        return _applied(cache_target, _tune(spec, cache_target, run), scheduler)


def _tune(spec: MethodSpec, pipe: Any, run: MethodRun) -> Any:
    """Run `forecache.tune` for the method's ratio (once per ratio and benchmark: memoised in `run`)."""
    if run.calibration is None:
        raise ValueError(
            "tuned: this run has no calibration samples (a pipeline and its call arguments are needed)"
        )
    params = spec.params
    key = "tuned:" + ":".join(str(params[name]) for name in _TUNED_FIELDS)
    result = run.memo.get(key)
    if result is None:
        result = run.memo[key] = tune(
            pipe,
            run.calibration(params["calibration"]),
            ratio=params["ratio"],
            trials=params["trials"],
            partial=params["partial"],
            refine=params["refine"],
            damp=params["damp"],
            seed=TUNE_SEED,
            progress=False,
        )
    chosen = result.chosen
    run.info["tuned"] = {
        "forecaster": repr(chosen.forecaster),
        "computed_steps": chosen.computed,
        "partial_steps": chosen.partial,
        "partial_blocks": list(chosen.span),
        "ratio": round(chosen.ratio, 3),
        "calibration_psnr_db": None if chosen.psnr_db is None else round(chosen.psnr_db, 2),
        "candidates_verified": sum(c.psnr_db is not None for c in result.candidates),
    }
    return result.config


register_method(Baseline(BASELINE, "baseline", "full compute, no cache", Style("#252525", "x")))
_STYLES = {
    "taylorseer": Style("#2171b5", "o"),
    "ab": Style("#4292c6", "s"),
    "cg": Style("#6baed6", "D"),
    "timeline": Style("#08519c", "P"),
    "cache": Style("#3182bd", "X"),
}
"""forecache's presets in blues; one registered later gets the first blue and marker not yet taken."""
_BLUES = ("#08519c", "#2171b5", "#3182bd", "#4292c6", "#6baed6", "#9ecae1")
_MARKERS = ("o", "s", "D", "P", "X", "p", "h", "8", "d", "H")


def _style(name: str) -> Style:
    taken = {(m.style.colour, m.style.marker) for m in METHODS.values()}
    free = (Style(c, m) for m in _MARKERS for c in _BLUES if (c, m) not in taken)
    return _STYLES.get(name) or next(free)


def _register_preset(preset: TablePreset) -> None:
    """Make a preset of the table a method (a preset registered again under its name replaces it)."""
    known = METHODS.get(preset.name)
    if isinstance(known, Preset) and known.preset is preset:
        return
    if isinstance(known, Preset):
        del METHODS[preset.name]
    style = _style(preset.name)
    register_method(Preset(preset.name, "forecache", preset.description, style, preset.knob, preset=preset))


for _preset in list(PRESETS.values()):  # forecache's own presets, then the tuner, then any other
    if _preset.function.__module__ == Knob.__module__:
        _register_preset(_preset)
register_method(
    Tuned(
        TUNED,
        "forecache",
        "forecache.tune for a compute ratio, calibrated on samples of other seeds",
        Style("#08306b", "*"),
        lambda config, steps: compute_ratio_knob(_TUNED_FIELDS["ratio"], steps),
    )
)
on_register(_register_preset)
