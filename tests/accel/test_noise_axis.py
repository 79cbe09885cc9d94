"""Computed steps placed on the noise scale (`Shaped(axis="noise")`): the clock's levels, policy, engine."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import forecache
from forecache.accel.clock import ScheduleClock
from forecache.accel.forecasters import Damped, Reuse, Taylor
from forecache.accel.policies import Decision, Shaped
from forecache.accel.policies.timeline import shaped_levels, shaped_steps
from tests.fixtures.catalog import build_tiny


def schedule_levels(shift, steps):
    """The levels of FluxPipeline's schedule: sigmas 1 .. 1/steps, shifted by the scheduler."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps).tolist())
    timesteps = scheduler.timesteps.tolist()
    return tuple(t / timesteps[0] for t in timesteps)


def computed(policy, levels):
    return [step for step in range(len(levels)) if policy.decide_on(step, levels, 0) is Decision.COMPUTE]


def test_the_clock_gives_each_steps_level_from_its_host_copy():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    clock = ScheduleClock(lambda: scheduler)
    scheduler.set_timesteps(10)
    assert clock.levels(0, 10) is None  # no host copy before the generation's first placed call
    clock.timestep()
    timesteps = scheduler.timesteps.tolist()
    assert clock.levels(0, 10) == pytest.approx([t / timesteps[0] for t in timesteps])
    assert clock.levels(4, 6) == pytest.approx([t / timesteps[4] for t in timesteps[4:]])  # a second expert
    assert clock.levels(4, 7) is None and clock.levels(0, 0) is None  # past the end, nothing asked
    clock.trusted = False
    assert clock.levels(0, 10) is None
    rising = ScheduleClock(lambda: scheduler)
    rising._host = [0.0, 250.0, 500.0]
    assert rising.levels(0, 3) is None  # timesteps that do not fall: the step axis is used


def test_on_an_unshifted_schedule_the_noise_axis_spaces_like_the_step_axis():
    levels = schedule_levels(1.0, 28)
    # levels fall by 1/28 a step: the targets (1 - i/7) ** 1 land on every 4th step, the last forecast
    assert computed(Shaped(ratio=4.0, shape=1.0, axis="noise"), levels) == [0, 4, 8, 12, 16, 20, 24]
    assert len(shaped_levels(4.0, 1.0, levels)) == 7 == round(28 / 4.0)


def test_a_shifted_schedule_gets_fewer_early_steps_at_the_same_ratio():
    flat, shifted = schedule_levels(1.0, 28), schedule_levels(3.0, 28)
    policy = Shaped(ratio=4.0, shape=1.0, axis="noise")
    # shift 3 keeps the level above 0.75 for the first 11 steps: one computed step there, not three;
    # its last levels lie far apart (0.19, 0.10), so the last two targets take the free steps 25, 26
    assert computed(policy, shifted) == [0, 9, 15, 19, 22, 25, 26]
    assert len(computed(policy, flat)) == 7
    assert computed(policy, schedule_levels(3.0, 2)) == [0]
    assert computed(policy, schedule_levels(3.0, 3)) == [0, 1]


def test_lead_steps_take_the_place_of_the_last_ones_at_the_same_count():
    levels = schedule_levels(1.0, 28)
    assert computed(Shaped(ratio=5.5, shape=1.0, axis="noise"), levels) == [0, 6, 11, 17, 22]
    assert computed(Shaped(ratio=5.5, shape=1.0, axis="noise", lead=2), levels) == [0, 1, 6, 11, 17]
    assert computed(Shaped(ratio=5.5, shape=1.0, axis="noise", lead=3), levels) == [0, 1, 2, 6, 11]
    assert sorted(shaped_steps(5.5, 1.0, 28)) == [0, 7, 14, 20, 27]  # the step axis keeps the last step
    assert sorted(shaped_steps(5.5, 1.0, 28, 2)) == [0, 1, 7, 14, 20]
    assert computed(Shaped(ratio=2.0, axis="noise", lead=9), schedule_levels(1.0, 6)) == [0, 1, 2]
    config = forecache.TimelineConfig(ratio=5.5, lead=2, order=0)
    assert config.policy == Shaped(ratio=5.5, shape=1.0, axis="noise", lead=2)
    assert config.forecaster == Taylor(order=0)
    with pytest.raises(ValueError, match=r"Shaped: `lead` must be a number in \[1, 1000.0\], got 0"):
        Shaped(lead=0)
    with pytest.raises(ValueError, match=r"Shaped: `lead` must be a number in \[1, 1000.0\], got nan"):
        Shaped(lead=float("nan"))
    with pytest.raises(TypeError, match=r"Shaped: `lead` must be a number >= 1, got True"):
        Shaped(lead=True)


def test_a_fractional_lead_adds_a_partial_step_counted_as_its_share():
    levels = schedule_levels(1.0, 28)
    policy = Shaped(ratio=5.0, shape=1.0, axis="noise", lead=1.5)
    # 28 / 5 = 5.6 steps: the partial step 1 counts as half of one, so the spread keeps its 5 full steps
    assert computed(policy, levels) == [0, 1, 6, 11, 17, 22]
    assert [step for step in range(28) if policy.is_partial(step, 28)] == [1]
    assert computed(Shaped(ratio=5.0, shape=1.0, axis="noise"), levels) == [0, 5, 9, 14, 19, 23]  # 6 full
    fifty = schedule_levels(1.0, 50)  # 50 / 5 - 0.5 = 9.5: a tie goes to the faster schedule, 9 full steps
    assert len(computed(policy, fifty)) == 10 and computed(policy, fifty)[:2] == [0, 1]
    assert sorted(shaped_steps(5.0, 1.0, 28, 1.5)) == [0, 1, 7, 14, 20, 27]  # the step axis alike
    assert computed(Shaped(ratio=2.0, axis="noise", lead=9.5), schedule_levels(1.0, 6)) == [0, 1, 2]
    # the partial step runs that share of the blocks, the first and last ones, and forecasts the middle
    spans = [Shaped(lead=1.5).partial_span(n) for n in (12, 6, 5, 2, 1)]
    assert spans == [(3, 9), (1, 4), (1, 4), (0, 1), (0, 0)]
    assert Shaped(lead=2.25).partial_span(12) == (1, 10) and Shaped(lead=2).partial_span(12) == (0, 0)
    assert Shaped(lead=2.25).is_partial(2, 28) and not Shaped(lead=2).is_partial(2, 28)


def test_the_step_axis_decides_as_before_with_or_without_levels():
    levels = schedule_levels(3.0, 50)
    policy = Shaped(ratio=5.5, shape=1.3)
    for step in range(50):
        assert policy.decide_on(step, levels, 0) is policy.decide(step, 50, 0)
    with pytest.raises(ValueError, match=r"Shaped: `axis` must be one of \['step', 'noise'\], got 'sigma'"):
        Shaped(axis="sigma")


@pytest.mark.parametrize("lead", [1, 2, 1.5], ids=["lead-1", "lead-2", "lead-1.5"])
@pytest.mark.parametrize("scheduler_given", [True, False], ids=["scheduler", "no-scheduler"])
def test_the_engine_places_the_steps_on_the_schedule_it_follows(scheduler_given, lead):
    tiny = build_tiny("FluxTransformer2DModel")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 20, 20).tolist())
    scheduler.set_begin_index(0)
    policy = Shaped(ratio=4.0, shape=1.0, axis="noise", lead=lead)
    config = forecache.CacheConfig(policy=policy, forecaster=Taylor(order=1), target="blocks")
    inputs = tiny.make_inputs(1, torch.Generator().manual_seed(0))
    with forecache.cached(tiny.model, config, scheduler=scheduler if scheduler_given else None):
        with torch.no_grad():
            for t in scheduler.timesteps:
                out = tiny.model(**inputs, timestep=t.expand(1) * tiny.timestep_scale, return_dict=False)[0]
                latents = scheduler.step(out, t, inputs["hidden_states"], return_dict=False)[0]
                inputs["hidden_states"] = latents
        decisions = "".join(forecache.stats(tiny.model).contexts["branch0"].decisions)
    if scheduler_given:
        expected = computed(policy, schedule_levels(3.0, 20))
    else:  # no schedule known: the step axis over the 50 steps `Shaped` assumes
        expected = sorted(step for step in range(20) if policy.decide(step, None, 0) is Decision.COMPUTE)
    assert [i for i, c in enumerate(decisions) if c in "CP"] == expected
    assert len(expected) == 5 or not scheduler_given
    first = {1: "CF", 2: "CC", 1.5: "CP"}[lead]  # a fractional lead's step 1 is partial
    assert decisions[:2] == first and decisions.count("P") == (lead == 1.5)


def test_a_config_file_keeps_the_axis(tmp_path):
    from forecache.configfile import load_config, save_config

    config = forecache.CacheConfig(policy=Shaped(ratio=4.0, shape=0.9, axis="noise"), forecaster=Taylor())
    assert load_config(save_config(config, tmp_path / "noise.json")) == config
    lead = forecache.CacheConfig(policy=Shaped(ratio=4.0, axis="noise", lead=2), forecaster=Reuse())
    assert load_config(save_config(lead, tmp_path / "lead.json")) == lead
    default = forecache.TimelineConfig()  # a partial lead and a damped slope
    assert load_config(save_config(default, tmp_path / "default.json")) == default
    earlier = tmp_path / "earlier.json"  # a file written before the axis existed
    earlier.write_text(
        '{"schema_version": 1, "methods": [{"method": "cache", "params": {"policy": '
        '{"type": "shaped", "ratio": 5.5, "shape": 1.3}, "forecaster": {"type": "taylor", "order": 2}}}]}'
    )
    assert load_config(earlier).policy == Shaped(ratio=5.5, shape=1.3, axis="step")


def test_timeline_config_spreads_its_steps_over_the_noise_levels():
    config = forecache.TimelineConfig()
    assert config.policy == Shaped(ratio=5.0, shape=1.0, axis="noise", lead=1.5)
    assert config.forecaster == Damped((0.0, 1.0, 0.8))  # the full slope across the lead steps
    before = forecache.TimelineConfig(ratio=5.5, lead=1)
    assert before.policy == Shaped(ratio=5.5, shape=1.0, axis="noise")
    assert before.forecaster == Taylor(order=1)
    former = forecache.TimelineConfig(ratio=5.5, shape=1.3, order=2, axis="step", lead=1)
    assert former.policy == Shaped(ratio=5.5, shape=1.3) and former.forecaster == Taylor(order=2)
    # a target that cannot run part of the stack gets no partial step
    modules = forecache.TimelineConfig(target="modules")
    assert modules.policy.lead == 1.0 and modules.forecaster == Taylor(order=1)
    assert forecache.TimelineConfig(lead=2).forecaster == Damped((0.0, 1.0, 0.8))
    assert forecache.TimelineConfig(lead=3.5).forecaster == Damped((0.0, 1.0, 1.0, 1.0, 0.8))
    assert forecache.TimelineConfig(order=2).forecaster == Taylor(order=2)
