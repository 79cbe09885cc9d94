import pytest

import forecache
from forecache import (
    AdamsBashforth,
    AdamsBashforthConfig,
    CacheConfig,
    ConfidenceGate,
    ConfidenceGateConfig,
    Interval,
    StepMask,
    Taylor,
    TaylorSeerConfig,
)
from forecache.configfile import resolve_config

INVALID = [
    (TaylorSeerConfig, {"interval": 0}, ValueError, ["interval", ">= 1", "0"]),
    (TaylorSeerConfig, {"interval": 2.5}, TypeError, ["interval", "int", "2.5"]),
    (TaylorSeerConfig, {"order": 9}, ValueError, ["order", "[0, 8]", "9"]),
    (TaylorSeerConfig, {"warmup": 0}, ValueError, ["warmup", ">= 1", "0"]),
    (TaylorSeerConfig, {"cooldown": -1}, ValueError, ["cooldown", ">= 0", "-1"]),
    (TaylorSeerConfig, {"target": "layers"}, ValueError, ["target", "'modules'", "'layers'"]),
    (TaylorSeerConfig, {"coordinate": "sigma"}, ValueError, ["coordinate", "'timestep'", "'sigma'"]),
    (TaylorSeerConfig, {"history_dtype": "int8"}, ValueError, ["history_dtype", "'bfloat16'", "'int8'"]),
    (AdamsBashforthConfig, {"order": 0}, ValueError, ["order", "[1, 8]", "0"]),
    (AdamsBashforthConfig, {"interval": True}, TypeError, ["interval", "int", "True"]),
    (ConfidenceGateConfig, {"threshold": 0.0}, ValueError, ["threshold", "(0.0, 10.0]", "0.0"]),
    (ConfidenceGateConfig, {"threshold": float("nan")}, ValueError, ["threshold", "nan"]),
    (ConfidenceGateConfig, {"threshold": "0.1"}, TypeError, ["threshold", "float", "'0.1'"]),
    (ConfidenceGateConfig, {"max_consecutive": 0}, ValueError, ["max_consecutive", ">= 1", "0"]),
    (ConfidenceGateConfig, {"probe_blocks": 0}, ValueError, ["probe_blocks", ">= 1", "0"]),
    (ConfidenceGateConfig, {"cooldown": 0}, ValueError, ["cooldown", ">= 1", "0"]),
    (Interval, {"every": 0}, ValueError, ["every", ">= 1", "0"]),
    (StepMask, {"mask": (False, True)}, ValueError, ["mask[0]", "True", "False"]),
    (StepMask, {"mask": (1, 0)}, TypeError, ["mask", "bools"]),
    (StepMask, {"mask": [True]}, TypeError, ["mask", "tuple", "list"]),
    (ConfidenceGate, {"threshold": -1.0}, ValueError, ["threshold", "-1.0"]),
    (Taylor, {"order": -1}, ValueError, ["order", "-1"]),
    (AdamsBashforth, {"coordinate": "index"}, ValueError, ["coordinate", "'index'"]),
    (CacheConfig, {"policy": "interval"}, TypeError, ["policy", "Interval", "'interval'"]),
    (CacheConfig, {"forecaster": Interval()}, TypeError, ["forecaster", "Taylor", "Interval"]),
    (CacheConfig, {"target": "all"}, ValueError, ["target", "'blocks'", "'all'"]),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "fragments"), INVALID)
def test_invalid_values_name_field_range_and_value(cls, kwargs, error, fragments):
    with pytest.raises(error) as info:
        cls(**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_configs_are_frozen():
    config = TaylorSeerConfig()
    with pytest.raises(AttributeError):
        config.interval = 3  # type: ignore[misc]


def test_presets_resolve_to_the_papers_axes():
    ts = resolve_config(TaylorSeerConfig())
    assert ts == CacheConfig(
        Interval(every=5, warmup=3, cooldown=1), Taylor(order=2, coordinate="step"), "modules"
    )
    ab = resolve_config(AdamsBashforthConfig())
    assert ab.forecaster == AdamsBashforth(order=2, coordinate="timestep") and ab.target == "output"
    cg = resolve_config(ConfidenceGateConfig(threshold=0.2))
    assert cg.policy == ConfidenceGate(threshold=0.2) and cg.target == "blocks"


def test_unknown_config_type_lists_the_known_ones():
    with pytest.raises(TypeError, match="TaylorSeerConfig"):
        resolve_config({"interval": 5})


def test_timeline_preset_resolves_to_a_shaped_schedule_on_the_blocks():
    config = resolve_config(forecache.TimelineConfig())
    assert config.policy == forecache.Shaped(ratio=5.0, shape=1.0, axis="noise", lead=1.5)
    assert config.forecaster == forecache.Damped((0.0, 1.0, 0.8)) and config.target == "blocks"
    message = r"TimelineConfig: `ratio` must be a float in \(1\.0, 50\.0\], got 0\.5"
    with pytest.raises(ValueError, match=message):
        forecache.TimelineConfig(ratio=0.5)
    with pytest.raises(ValueError, match=r"TimelineConfig: `target` must be one of \[.*\], got 'x'"):
        forecache.TimelineConfig(target="x")
