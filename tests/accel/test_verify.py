"""The verification policy on a toy transformer whose checked tensor follows a constructed sequence."""

import pytest
import torch

import forecache
from forecache import CacheConfig, Reuse
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.policies import Decision, Verify
from forecache.layouts import registry
from tests.fixtures.catalog import build_tiny

WIDTH = 4


class ShiftBlock(torch.nn.Module):
    """Outputs ``values[step]`` everywhere; its linear layer runs (for the FLOP count) but is unused."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.linear = torch.nn.Linear(WIDTH, WIDTH)
        self.calls = 0

    def forward(self, hidden_states, step):
        self.calls += 1
        return self.linear(hidden_states) * 0 + self.values[step]


class AddBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(WIDTH, WIDTH)
        self.calls = 0

    def forward(self, hidden_states, step):
        self.calls += 1
        return hidden_states + 1.0 + self.linear(hidden_states) * 0


class ToyTransformer(torch.nn.Module):
    def __init__(self, probe_values):
        super().__init__()
        first = ShiftBlock(probe_values) if probe_values is not None else AddBlock()
        self.transformer_blocks = torch.nn.ModuleList([first, AddBlock(), AddBlock()])

    def forward(self, hidden_states, timestep, return_dict=False):
        step = int(1000 - timestep)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, step)
        return (hidden_states,)


@pytest.fixture(autouse=True)
def toy_layout():
    forecache.register_layout(
        "ToyTransformer", ModelLayout((BlockListLayout("transformer_blocks", None, None, ("linear",)),))
    )
    yield
    registry._REGISTRY.pop("ToyTransformer")


def sequence(errors_after_compute):
    """Values whose reuse forecast errors are the given ones: ``v_s = v_c / (1 - e_s)``.

    `errors_after_compute` maps each step to ``(error, computed)``: the relative error against the
    last computed value, and whether the step turns out computed (it becomes the new reference).
    """
    values, reference = [], 1.0
    for error, computed in errors_after_compute:
        value = reference / (1.0 - error)
        values.append(value)
        if computed:
            reference = value
    return values


# steps 0-1 warm-up; per-step errors against the last computed value; the last step is the cool-down
ERRORS = [0.0, 0.0, 0.04, 0.05, 0.03, 0.02, 0.15, 0.0, 0.09, 0.0]
ACCUMULATED = "CCFFCFCFFC"  # 2: .04, 3: .09, 4: .12 > .1 computed, 5: .02, 6: .15 computed, 7: 0, 8: .09


def accumulated_values():
    return sequence([(e, d == "C") for e, d in zip(ERRORS, ACCUMULATED, strict=True)])


def run(model, inputs, config):
    forecache.apply(model, config, num_inference_steps=len(inputs))
    outputs = [model(x, torch.tensor([1000.0 - s]))[0] for s, x in enumerate(inputs)]
    stats = forecache.stats(model)
    forecache.remove(model)
    return outputs, stats


def test_verify_sums_the_probe_errors_of_a_run_and_computes_when_they_pass_the_threshold():
    model = ToyTransformer(accumulated_values())
    policy = Verify(threshold=0.1, warmup=2, cooldown=1, probe_blocks=1)
    outputs, stats = run(model, [torch.zeros(2, WIDTH)] * 10, CacheConfig(policy=policy, forecaster=Reuse()))
    ctx = stats.contexts["branch0"]
    assert "".join(ctx.decisions) == ACCUMULATED
    errors = dict(ctx.gate_errors)
    assert list(errors) == [2, 3, 4, 5, 6, 7, 8]
    assert [errors[s] for s in errors] == pytest.approx([0.04, 0.05, 0.03, 0.02, 0.15, 0.0, 0.09], abs=1e-6)
    # the probe block runs at every step, the two others at the five computed steps only
    assert [b.calls for b in model.transformer_blocks] == [10, 5, 5]
    assert ctx.executed_units == 10 + 2 * 5 and ctx.total_units == 30
    values = accumulated_values()
    for s in (2, 3, 5, 7, 8):  # forecast: the probe's real output + the reused residual (+2)
        torch.testing.assert_close(outputs[s], torch.full((2, WIDTH), values[s] + 2.0))


def test_without_accumulation_each_step_is_judged_alone():
    # the same values: 4 (.03) and 5 (1 - .97 * .98 = .0494, against step 1) now pass; 6 (.1755) does not
    model = ToyTransformer(accumulated_values())
    policy = Verify(threshold=0.1, accumulate=False, probe_blocks=1)
    _, stats = run(model, [torch.zeros(2, WIDTH)] * 10, CacheConfig(policy=policy, forecaster=Reuse()))
    ctx = stats.contexts["branch0"]
    assert "".join(ctx.decisions) == "CCFFFFCFFC"
    assert dict(ctx.gate_errors)[5] == pytest.approx(1 - 0.97 * 0.98, abs=1e-6)
    assert dict(ctx.gate_errors)[6] == pytest.approx(1 - 0.97 * 0.85, abs=1e-6)


def test_run_error_and_the_cap():
    summed = Verify(threshold=0.1)
    assert summed.judge(0.03, (0.04, 0.05)) is Decision.COMPUTE  # 0.12 over the run
    assert summed.judge(0.03, ()) is Decision.FORECAST
    assert Verify(threshold=0.1, accumulate=False).judge(0.03, (0.04, 0.05)) is Decision.FORECAST
    assert summed.judge(float("nan"), ()) is Decision.COMPUTE
    capped = Verify(threshold=5.0, max_consecutive=2)
    assert [capped.decide(s, 10, r) for s, r in [(1, 0), (2, 0), (4, 2), (9, 0)]] == [
        Decision.COMPUTE,
        Decision.PROBE,
        Decision.COMPUTE,
        Decision.COMPUTE,
    ]


@pytest.mark.eval
def test_compute_ratio_counts_the_probe_block_as_run():
    from forecache.calibrate.flops import count_flops

    model = ToyTransformer(accumulated_values())
    inputs = [torch.zeros(2, WIDTH)] * 10
    with count_flops(model) as full:
        for s, x in enumerate(inputs):
            model(x, torch.tensor([1000.0 - s]))
    config = CacheConfig(policy=Verify(threshold=0.1, probe_blocks=1), forecaster=Reuse())
    forecache.apply(model, config, num_inference_steps=10)
    with count_flops(model) as cached:
        for s, x in enumerate(inputs):
            model(x, torch.tensor([1000.0 - s]))
    forecache.remove(model)
    per_block = 2 * 2 * WIDTH * WIDTH  # one 4x4 linear on a (2, 4) input
    assert sum(full.per_call) == 30 * per_block
    assert sum(cached.per_call) == (10 + 2 * 5) * per_block  # the probe's 10 runs are counted
    assert sum(full.per_call) / sum(cached.per_call) == 1.5


def test_threshold_zero_accepts_nothing_and_is_bitwise_full_compute():
    tiny = build_tiny("FluxTransformer2DModel")
    inputs = tiny.make_inputs(2, torch.Generator().manual_seed(0))
    timesteps = [1000.0 - 90.0 * i for i in range(8)]

    def loop():
        with torch.no_grad():
            return [
                tiny.model(
                    **inputs, timestep=torch.tensor([t / 1000.0] * 2) * tiny.timestep_scale, return_dict=False
                )[0]
                for t in timesteps
            ]

    reference = loop()
    forecache.apply(tiny.model, CacheConfig(policy=Verify(threshold=0.0)), num_inference_steps=8)
    cached = loop()
    stats = forecache.stats(tiny.model)
    forecache.remove(tiny.model)
    assert all(torch.equal(a, b) for a, b in zip(reference, cached, strict=True))
    (ctx,) = stats.contexts.values()
    assert "".join(ctx.decisions) == "C" * 8 and ctx.gate_errors == []


def test_bad_fields_name_the_field():
    with pytest.raises(ValueError, match=r"Verify: `probe_blocks` must be an int >= 0, got -1"):
        Verify(probe_blocks=-1)
    with pytest.raises(ValueError, match=r"Verify: `threshold` must be a float in \(0.0, 10.0\], got -0.1"):
        Verify(threshold=-0.1)


def test_checking_the_stack_input_costs_no_block():
    """The stack head observes for `Verify(probe_blocks=0)`: the input sequence itself carries the errors."""
    model = ToyTransformer(None)
    inputs = [torch.full((2, WIDTH), v) for v in accumulated_values()]
    policy = Verify(threshold=0.1, probe_blocks=0)
    outputs, stats = run(model, inputs, CacheConfig(policy=policy, forecaster=Reuse()))
    ctx = stats.contexts["branch0"]
    assert "".join(ctx.decisions) == ACCUMULATED
    assert [e for _, e in ctx.gate_errors] == pytest.approx(
        [0.04, 0.05, 0.03, 0.02, 0.15, 0.0, 0.09], abs=1e-6
    )
    assert [b.calls for b in model.transformer_blocks] == [5, 5, 5]  # no block runs at forecast steps
    assert ctx.executed_units == 15 and ctx.total_units == 30
    for s in (2, 3, 5, 7, 8):  # forecast: the stack input + the reused residual (+3)
        torch.testing.assert_close(outputs[s], inputs[s] + 3.0)


def test_a_config_file_written_with_the_former_name_max_run_still_loads(tmp_path):
    import json

    from forecache.configfile import build_config, load_config

    path = tmp_path / "verify.json"
    entry = {"method": "cache", "params": {"policy": {"type": "verify", "max_run": 3}, "target": "blocks"}}
    path.write_text(json.dumps({"schema_version": 1, "methods": [entry]}))
    assert load_config(path).policy == Verify(max_consecutive=3)
    assert build_config("cache", {"policy": "verify", "max_run": 2}).policy == Verify(max_consecutive=2)
