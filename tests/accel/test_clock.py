"""Host reads on the hot path: the scheduler's clock places calls without reading the device.

The clock is used on every device, so `count_host_reads` on this CPU counts exactly the reads a
GPU would stall on.
"""

import warnings

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

import forecache
from forecache import AdamsBashforthConfig, CacheConfig, ConfidenceGateConfig, TaylorSeerConfig
from forecache.accel.clock import ScheduleClock, host_timestep
from forecache.accel.session import session_of
from forecache.reference import load_reference
from tests.fixtures.catalog import build_tiny

STEPS = 20


@pytest.fixture(scope="module")
def flux():
    pipe = load_reference("flux-digits")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def count_host_reads(transformer):
    from forecache.eval.probes import count_host_reads  # the eval extra: not in the floor run

    return count_host_reads(transformer)


def generate(pipe, config, use_clock=True):
    """Return (images, the first context's stats, host reads per transformer call)."""
    forecache.apply(pipe, config)
    session_of(pipe.transformer).clock.trusted = use_clock  # distrusted: counts steps, reads the timestep
    try:
        with count_host_reads(pipe.transformer) as reads:
            generator = torch.Generator().manual_seed(0)
            images = pipe([3, 7], num_inference_steps=STEPS, generator=generator, output_type="pt")
        stats = forecache.stats(pipe)
    finally:
        forecache.remove(pipe)
    first = next(iter(stats.contexts.values()))
    return images.images, first, reads


@pytest.mark.parametrize("config", [TaylorSeerConfig(), AdamsBashforthConfig()], ids=["taylorseer", "ab"])
@pytest.mark.eval
def test_fixed_schedules_read_the_device_once_per_generation(flux, config):
    _, ctx, reads = generate(flux, config)
    assert "F" in ctx.decisions
    # the host copy of the schedule (one transfer when the pipeline sets its timesteps), then nothing
    # the host copy of the schedule, then the clock's check against the real timesteps at the
    # second call (once per clock); the check at the end of the generation is outside the calls
    assert reads.per_call == [1, 1] + [0] * (2 * STEPS - 2) and reads.ops == {"tolist": 2}


@pytest.mark.parametrize("config", [TaylorSeerConfig(), AdamsBashforthConfig()], ids=["taylorseer", "ab"])
@pytest.mark.eval
def test_the_schedule_clock_gives_the_forecasts_of_the_timestep_read(flux, config):
    read_images, read_ctx, read_reads = generate(flux, config, use_clock=False)
    assert read_reads.ops == {"__float__": 2 * STEPS}  # without a clock: one read per call
    clock_images, clock_ctx, _ = generate(flux, config)
    assert clock_ctx.decisions == read_ctx.decisions
    # the pipeline passes timestep / 1000; the clock gives the scheduler's timestep: an affine map,
    # under which the extrapolation weights are the same up to rounding
    diff = float((clock_images - read_images).abs().max())
    assert diff < 1e-5, diff


@pytest.mark.eval
def test_the_gate_reads_once_per_probe_and_nothing_else(flux):
    _, ctx, reads = generate(flux, ConfidenceGateConfig())
    probes = len(ctx.gate_errors)
    assert probes > 5 and ctx.forecast_steps > 0
    assert reads.ops == {"tolist": 2, "__float__": 2 * probes}  # both guidance branches probe


@pytest.mark.eval
def test_recompute_fallback_reads_once_per_forecast_step_reuse_never(flux):
    _, ctx, reads = generate(flux, CacheConfig(fallback="recompute"))
    assert reads.ops == {"tolist": 2, "__bool__": 2 * ctx.forecast_steps}
    _, ctx, reads = generate(flux, CacheConfig(fallback="reuse"))
    assert ctx.forecast_steps > 0 and reads.ops == {"tolist": 2}


@pytest.mark.parametrize("config", [TaylorSeerConfig(), AdamsBashforthConfig()], ids=["taylorseer", "ab"])
@pytest.mark.eval
def test_schedulers_without_a_step_index_are_indexed_by_counted_calls(config):
    pipe = load_reference("dit-digits")  # DDIM: no step_index; guidance batched, one call per step
    pipe.set_progress_bar_config(disable=True)
    assert not hasattr(type(pipe.scheduler), "step_index")
    read_images, read_ctx, read_reads = generate(pipe, config, use_clock=False)
    assert read_reads.ops == {"__float__": STEPS}
    images, ctx, reads = generate(pipe, config)
    assert reads.per_call == [1, 1] + [0] * (STEPS - 2) and reads.ops == {"tolist": 2}
    assert ctx.decisions == read_ctx.decisions
    assert float((images - read_images).abs().max()) < 1e-5


@pytest.mark.eval
def test_counted_calls_with_two_calls_per_step_fall_back_to_reads_without_a_warning():
    from tests.fixtures.sampler import TinyPipeline

    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.scheduler = DDIMScheduler()  # no step_index, and two named calls per step
    pipe.set_progress_bar_config(disable=True)
    with forecache.cached(pipe, TaylorSeerConfig(interval=3, warmup=2)):
        with count_host_reads(pipe.transformer) as reads, warnings.catch_warnings():
            warnings.simplefilter("error")  # the expected fallback is silent
            latents = pipe(num_inference_steps=12, guidance_scale=3.0).latents
        stats = forecache.stats(pipe)
    # call 1: the schedule's copy; call 2: the failed check, then its timestep read; the state
    # restarts at call 2 and every call from then on reads its timestep
    assert reads.per_call[:3] == [1, 2, 1] and reads.ops == {"tolist": 2, "__float__": 23}
    assert {k: len(c.decisions) for k, c in stats.contexts.items()} == {"uncond": 12, "cond": 11}
    assert "F" in stats.contexts["cond"].decisions and torch.isfinite(latents).all()


@pytest.mark.eval
def test_a_bare_transformer_loop_passes_its_scheduler():
    tiny = build_tiny("FluxTransformer2DModel")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(12)
    scheduler.set_begin_index(0)
    with forecache.cached(tiny.model, TaylorSeerConfig(interval=3, warmup=2), scheduler=scheduler):
        inputs = tiny.make_inputs(1, torch.Generator().manual_seed(0))
        with count_host_reads(tiny.model) as reads, torch.no_grad():
            for t in scheduler.timesteps:
                out = tiny.model(**inputs, timestep=t.expand(1) * tiny.timestep_scale, return_dict=False)[0]
                latents = scheduler.step(out, t, inputs["hidden_states"], return_dict=False)[0]
                inputs["hidden_states"] = latents
        stats = forecache.stats(tiny.model)
    # the scheduler also gives the step count, so the cool-down is placed without num_inference_steps
    assert "".join(stats.contexts["branch0"].decisions) == "CCCFFCFFCFFC"
    assert reads.ops == {"tolist": 2}


@pytest.mark.eval
def test_a_clock_that_does_not_follow_the_calls_is_distrusted_with_a_warning():
    tiny = build_tiny("FluxTransformer2DModel")
    stuck = FlowMatchEulerDiscreteScheduler(shift=3.0)  # given to apply, but never stepped
    stuck.set_timesteps(12)
    loop = FlowMatchEulerDiscreteScheduler(shift=3.0)
    loop.set_timesteps(12)
    inputs = tiny.make_inputs(1, torch.Generator().manual_seed(0))
    with forecache.cached(tiny.model, TaylorSeerConfig(interval=3, warmup=2), scheduler=stuck):
        warns = pytest.warns(UserWarning, match="step index does not follow")
        with warns, count_host_reads(tiny.model) as reads:
            for t in loop.timesteps:
                tiny.model(**inputs, timestep=t.expand(1) * tiny.timestep_scale, return_dict=False)
        stats = forecache.stats(tiny.model)
    # the second call restarted the state; from there every call read its timestep
    assert list(stats.contexts) == ["branch0"]
    assert "".join(stats.contexts["branch0"].decisions) == "CCCFFCFFCFF"  # 11 calls of a 12-step plan
    assert reads.ops == {"tolist": 2, "__float__": 11}


def test_apply_refuses_a_scheduler_that_is_not_one():
    tiny = build_tiny("FluxTransformer2DModel")
    with pytest.raises(TypeError, match=r"`scheduler` must be a diffusers scheduler or None, got list"):
        forecache.apply(tiny.model, TaylorSeerConfig(), scheduler=[1.0, 0.5])


def test_clock_follows_step_and_begin_index_and_new_schedules():
    scheduler = FlowMatchEulerDiscreteScheduler()
    clock = ScheduleClock(lambda: scheduler)
    scheduler.set_timesteps(10)
    expected = scheduler.timesteps.tolist()
    assert clock.num_steps() == 10 and clock.timestep() == pytest.approx(expected[0])
    scheduler.set_begin_index(4)
    assert clock.timestep() == pytest.approx(expected[4])
    scheduler._step_index = 7
    assert clock.timestep() == pytest.approx(expected[7])
    scheduler._step_index = 10  # past the end: the caller reads the tensor instead
    assert clock.timestep() is None
    scheduler.set_timesteps(5)  # a new tensor: copied again
    assert clock.num_steps() == 5 and clock.timestep() == pytest.approx(scheduler.timesteps[0].item())
    assert ScheduleClock(lambda: DDIMScheduler()).timestep() is None


def test_host_timestep_reads_numbers_and_host_tensors_directly():
    assert host_timestep(0.25, None) == 0.25
    assert host_timestep(torch.tensor([500.0, 500.0]), None) == 500.0
    with pytest.raises(ValueError, match="without a `timestep`"):
        host_timestep(None, None)


class _StubClock:
    """A scheduler clock at a fixed index of a 12-step schedule."""

    lost_trust = False
    generation = 1

    def __init__(self, index):
        self._index = index

    def follow(self):
        pass

    def index(self):
        return self._index

    def num_steps(self):
        return 12

    def verify(self):
        return True


def _decisions(session, calls, **context):
    from forecache.accel.policies import Decision

    out = []
    for i in range(calls):
        kwargs = {k: v(i) if callable(v) else v for k, v in context.items()}
        ctx = session.begin_call(1000.0 - i, "cond", **kwargs)
        out.append("F" if ctx.decision is Decision.FORECAST else "C")
        session.end_call(ctx)
    return "".join(out)


@pytest.mark.parametrize(
    ("clock_index", "context", "calls", "expected"),
    [
        # the scheduler's frame: joined at index 6 of 12 (Wan 2.2's second expert) -> 6 steps left
        (6, {"context_steps": None}, 6, "CCCFCC"),
        # the pipeline's loop frame wins when it tells: 6 steps from loop index 0 (an img2img loop
        # over a sliced schedule whose scheduler index starts at 6)
        (6, {"context_steps": 6, "context_index": lambda i: i}, 6, "CCCFCC"),
    ],
)
def test_cooldown_is_placed_at_the_end_of_the_steps_a_context_sees(clock_index, context, calls, expected):
    from forecache import CacheConfig, Interval
    from forecache.accel.session import CacheSession
    from forecache.layouts.registry import resolve_layout

    config = CacheConfig(policy=Interval(every=2, warmup=2, cooldown=1))
    model = build_tiny("FluxTransformer2DModel").model
    session = CacheSession(model, config, resolve_layout(model, "blocks").layout)
    try:
        session.clock = _StubClock(clock_index)
        assert _decisions(session, calls, **context) == expected
    finally:
        session.close()
