"""Faults the cache must survive: non-finite forecasts and blocks that modify tensors in place."""

import pytest
import torch

import forecache
from forecache import CacheConfig, Interval, Taylor, TaylorSeerConfig
from forecache.accel.forecasters.taylor import TaylorHistory
from tests.fixtures.sampler import TinyPipeline

STEPS = 10


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def poisoned_derivative(poison, steps):
    """A Taylor predict whose first derivative holds `poison` at `steps`: the forecast diverges there.

    The last computed feature (the guard's fallback) stays clean, so a guarded output stays finite.
    """
    original = TaylorHistory.predict

    def predict(self, x, guard=None, addend=None):
        if x not in steps:
            return original(self, x, guard, addend)
        saved = self.slots[1]
        self.slots[1] = torch.full_like(saved, poison)
        try:
            return original(self, x, guard, addend)
        finally:
            self.slots[1] = saved

    return predict


def record_outputs(pipe):
    seen = []
    handle = pipe.transformer.register_forward_hook(lambda m, a, out: seen.append(out[0].clone()))
    return seen, handle


@pytest.mark.parametrize("fallback", ["reuse", "recompute"])
@pytest.mark.parametrize("target", ["modules", "blocks", "output"])
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), 1e6])
def test_bad_forecasts_are_never_used(pipe, monkeypatch, target, poison, fallback):
    config = CacheConfig(
        policy=Interval(every=3, warmup=2, cooldown=1),
        forecaster=Taylor(order=1),
        target=target,
        fallback=fallback,
    )
    seen, handle = record_outputs(pipe)
    forecache.apply(pipe, config)
    pipe(num_inference_steps=STEPS)
    clean_decisions = "".join(forecache.stats(pipe).contexts["branch0"].decisions)
    seen.clear()

    monkeypatch.setattr(TaylorHistory, "predict", poisoned_derivative(poison, steps=(3.0, 6.0)))
    pipe(num_inference_steps=STEPS)
    stats = forecache.stats(pipe)
    handle.remove()
    forecache.remove(pipe)
    ctx = stats.contexts["branch0"]
    assert clean_decisions == "CCCFFCFFCC"
    # "recompute" computes the two refused steps; "reuse" keeps the schedule and its compute ratio
    expected = "CCCCFCCFCC" if fallback == "recompute" else clean_decisions
    assert "".join(ctx.decisions) == expected and ctx.fallbacks == 2
    final = seen[-1]
    assert torch.isfinite(final).all()
    assert all(torch.isfinite(o).all() for o in seen)
    assert float(final.abs().max()) < 100


def test_guard_can_be_disabled_and_then_lets_bad_values_through(pipe, monkeypatch):
    forecache.apply(pipe, CacheConfig(policy=Interval(every=3, warmup=2), fallback_margin=None))
    monkeypatch.setattr(TaylorHistory, "predict", poisoned_derivative(float("nan"), steps=(3.0, 4.0)))
    latents = pipe(num_inference_steps=STEPS).latents
    assert forecache.stats(pipe).fallbacks == 0
    assert torch.isnan(latents).all()
    forecache.remove(pipe)


class InPlaceBlock(torch.nn.Module):
    """Adds to its input and to its own output in place, as some fused blocks do."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, hidden_states):
        out = self.lin(hidden_states)
        hidden_states.mul_(0.5)
        out.add_(hidden_states)
        return out


class InPlaceModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.transformer_blocks = torch.nn.ModuleList([InPlaceBlock() for _ in range(3)])

    def forward(self, hidden_states, timestep, return_dict=False):
        x = hidden_states.clone()
        for block in self.transformer_blocks:
            x = block(x)
            x.add_(0.01 * float(timestep))
        return (x,)


@pytest.mark.parametrize("target", ["modules", "blocks", "output"])
def test_in_place_blocks_do_not_change_what_the_cache_holds(target):
    from forecache.accel.layout import BlockListLayout, ModelLayout
    from forecache.layouts import registry

    forecache.register_layout(
        "InPlaceModel", ModelLayout((BlockListLayout("transformer_blocks", None, None, ("lin",)),))
    )
    try:
        model = InPlaceModel()
        x = torch.randn(2, 4)
        # Reuse with interval 2: a forecast step must equal exactly the previous computed step's value
        config = CacheConfig(
            policy=Interval(every=2, warmup=1, cooldown=0), forecaster=forecache.Reuse(), target=target
        )
        with forecache.cached(model, config, num_inference_steps=6):
            outs = [model(x, torch.tensor(float(t)))[0] for t in (6, 5, 4, 3, 2, 1)]
            decisions = "".join(forecache.stats(model).contexts["branch0"].decisions)
        assert decisions == "CCFCFC"
        reference = InPlaceModel()
        expected = {s: reference(x, torch.tensor(float(6 - s)))[0] for s in (0, 1, 3, 5)}
        for s in (0, 1, 3, 5):
            assert torch.equal(outs[s], expected[s]), s
        # what was cached at step 1 is unchanged by the later in-place operations
        if target == "output":
            assert torch.equal(outs[2], expected[1])
        assert torch.isfinite(torch.stack(outs)).all()
    finally:
        registry._REGISTRY.pop("InPlaceModel")


def test_each_call_equals_a_fresh_run_when_inputs_change_between_calls(pipe):
    config = TaylorSeerConfig(interval=3, warmup=2)
    runs = [
        {"num_inference_steps": 8, "batch_size": 1},
        {"num_inference_steps": 12, "batch_size": 3},
        {"num_inference_steps": 6, "batch_size": 2, "guidance_scale": 3.0},
        {"num_inference_steps": 9, "batch_size": 1, "guidance_scale": 3.0, "guidance_mode": "batched"},
    ]
    forecache.apply(pipe, config)
    sequential = [pipe(generator=torch.Generator().manual_seed(1), **kw).latents for kw in runs]
    forecache.remove(pipe)
    for kw, got in zip(runs, sequential, strict=True):
        fresh = TinyPipeline.from_tiny("FluxTransformer2DModel")
        fresh.set_progress_bar_config(disable=True)
        with forecache.cached(fresh, config):
            expected = fresh(generator=torch.Generator().manual_seed(1), **kw).latents
        assert torch.equal(got, expected), kw


def test_scheduler_guidance_and_dtype_changes_between_calls_equal_fresh_runs():
    from diffusers import EulerDiscreteScheduler

    from forecache.reference import load_reference

    def call(pipe, **kw):
        return pipe(
            class_labels=[1, 7], generator=torch.Generator().manual_seed(2), output_type="pt", **kw
        ).images

    def configure(pipe, variant):
        if variant == "euler":
            pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        if variant == "bf16":
            pipe.to(torch.bfloat16)

    runs = [
        ("ddim", {"num_inference_steps": 12}),
        ("euler", {"num_inference_steps": 9}),
        ("euler", {"num_inference_steps": 10, "guidance_scale": 1.0}),
        ("bf16", {"num_inference_steps": 8}),
    ]
    config = TaylorSeerConfig(interval=3, warmup=2)
    pipe = load_reference("dit-digits")
    pipe.set_progress_bar_config(disable=True)
    forecache.apply(pipe, config)
    sequential = []
    for variant, kw in runs:
        configure(pipe, variant)
        sequential.append(call(pipe, **kw))
    forecache.remove(pipe)
    for (variant, kw), got in zip(runs, sequential, strict=True):
        fresh = load_reference("dit-digits")
        fresh.set_progress_bar_config(disable=True)
        for earlier in ("euler",) if variant in ("euler", "bf16") else ():
            configure(fresh, earlier)
        configure(fresh, variant)
        with forecache.cached(fresh, config):
            assert torch.equal(got, call(fresh, **kw)), (variant, kw)


def test_resolution_changes_between_generations_of_a_bare_transformer():
    from tests.fixtures.catalog import build_tiny

    def generation(model, size):
        x = torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(size))
        text = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
        cond = {"resolution": None, "aspect_ratio": None}
        with torch.no_grad():
            return [
                model(x, encoder_hidden_states=text, timestep=torch.tensor([t]), added_cond_kwargs=cond)[0]
                for t in (900.0, 700.0, 500.0, 300.0, 100.0)
            ]

    model = build_tiny("PixArtTransformer2DModel").model
    config = TaylorSeerConfig(interval=2, warmup=1)
    forecache.apply(model, config, num_inference_steps=5)
    sequential = [generation(model, size) for size in (8, 16, 8)]
    forecache.remove(model)
    for size, got in zip((8, 16, 8), sequential, strict=True):
        with forecache.cached(model, config, num_inference_steps=5):
            expected = generation(model, size)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True)), size
