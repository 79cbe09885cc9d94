"""Property-based tests over the config space and step schedules (hypothesis)."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forecache
from forecache import AdamsBashforth, CacheConfig, ConfidenceGate, Interval, Reuse, StepMask, Taylor
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.policies import Decision
from forecache.layouts import registry


class CountingLinear(torch.nn.Linear):
    """Counts its real executions (a forecast replaces the call, so it is not counted)."""

    calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class SmoothBlock(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.inner = CountingLinear(6, 6)

    def forward(self, hidden_states, t):
        return hidden_states + 0.3 * torch.tanh(self.inner(hidden_states)) * math.cos(t / 400.0)


class SmoothModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([SmoothBlock(i) for i in range(3)])

    def forward(self, hidden_states, timestep, return_dict=False):
        t = float(timestep)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, t)
        return (hidden_states,)


@pytest.fixture(scope="module", autouse=True)
def smooth_layout():
    forecache.register_layout(
        "SmoothModel", ModelLayout((BlockListLayout("transformer_blocks", None, None, ("inner",)),))
    )
    yield
    registry._REGISTRY.pop("SmoothModel")


coordinates = st.sampled_from(["step", "timestep"])
forecasters = st.one_of(
    st.just(Reuse()),
    st.builds(Taylor, order=st.integers(0, 3), coordinate=coordinates),
    st.builds(AdamsBashforth, order=st.integers(1, 4), coordinate=coordinates),
)
policies = st.one_of(
    st.builds(Interval, every=st.integers(1, 8), warmup=st.integers(1, 5), cooldown=st.integers(0, 3)),
    st.lists(st.booleans(), min_size=1, max_size=30).map(lambda m: StepMask(tuple([True, *m]))),
    st.builds(
        ConfidenceGate,
        threshold=st.floats(0.001, 5.0),
        max_consecutive=st.integers(1, 6),
        warmup=st.integers(1, 4),
        cooldown=st.integers(1, 3),
        probe_blocks=st.integers(1, 2),
    ),
)
configs = st.builds(
    CacheConfig,
    policy=policies,
    forecaster=forecasters,
    target=st.sampled_from(["modules", "blocks", "output"]),
    history_dtype=st.sampled_from(["auto", "float32", "bfloat16"]),
    fallback=st.sampled_from(["reuse", "recompute"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs, steps=st.integers(1, 30))
def test_any_valid_config_gives_finite_output_and_the_expected_executions(config, steps):
    model = SmoothModel()
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(0))
    timesteps = [1000.0 * (1 - i / steps) ** 2 for i in range(steps)]  # non-uniform grid
    with forecache.cached(model, config, num_inference_steps=steps):
        outputs = [model(x, torch.tensor(t))[0] for t in timesteps]
        stats = forecache.stats(model)
    assert all(torch.isfinite(o).all() for o in outputs)
    ctx = stats.contexts["branch0"]
    decisions = "".join(ctx.decisions)
    assert len(decisions) == steps and decisions[0] == "C"
    probes = config.policy.probe_blocks
    computed = decisions.count("C")
    calls = [b.inner.calls for b in model.transformer_blocks]
    # probe blocks run at every step, and again when a refused forecast step is recomputed
    recomputed = ctx.fallbacks if config.fallback == "recompute" else 0
    assert calls[:probes] == [steps + recomputed] * probes
    assert calls[probes:] == [computed] * (3 - probes)
    if not isinstance(config.policy, ConfidenceGate):
        run = 0
        expected = []
        for step in range(steps):
            decision = config.policy.decide(step, steps, run)
            expected.append("C" if step == 0 or decision is Decision.COMPUTE else "F")
            run = run + 1 if expected[-1] == "F" else 0
        mismatches = [s for s in range(steps) if decisions[s] != expected[s]]
        assert len(mismatches) <= recomputed
    else:
        assert "F" * (config.policy.max_consecutive + 1) not in decisions
        assert decisions[-1] == "C"
    assert stats.compute_ratio == pytest.approx(ctx.total_units / ctx.executed_units)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["every", "warmup", "cooldown"]),
    value=st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), st.text(max_size=2), st.none()),
)
def test_any_invalid_interval_field_is_refused_by_name(field, value):
    if field == "cooldown" and isinstance(value, int) and value == 0:
        value = -1
    with pytest.raises((ValueError, TypeError)) as info:
        Interval(**{field: value})
    assert f"`{field}`" in str(info.value) and repr(value) in str(info.value)


@settings(max_examples=40, deadline=None)
@given(threshold=st.one_of(st.floats(max_value=0.0), st.floats(min_value=10.0001), st.just(float("inf"))))
def test_any_out_of_range_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        ConfidenceGate(threshold=threshold)
