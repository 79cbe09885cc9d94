"""Wrapping a DiffusionPipeline: per-call reset, errors, and classifier-free-guidance branches."""

import pytest
import torch

import forecache
from forecache import CacheConfig, ConfidenceGateConfig, Interval, Reuse, TaylorSeerConfig
from tests.fixtures.sampler import TinyPipeline


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", 12)
    kwargs.setdefault("generator", torch.Generator().manual_seed(3))
    return pipe(**kwargs).latents


def test_two_calls_with_one_seed_are_identical_and_state_resets(pipe):
    forecache.apply(pipe, TaylorSeerConfig(interval=3, warmup=2))
    first = sample(pipe, guidance_scale=3.0)
    first_stats = forecache.stats(pipe)
    second = sample(pipe, guidance_scale=3.0)
    assert torch.equal(first, second)
    assert forecache.stats(pipe).contexts["cond"].decisions == first_stats.contexts["cond"].decisions
    assert len(forecache.stats(pipe).contexts["cond"].decisions) == 12
    forecache.remove(pipe)


def test_cooldown_uses_the_pipeline_scheduler_step_count(pipe):
    forecache.apply(pipe, CacheConfig(policy=Interval(every=4, warmup=1, cooldown=2)))
    sample(pipe, num_inference_steps=11)
    assert "".join(forecache.stats(pipe).contexts["branch0"].decisions) == "CCFFFCFFFCC"
    sample(pipe, num_inference_steps=7)
    assert "".join(forecache.stats(pipe).contexts["branch0"].decisions) == "CCFFFCC"
    forecache.remove(pipe)


def test_a_call_that_raised_leaves_no_stale_state(pipe):
    config = TaylorSeerConfig(interval=3, warmup=2, target="blocks")
    forecache.apply(pipe, config)
    reference = sample(pipe, guidance_scale=2.0)

    calls = [0]

    def explode(*_):
        calls[0] += 1
        if calls[0] == 9:
            raise RuntimeError("injected")

    handle = pipe.transformer.transformer_blocks[0].register_forward_pre_hook(explode)
    with pytest.raises(RuntimeError, match="injected"):
        sample(pipe, guidance_scale=2.0)
    handle.remove()
    after = sample(pipe, guidance_scale=2.0)
    assert torch.equal(after, reference)
    forecache.remove(pipe)


def test_a_bare_transformer_call_that_raised_resets_its_state(pipe):
    transformer = pipe.transformer
    forecache.apply(transformer, TaylorSeerConfig(interval=2, warmup=1))
    tiny = pipe.tiny
    inputs = tiny.make_inputs(1, torch.Generator().manual_seed(0))
    t = torch.tensor([0.9])
    transformer(**inputs, timestep=t)
    assert len(forecache.stats(transformer).contexts["branch0"].decisions) == 1

    def explode(*_):
        raise RuntimeError("injected")

    handle = transformer.single_transformer_blocks[1].register_forward_pre_hook(explode)
    with pytest.raises(RuntimeError, match="injected"):
        transformer(**inputs, timestep=t * 0.5)
    handle.remove()
    assert forecache.stats(transformer).contexts == {}
    forecache.remove(transformer)


@pytest.mark.parametrize("mode", ["named", "unnamed"])
def test_guidance_branches_keep_separate_histories(pipe, mode):
    """With reuse on the output, a forecast branch returns exactly its own last computed output."""
    seen = []
    pipe.transformer.register_forward_hook(lambda m, a, out: seen.append(out[0].clone()))
    config = CacheConfig(policy=Interval(every=3, warmup=1, cooldown=1), forecaster=Reuse(), target="output")
    forecache.apply(pipe, config)
    sample(pipe, guidance_scale=4.0, guidance_mode=mode, num_inference_steps=9)
    stats = forecache.stats(pipe)
    names = ["cond", "uncond"] if mode == "named" else ["branch0", "branch1"]
    assert list(stats.contexts) == names
    decisions = stats.contexts[names[0]].decisions
    assert "".join(decisions) == "CCFFCFFCC" == "".join(stats.contexts[names[1]].decisions)
    cond, uncond = seen[0::2], seen[1::2]
    for step, decision in enumerate(decisions):
        if decision == "F":
            last = max(s for s in range(step) if decisions[s] == "C")
            assert torch.equal(cond[step], cond[last]) and torch.equal(uncond[step], uncond[last])
    assert not torch.equal(cond[0], uncond[0])
    forecache.remove(pipe)


def test_batched_guidance_is_one_context(pipe):
    forecache.apply(pipe, TaylorSeerConfig(interval=2, warmup=1))
    sample(pipe, guidance_scale=4.0, guidance_mode="batched", num_inference_steps=6)
    assert list(forecache.stats(pipe).contexts) == ["branch0"]
    forecache.remove(pipe)


def test_the_pipeline_keeps_its_class_and_removal_restores_outputs(pipe):
    original_class = type(pipe)
    before = sample(pipe, guidance_scale=2.0)
    with forecache.cached(pipe, ConfidenceGateConfig(threshold=5.0)):
        assert type(pipe) is original_class
        cached_out = sample(pipe, guidance_scale=2.0)
        assert forecache.stats(pipe).forecast_steps > 0
    assert type(pipe) is original_class
    assert not torch.equal(before, cached_out)
    assert torch.equal(sample(pipe, guidance_scale=2.0), before)


def test_cached_removes_on_error(pipe):
    with pytest.raises(KeyError), forecache.cached(pipe, TaylorSeerConfig()):
        raise KeyError("boom")
    assert not hasattr(pipe.transformer, "_forecache_session")
    forecache.apply(pipe, TaylorSeerConfig())
    forecache.remove(pipe)


def test_apply_does_not_mutate_the_config(pipe):
    config = TaylorSeerConfig(interval=4)
    snapshot = repr(config)
    forecache.apply(pipe, config)
    sample(pipe)
    forecache.remove(pipe)
    assert repr(config) == snapshot


def test_wrong_target_type_is_refused():
    with pytest.raises(TypeError, match="DiffusionPipeline or transformer"):
        forecache.apply("flux", TaylorSeerConfig())


@pytest.mark.parametrize(
    ("config", "ratio"),
    [
        # warm-up 0-2, then every 5th from 3 (3, 8, ..., 48), last step 49: 14 computed
        (TaylorSeerConfig(), 50 / 14),
        # warm-up 0-1, then every 3rd from 2 (2, 5, ..., 47), last step 49: 19 computed
        (forecache.AdamsBashforthConfig(), 50 / 19),
    ],
)
def test_preset_compute_ratios_at_50_steps(pipe, config, ratio):
    forecache.apply(pipe, config)
    sample(pipe, num_inference_steps=50)
    stats = forecache.stats(pipe)
    forecache.remove(pipe)
    assert stats.compute_ratio == pytest.approx(ratio), stats.summary()


def test_stats_survive_the_pipelines_own_end_of_call_reset(pipe):
    """Real diffusers pipelines call `maybe_free_model_hooks()` -> `_reset_stateful_cache()` at the end."""
    forecache.apply(pipe, TaylorSeerConfig(interval=3, warmup=2))
    sample(pipe, num_inference_steps=9)
    pipe.transformer._reset_stateful_cache()
    stats = forecache.stats(pipe)
    assert "".join(stats.contexts["branch0"].decisions) == "CCCFFCFFC"
    transformer = pipe.transformer
    forecache.remove(pipe)
    forecache.apply(transformer, TaylorSeerConfig(interval=3, warmup=2))
    inputs = pipe.tiny.make_inputs(1, torch.Generator().manual_seed(0))
    for t in (0.9, 0.8, 0.7):
        transformer(**inputs, timestep=torch.tensor([t]))
    transformer._reset_stateful_cache()
    assert len(forecache.stats(transformer).contexts["branch0"].decisions) == 3
    transformer(**inputs, timestep=torch.tensor([0.5]))  # lower timestep, but a new generation
    assert forecache.stats(transformer).contexts["branch0"].decisions == ["C"]
    forecache.remove(transformer)
