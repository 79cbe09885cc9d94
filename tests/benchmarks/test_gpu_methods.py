"""Tests of the GPU plan's method specs: ``fixed-timeline`` is a `Timeline` with TimelineConfig's steps."""

from __future__ import annotations

import pytest

from benchmarks.gpu import methods
from forecache import CacheConfig, Taylor, Timeline, TimelineConfig


def test_a_fixed_timeline_is_the_timeline_policy_tune_writes_with_timeline_configs_steps():
    spec = methods.resolve("fixed-timeline:ratio=10", 28)
    assert spec.label == "fixed-timeline:ratio=10" and spec.kind == "forecache"
    assert spec.config == CacheConfig(
        policy=Timeline((0.0, 16 / 27, 1.0), 28), forecaster=Taylor(order=2), target="blocks"
    )
    shaped = TimelineConfig(ratio=10.0, shape=1.3, order=2, axis="step", lead=1).policy
    for steps in (28, 50):
        timeline = methods.resolve("fixed-timeline:ratio=10", steps).config.policy
        assert [timeline.decide(s, steps, 0) for s in range(steps)] == [
            shaped.decide(s, steps, 0) for s in range(steps)
        ]
    assert methods.resolve("fixed-timeline:ratio=8,target=modules", 50).config.target == "modules"
    assert methods.resolve("taylorseer:target=blocks", 28).config.target == "blocks"  # the harness's own
    with pytest.raises(ValueError, match="ratoi"):
        methods.resolve("fixed-timeline:ratoi=8", 28)
    with pytest.raises(ValueError, match="ratio"):
        methods.resolve("fixed-timeline:ratio=0.5", 28)
    with pytest.raises(ValueError, match="steps"):
        methods.resolve("fixed-timeline:ratio=8", 1)
