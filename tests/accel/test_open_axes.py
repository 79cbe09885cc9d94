"""A forecaster, a policy and a target defined only here work end to end: apply, config files, the CLI.

This is the proof that the axes are open: nothing in forecache names these classes, and nothing
in its engine switches on a target name or a policy class.
"""

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import forecache
from forecache.accel.forecasters import TensorHistory
from forecache.accel.forecasters.adams_bashforth import RingHistory
from forecache.accel.policies import Decision
from forecache.accel.streams import StreamIO
from forecache.accel.targets import BlockRole
from forecache.accel.targets.hooks import BLOCK_HOOK, StackBlockHook
from tests.fixtures.sampler import TinyPipeline

STEPS = 10


@forecache.register_forecaster("test-damped")
@dataclass(frozen=True)
class Damped:
    """Linear extrapolation of the last two computed features, damped by `factor` (0: reuse, 1: linear)."""

    factor: float = 0.5
    coordinate = "step"

    def make_history(self, dtype, memo, track_peak=False):
        return DampedHistory(self.factor, dtype, memo, track_peak)


class DampedHistory(RingHistory):
    def __init__(self, factor, dtype, memo, track_peak):
        super().__init__(2, dtype, memo, track_peak)
        self.factor = factor

    def predict(self, x, guard=None, addend=None):
        if len(self.xs) < 2:
            return self.combine((1.0,), 0, guard, addend)
        (x0, x1) = self.xs
        c = self.factor * (x - x1) / (x1 - x0)
        return self.combine((-c, 1.0 + c), 1, guard, addend)


@forecache.register_policy("test-alternate")
@dataclass(frozen=True)
class Alternate:
    """Compute the first `warmup` steps, then every other step."""

    warmup: int = 2

    @property
    def probe_blocks(self):
        return 0

    def decide(self, step, num_steps, run_length):
        return Decision.COMPUTE if step < self.warmup or step % 2 == 0 else Decision.FORECAST


class _ResidualTail(BlockRole):
    """Records the second half's residual when computed, adds its forecast otherwise."""

    def computed(self, ctx, io, output):
        io.learn(output)
        ctx.site("half").update(io.outputs(output)[0] - ctx.target_state["input"], ctx.x)

    def forecast(self, ctx, io, run, args, kwargs):
        streams = io.inputs(args, kwargs)
        streams[0] = ctx.site("half").predict(ctx.x, addend=streams[0])
        return io.rebuild(streams)


class _PassThrough(BlockRole):
    def computed(self, ctx, io, output):
        io.learn(output)

    def forecast(self, ctx, io, run, args, kwargs):
        return io.rebuild(io.inputs(args, kwargs))


@forecache.register_target("test-second-half")
class SecondHalf:
    """Run the first half of the blocks at every step; forecast the image-stream residual of the rest."""

    unit = "block"
    allows_fullgraph = True

    def plan(self, blocks, probe_blocks, model):
        self.split = max(probe_blocks, len(blocks) // 2)
        return [1] * len(blocks)

    def forecast_units(self, units_per_block, probe_blocks):
        return sum(units_per_block[: self.split])  # the first half runs at every step

    def attach(self, engine, blocks, register):
        for block in blocks[self.split :]:
            last = block.index == len(blocks) - 1
            role = _ResidualTail() if last else _PassThrough()
            io = StreamIO(block.layout, type(block.module).forward)
            hook = StackBlockHook(engine, io, role, head=block.index == self.split)
            register(block.module, hook, BLOCK_HOOK)

    def new_context_state(self):
        return {}

    def enter_stack(self, ctx, streams):
        if ctx.decision is Decision.COMPUTE:
            ctx.target_state["input"] = streams[0].detach().clone()


CONFIG = forecache.CacheConfig(policy=Alternate(), forecaster=Damped(0.5), target="test-second-half")


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")  # 2 double-stream + 3 single-stream blocks
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_damped_forecaster_closed_form():
    history = Damped(factor=1.0).make_history(None, {})
    assert isinstance(history, TensorHistory)
    for x in (0.0, 1.0):
        history.update(torch.full((3,), 2.0 + 3.0 * x), x)
    assert torch.equal(history.predict(3.0), torch.full((3,), 11.0))  # linear: exact
    reuse = Damped(factor=0.0).make_history(None, {})
    for x in (0.0, 1.0):
        reuse.update(torch.full((3,), x), x)
    assert torch.equal(reuse.predict(5.0), torch.ones(3))


def test_custom_axes_run_end_to_end_through_apply(pipe):
    before = pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0)).latents
    forecache.apply(pipe, CONFIG)
    cached = pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0)).latents
    stats = forecache.stats(pipe)
    forecache.remove(pipe)
    after = pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0)).latents
    ctx = stats.contexts["branch0"]
    assert "".join(ctx.decisions) == "CCCFCFCFCF"
    # 5 blocks, split at 2: 2 always run, 3 only at the 6 computed steps
    assert ctx.executed_units == 2 * STEPS + 3 * 6 and ctx.total_units == 5 * STEPS
    assert torch.isfinite(cached).all() and not torch.equal(cached, before)
    error = (cached - before).abs().max().item()
    assert error < 0.5 * before.abs().max().item(), f"forecast drifted: max error {error}"
    assert torch.equal(after, before)  # bitwise after removal


@pytest.mark.eval
def test_custom_axes_round_trip_through_a_config_file(tmp_path: Path):
    from forecache.eval.methods import load_methods, parse_method, save_methods

    spec = parse_method(
        "cache:policy=test-alternate,forecaster=test-damped,factor=0.25,target=test-second-half"
    )
    assert spec.config == dataclasses.replace(CONFIG, forecaster=Damped(0.25))
    path = save_methods([spec], tmp_path / "custom.json")
    document = json.loads(path.read_text())
    params = document["methods"][0]["params"]
    assert params["policy"] == {"type": "test-alternate", "warmup": 2}
    assert params["forecaster"] == {"type": "test-damped", "factor": 0.25}
    assert params["target"] == "test-second-half"
    (loaded,) = load_methods(path)
    assert loaded.config == spec.config


@pytest.mark.eval
def test_custom_axes_run_through_the_cli(tmp_path: Path, capsys):
    from forecache import cli
    from tests.fixtures.sampler import register_tiny_source

    register_tiny_source()
    spec = "cache:policy=test-alternate,forecaster=test-damped,target=test-second-half"
    code = cli.main(
        ["bench", "--model", "tiny:FluxTransformer2DModel", "--methods", spec, "--steps", "8", "--seeds", "0",
         "--batch-size", "1", "--repeats", "1", "--no-progress", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    (row,) = [r for r in results["methods"] if r["label"] == spec]
    assert row.get("error") is None
    assert re.fullmatch(r"CCCFCFCF", "".join(row["decisions"]["branch0"]))


def test_optional_protocol_members_get_their_declared_defaults():
    policy = Alternate()
    assert (policy.observes_stack, policy.reduce_across_ranks) == (False, False)
    assert policy.judge(0.0, ()) is Decision.COMPUTE
    target = SecondHalf()
    assert (target.chains_blocks, target.run_call(None, lambda: "ran")) == (False, "ran")
    assert target.new_context_state() == {}  # its own member is kept


def test_unknown_names_list_the_registered_ones():
    targets = r"`target` must be one of \[.*'blocks'.*'test-second-half'.*\], got 'nope'"
    with pytest.raises(ValueError, match=targets):
        forecache.CacheConfig(target="nope")
    with pytest.raises(TypeError, match="`policy` must be a registered policy"):
        forecache.CacheConfig(policy="interval")
    with pytest.raises(TypeError, match=r"`forecaster` must be a registered forecaster \(.*Damped\)"):
        forecache.CacheConfig(forecaster="taylor")
    with pytest.raises(ValueError, match="already registered to Damped"):
        forecache.register_forecaster("test-damped")(type("Other", (), {}))
