"""Pipelines with two denoising experts (Wan 2.2: `transformer` for high noise, `transformer_2` for low)."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

import forecache
from forecache.accel.session import session_of
from tests.fixtures.catalog import build_tiny

STEPS = 12


@pytest.fixture
def pipe():
    pytest.importorskip("transformers")  # WanPipeline refuses to build without it, even with no text encoder
    high = build_tiny("WanTransformer3DModel").model
    low = build_tiny("WanTransformer3DModel").model
    with torch.no_grad():
        for param in low.parameters():  # a different expert
            param.mul_(1.25)
    pipe = WanPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=None,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        transformer=high,
        transformer_2=low,
        boundary_ratio=0.5,  # timesteps >= 500 go to `transformer`: the first 6 of 12
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe):
    g = torch.Generator().manual_seed(0)
    prompt, negative = torch.randn(1, 5, 32, generator=g), torch.randn(1, 5, 32, generator=g)
    return pipe(
        prompt_embeds=prompt,
        negative_prompt_embeds=negative,
        height=16,
        width=16,
        num_frames=5,
        num_inference_steps=STEPS,
        guidance_scale=3.0,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    ).frames


def test_each_expert_gets_its_own_cache_and_cooldown(pipe):
    calls = {"transformer": 0, "transformer_2": 0}
    for name in calls:
        getattr(pipe, name).register_forward_pre_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    baseline = generate(pipe)
    assert calls == {"transformer": 12, "transformer_2": 12}  # 6 steps each, cond and uncond
    forecache.apply(pipe, forecache.TaylorSeerConfig(interval=2, warmup=2, cooldown=1))
    cached = generate(pipe)
    stats = forecache.stats(pipe)
    forecache.remove(pipe)
    decisions = {key: "".join(ctx.decisions) for key, ctx in stats.contexts.items()}
    # the low-noise expert warms up from its own first step and computes the generation's last
    # step (its cool-down); the high-noise one just stops at the boundary
    assert decisions == {
        "cond": "CCCFCF",
        "uncond": "CCCFCF",
        "transformer_2/cond": "CCCFCC",
        "transformer_2/uncond": "CCCFCC",
    }
    assert [ctx.name for ctx in stats.contexts.values()] == list(decisions)
    assert stats.compute_ratio == pytest.approx(24 / 18)  # 24 calls, 18 computed
    assert torch.isfinite(cached).all() and not torch.equal(cached, baseline)
    assert torch.equal(generate(pipe), baseline)  # both experts unhooked, bitwise
    assert session_of(pipe.transformer) is None and session_of(pipe.transformer_2) is None
    with pytest.raises(ValueError, match="not applied"):
        forecache.stats(pipe)


def test_an_unsupported_second_expert_leaves_nothing_hooked(pipe):
    original_class = type(pipe)
    pipe.transformer_2 = torch.nn.Linear(2, 2)
    with pytest.raises(forecache.UnsupportedModelError, match="Linear"):
        forecache.apply(pipe, forecache.TaylorSeerConfig())
    assert session_of(pipe.transformer) is None and type(pipe) is original_class
