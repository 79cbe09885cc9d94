"""Faults the cache must survive: non-finite forecasts and blocks that modify tensors in place."""

import pytest
import torch

import forecache
from forecache import CacheConfig, Interval, Taylor, TaylorSeerConfig
from forecache.accel.forecasters import _TaylorHistory
from forecache.pipelines.tiny_pipeline import TinyPipeline

STEPS = 10


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def record_outputs(pipe):
    seen = []
    handle = pipe.transformer.register_forward_hook(lambda m, a, out: seen.append(out[0].clone()))
    return seen, handle


@pytest.mark.parametrize("target", ["modules", "blocks", "output"])
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), 1e6])
def test_bad_forecasts_are_never_used(pipe, monkeypatch, target, poison):
    config = CacheConfig(
        policy=Interval(every=3, warmup=2, cooldown=1), forecaster=Taylor(order=1), target=target
    )
    seen, handle = record_outputs(pipe)
    forecache.apply(pipe, config)
    pipe(num_inference_steps=STEPS)
    clean_decisions = "".join(forecache.stats(pipe).contexts["branch0"].decisions)
    seen.clear()

    original = _TaylorHistory.predict

    def poisoned(self, x):
        value = original(self, x)
        return torch.full_like(value, poison) if x in (3.0, 6.0) else value  # steps 3 and 6

    monkeypatch.setattr(_TaylorHistory, "predict", poisoned)
    pipe(num_inference_steps=STEPS)
    stats = forecache.stats(pipe)
    handle.remove()
    forecache.remove(pipe)
    ctx = stats.contexts["branch0"]
    assert clean_decisions == "CCCFFCFFCC"
    assert "".join(ctx.decisions) == "CCCCFCCFCC" and ctx.fallbacks == 2
    final = seen[-1]
    assert torch.isfinite(final).all()
    assert all(torch.isfinite(o).all() for o in seen)
    assert float(final.abs().max()) < 100


def test_guard_can_be_disabled_and_then_lets_bad_values_through(pipe, monkeypatch):
    forecache.apply(pipe, CacheConfig(policy=Interval(every=3, warmup=2), fallback_margin=None))
    original = _TaylorHistory.predict
    monkeypatch.setattr(
        _TaylorHistory, "predict", lambda self, x: torch.full_like(original(self, x), float("nan"))
    )
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
    from forecache.pipelines import registry

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
