"""The cache in half precision: forecasts that would overflow the model's dtype, and histories too narrow.

A toy model whose output rises by 20000 per step to 60000 (finite in float16), then drops to 10000:
a Taylor forecast of order 1 extrapolates to 80000 at the fourth step, within the guard's margin
over the running peak (4 x 60000) but inf once stored in float16.
"""

import pytest
import torch

import forecache
from forecache import CacheConfig, Interval, Taylor
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.layouts import registry

STEPS = 6
VALUES = [20000.0, 40000.0, 60000.0, 10000.0, 10000.0, 10000.0]


class Saturating(torch.nn.Module):
    def forward(self, hidden_states, step):
        return hidden_states * 0 + VALUES[step]


class ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([Saturating(), Saturating()])

    def forward(self, hidden_states, timestep, return_dict=False):
        step = int(1000 - timestep)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, step)
        return (hidden_states,)


@pytest.fixture
def toy():
    layout = ModelLayout((BlockListLayout("transformer_blocks", None, None, ()),))
    forecache.register_layout("ToyModel", layout)
    yield ToyModel()
    registry._REGISTRY.pop("ToyModel")


def run(model, dtype):
    x = torch.ones(1, 4, 3, dtype=dtype)
    return [model(x, torch.tensor(1000.0 - step))[0] for step in range(STEPS)]


@pytest.mark.parametrize("fallback", ["reuse", "recompute"])
@pytest.mark.parametrize("history_dtype", ["auto", "float32"])
def test_a_forecast_that_overflows_float16_is_refused(toy, fallback, history_dtype):
    config = CacheConfig(
        Interval(every=4, warmup=2, cooldown=1), Taylor(order=1), "output", history_dtype, fallback=fallback
    )
    with forecache.cached(toy, config, num_inference_steps=STEPS):
        outputs = run(toy, torch.float16)
        stats = forecache.stats(toy)
    decisions = "".join(stats.contexts["branch0"].decisions)
    values = [o.flatten()[0].item() for o in outputs]
    assert all(torch.isfinite(o).all() for o in outputs), values
    if fallback == "reuse":  # 80000 and 100000 refused: the last computed value (60000) instead
        assert (decisions, values) == ("CCCFFC", [20000.0, 40000.0, 60000.0, 60000.0, 60000.0, 10000.0])
        assert stats.fallbacks == 2
    else:  # the refused step ran instead (its real 10000), and the next forecast is finite
        assert (decisions, values) == ("CCCCFC", [20000.0, 40000.0, 60000.0, 10000.0, -40000.0, 10000.0])
        assert stats.fallbacks == 1


def test_a_float16_history_of_bfloat16_features_is_refused_at_its_first_store(toy):
    config = CacheConfig(Interval(every=2, warmup=2), Taylor(order=1), "output", "float16")
    with forecache.cached(toy, config, num_inference_steps=STEPS):
        with pytest.raises(ValueError) as raised:
            run(toy, torch.bfloat16)
    message = str(raised.value)
    assert "`history_dtype` must be one of ['auto', 'float32', 'bfloat16'] for bfloat16 features" in message
    assert "got 'float16'" in message and "65504" in message


@pytest.mark.parametrize("history_dtype", ["float16", "bfloat16"])
def test_narrower_precision_with_the_same_range_is_kept(toy, history_dtype):
    config = CacheConfig(Interval(every=2, warmup=2), Taylor(order=1), "output", history_dtype)
    feature_dtype = torch.float16 if history_dtype == "float16" else torch.float32
    with forecache.cached(toy, config, num_inference_steps=STEPS):
        outputs = run(toy, feature_dtype)
        stats = forecache.stats(toy)
    assert stats.forecast_steps == 1 and all(o.dtype == feature_dtype for o in outputs)
