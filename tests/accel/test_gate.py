"""The confidence gate on a toy transformer whose probe output is a constructed sequence."""

import pytest
import torch

import forecache
from forecache import CacheConfig, ConfidenceGate, Taylor
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.layouts import registry


class ShiftBlock(torch.nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = values
        self.inner = torch.nn.Identity()
        self.calls = 0

    def forward(self, hidden_states, step):
        self.calls += 1
        return self.inner(hidden_states * 0 + self.values[step])


class AddBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Identity()
        self.calls = 0

    def forward(self, hidden_states, step):
        self.calls += 1
        return self.inner(hidden_states + 1.0)


class ToyTransformer(torch.nn.Module):
    def __init__(self, probe_values):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([ShiftBlock(probe_values), AddBlock(), AddBlock()])

    def forward(self, hidden_states, timestep, return_dict=False):
        step = int(1000 - timestep)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, step)
        return (hidden_states,)


@pytest.fixture(autouse=True)
def toy_layout():
    forecache.register_layout(
        "ToyTransformer", ModelLayout((BlockListLayout("transformer_blocks", None, None, ("inner",)),))
    )
    yield
    registry._REGISTRY.pop("ToyTransformer")


def run(model, steps, config):
    forecache.apply(model, config, num_inference_steps=steps)
    outputs = [model(torch.zeros(2, 4), torch.tensor([1000.0 - s]))[0] for s in range(steps)]
    stats = forecache.stats(model)
    forecache.remove(model)
    return outputs, stats


def test_gate_computes_exactly_where_the_probe_forecast_fails():
    values = [1.0 + 0.1 * s for s in range(12)]
    values[6] = 5.0  # a spike the linear forecast cannot see coming
    model = ToyTransformer(values)
    gate = ConfidenceGate(threshold=0.1, max_consecutive=3, warmup=2, cooldown=1)
    outputs, stats = run(model, 12, CacheConfig(policy=gate, forecaster=Taylor(order=1)))
    ctx = stats.contexts["branch0"]
    # 0-1 warm-up; 2-4 exact linear forecasts (error 0) until the cap of 3; 5 forced by the cap;
    # 6 spike (error > threshold); 7-8 history still bent by the spike; 9-10 linear again; 11 last.
    assert "".join(ctx.decisions) == "CCFFFCCCCFFC"
    assert [s for s, _ in ctx.gate_errors] == [2, 3, 4, 6, 7, 8, 9, 10]
    errors = dict(ctx.gate_errors)
    assert max(errors[s] for s in (2, 3, 4, 9, 10)) < 1e-6
    assert min(errors[s] for s in (6, 7, 8)) > 0.1
    # the probe always runs, the two other blocks only at computed steps
    assert [b.calls for b in model.transformer_blocks] == [12, 7, 7]
    assert ctx.executed_units == 12 + 2 * 7 and ctx.total_units == 36
    # forecast steps: probe output + forecast residual (+2), exact here
    for s, out in enumerate(outputs):
        assert torch.allclose(out, torch.full((2, 4), values[s] + 2.0)), s


def test_gate_never_exceeds_its_cap_and_computes_first_and_last():
    model = ToyTransformer([0.5] * 20)  # constant: every probe is accepted
    gate = ConfidenceGate(threshold=0.5, max_consecutive=2, warmup=1, cooldown=1)
    _, stats = run(model, 20, CacheConfig(policy=gate, forecaster=Taylor(order=0)))
    decisions = "".join(stats.contexts["branch0"].decisions)
    assert decisions == "C" + "FFC" * 6 + "C"
    assert "FFF" not in decisions and decisions[0] == decisions[-1] == "C"


def test_gate_is_conservative_over_the_batch():
    class BatchBlock(ShiftBlock):
        def forward(self, hidden_states, step):
            out = torch.ones_like(hidden_states)
            out[1] = 1.0 if step < 3 else 3.0  # only the second sample jumps
            return self.inner(out)

    model = ToyTransformer([1.0] * 6)
    model.transformer_blocks[0] = BatchBlock([])
    gate = ConfidenceGate(threshold=0.1, max_consecutive=5, warmup=1, cooldown=1)
    _, stats = run(model, 6, CacheConfig(policy=gate, forecaster=Taylor(order=0)))
    assert "".join(stats.contexts["branch0"].decisions) == "CFFCFC"
    assert dict(stats.contexts["branch0"].gate_errors)[3] > 0.5
