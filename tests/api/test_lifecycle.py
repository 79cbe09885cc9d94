"""apply/remove on a pipeline or its transformer in any order: each works or raises a clear error."""

import pickle
import re

import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig

import forecache
from forecache import TaylorSeerConfig
from tests.fixtures.sampler import TinyPipeline

CONFIG = TaylorSeerConfig(interval=3, warmup=2)


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe):
    return pipe(num_inference_steps=8, generator=torch.Generator().manual_seed(1)).latents


def engaged(pipe):
    return forecache.stats(pipe).forecast_steps > 0


def test_pipeline_keeps_its_class_and_pickles_its_config(pipe):
    config_before = dict(pipe.config)
    forecache.apply(pipe, CONFIG)
    assert type(pipe) is TinyPipeline
    assert pickle.loads(pickle.dumps(pipe.config)) == pipe.config
    assert dict(pipe.config) == config_before
    assert pickle.loads(pickle.dumps(CONFIG)) == CONFIG
    sample(pipe)
    assert engaged(pipe)
    forecache.remove(pipe)
    assert type(pipe) is TinyPipeline


def test_remove_the_transformer_after_applying_to_the_pipeline(pipe):
    before = sample(pipe)
    forecache.apply(pipe, CONFIG)
    forecache.remove(pipe.transformer)
    assert torch.equal(sample(pipe), before)
    message = re.escape("forecache is not applied to this TinyPipeline; call forecache.apply first")
    with pytest.raises(ValueError, match=message):
        forecache.remove(pipe)
    forecache.apply(pipe, CONFIG)  # and it can be applied again
    sample(pipe)
    assert engaged(pipe)
    forecache.remove(pipe)
    assert torch.equal(sample(pipe), before)


def test_remove_the_pipeline_after_applying_to_the_transformer(pipe):
    before = sample(pipe)
    forecache.apply(pipe.transformer, CONFIG)
    sample(pipe)  # a transformer applied alone still resets per generation through its timesteps
    assert engaged(pipe.transformer)
    forecache.remove(pipe)
    assert torch.equal(sample(pipe), before)


def test_applying_twice_in_either_form_names_the_transformer(pipe):
    forecache.apply(pipe.transformer, CONFIG)
    message = re.escape(
        "forecache is already applied to `transformer` (FluxTransformer2DModel) of this TinyPipeline; "
        "call forecache.remove(...) first"
    )
    with pytest.raises(RuntimeError, match=message):
        forecache.apply(pipe, CONFIG)
    with pytest.raises(RuntimeError, match="already applied to `transformer` \\(FluxTransformer2DModel\\)"):
        forecache.apply(pipe.transformer, CONFIG)
    forecache.remove(pipe.transformer)
    with pytest.raises(ValueError, match="forecache is not applied to this FluxTransformer2DModel"):
        forecache.remove(pipe.transformer)


def test_stacking_with_diffusers_enable_cache_is_refused_in_both_orders(pipe):
    before = sample(pipe)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.2))
    refused = re.escape("diffusers' own cache is enabled on it (`enable_cache`)")
    with pytest.raises(RuntimeError, match=refused):
        forecache.apply(pipe, CONFIG)
    assert not hasattr(pipe.transformer, "_forecache_session")  # nothing half-applied
    pipe.transformer.disable_cache()

    forecache.apply(pipe, CONFIG)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.2))
    with pytest.raises(RuntimeError, match=re.escape("diffusers' own cache was enabled on it since")):
        sample(pipe)
    pipe.transformer.disable_cache()
    forecache.remove(pipe)
    assert torch.equal(sample(pipe), before)


def test_generations_reset_without_a_pipeline_wrapper(pipe):
    forecache.apply(pipe, CONFIG)
    first = sample(pipe)
    decisions = forecache.stats(pipe).contexts["branch0"].decisions
    assert "".join(decisions) == "CCCFFCFC"
    second = sample(pipe)  # a new schedule: a new generation, the same forecasts
    assert torch.equal(first, second)
    assert forecache.stats(pipe).contexts["branch0"].decisions == decisions
    forecache.remove(pipe)
