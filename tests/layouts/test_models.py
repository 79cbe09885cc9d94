"""Every target on every registered transformer class, on tiny random configurations."""

import pytest
import torch

import forecache
from forecache import (
    AdamsBashforthConfig,
    CacheConfig,
    ConfidenceGateConfig,
    Interval,
    StepMask,
    TaylorSeerConfig,
)
from forecache.layouts.registry import layout_for
from tests.fixtures.catalog import build_tiny, tiny_model_names

MODELS = tiny_model_names()
TARGETS = ["modules", "blocks", "output"]
STEPS = 8


def run(tiny, steps=STEPS, batch=2):
    generator = torch.Generator().manual_seed(0)
    inputs = tiny.make_inputs(batch, generator)
    outputs = []
    with torch.no_grad():
        for i in range(steps):
            t = torch.full((batch,), (1000.0 - 1000.0 * i / steps) * tiny.timestep_scale)
            outputs.append(tiny.model(**inputs, timestep=t, return_dict=False)[0])
    return outputs


def full_compute_configs(target):
    return [
        TaylorSeerConfig(interval=1, target=target),
        AdamsBashforthConfig(interval=1, target=target),
        ConfidenceGateConfig(threshold=1e-12, target=target),
        CacheConfig(policy=StepMask((True,) * STEPS), target=target),
    ]


@pytest.mark.parametrize("name", MODELS)
def test_full_compute_policies_are_bitwise_identical_to_no_cache(name):
    tiny = build_tiny(name)
    baseline = run(tiny)
    for target in TARGETS:
        for config in full_compute_configs(target):
            with forecache.cached(tiny.model, config, num_inference_steps=STEPS):
                cached = run(tiny)
                stats = forecache.stats(tiny.model)
            assert stats.forecast_steps == 0, (config, stats.summary())
            for step, (a, b) in enumerate(zip(baseline, cached, strict=True)):
                assert torch.equal(a, b), f"{name} {config} step {step}: max diff {(a - b).abs().max()}"


@pytest.mark.parametrize("name", MODELS)
def test_remove_restores_bitwise_outputs_and_apply_twice_raises(name):
    tiny = build_tiny(name)
    before = run(tiny)
    forecache.apply(tiny.model, TaylorSeerConfig(interval=3, warmup=1), num_inference_steps=STEPS)
    with pytest.raises(RuntimeError, match="already applied"):
        forecache.apply(tiny.model, TaylorSeerConfig())
    during = run(tiny)
    assert forecache.stats(tiny.model).forecast_steps > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, during, strict=True))
    forecache.remove(tiny.model)
    after = run(tiny)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not applied"):
        forecache.remove(tiny.model)


def _to_q_calls(model):
    """Forward-hook counters on every `to_q` inside the hooked block lists, per block index."""
    layout = layout_for(model)
    counters = []
    for block_list in layout.block_lists:
        for block in getattr(model, block_list.attr):
            calls = [0]
            for name, module in block.named_modules():
                if name.endswith("to_q"):
                    module.register_forward_hook(lambda *_, c=calls: c.__setitem__(0, c[0] + 1))
            counters.append(calls)
    return counters


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_interval_policy_runs_blocks_the_expected_number_of_times(name, target):
    tiny = build_tiny(name)
    counters = _to_q_calls(tiny.model)
    per_block = [c[0] for c in counters]
    run(tiny, steps=1)
    per_call = [c[0] - p for c, p in zip(counters, per_block, strict=True)]
    assert all(n >= 1 for n in per_call), f"{name}: a block without to_q {per_call}"
    for c in counters:
        c[0] = 0
    config = CacheConfig(policy=Interval(every=3, warmup=2, cooldown=1), target=target)
    with forecache.cached(tiny.model, config, num_inference_steps=10):
        outputs = run(tiny, steps=10)
        stats = forecache.stats(tiny.model)
    ctx = stats.contexts["branch0"]
    assert "".join(ctx.decisions) == "CCCFFCFFCC"
    assert [c[0] for c in counters] == [n * ctx.computed_steps for n in per_call]
    units = ctx.total_units // 10
    assert ctx.executed_units == units * ctx.computed_steps
    assert stats.compute_ratio == pytest.approx(10 / 6)
    assert stats.cache_bytes > 0
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", MODELS)
def test_gate_probe_blocks_always_run(name):
    tiny = build_tiny(name)
    counters = _to_q_calls(tiny.model)
    run(tiny, steps=1)
    per_call = [c[0] for c in counters]
    for c in counters:
        c[0] = 0
    with forecache.cached(
        tiny.model, ConfidenceGateConfig(threshold=10.0, max_consecutive=3), num_inference_steps=10
    ):
        run(tiny, steps=10)
        ctx = forecache.stats(tiny.model).contexts["branch0"]
    assert "".join(ctx.decisions) == "CCFFFCFFFC"
    assert counters[0][0] == 10 * per_call[0]
    assert [c[0] for c in counters[1:]] == [n * 4 for n in per_call[1:]]
    assert len(ctx.gate_errors) == 6


def test_layouts_agree_with_diffusers_block_metadata():
    from diffusers.hooks._helpers import TransformerBlockRegistry

    checked = 0
    for name in MODELS:
        model = build_tiny(name).model
        for block_list in layout_for(model).block_lists:
            block = getattr(model, block_list.attr)[0]
            try:
                meta = TransformerBlockRegistry.get(type(block))
            except ValueError:
                continue
            assert block_list.encoder_index == meta.return_encoder_hidden_states_index, (
                name,
                block_list.attr,
            )
            if block_list.hidden_index is not None:
                assert block_list.hidden_index == meta.return_hidden_states_index, (name, block_list.attr)
            checked += 1
    assert checked >= 8


def test_unregistered_model_is_refused_with_the_supported_list():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    with pytest.raises(forecache.UnsupportedModelError) as info:
        forecache.apply(Plain(), TaylorSeerConfig())
    message = str(info.value)
    assert "Plain" in message and "FluxTransformer2DModel" in message and "WanTransformer3DModel" in message
    assert isinstance(info.value, ValueError)


def test_supported_models_lists_the_ten_required_classes():
    assert set(MODELS) <= set(forecache.supported_models())
    assert len(MODELS) == 10


def test_probe_blocks_must_leave_blocks_to_cache():
    tiny = build_tiny("DiTTransformer2DModel")
    with pytest.raises(ValueError, match="probe_blocks"):
        forecache.apply(tiny.model, ConfidenceGateConfig(probe_blocks=3))
    assert not hasattr(tiny.model, "_forecache_session")
