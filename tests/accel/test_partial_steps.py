"""Partial steps: a computed step that runs every block of the stack but a span, whose residual it forecasts.

On the shipped flux-digits model (2 double + 4 single blocks, 12 steps): which blocks run, the
FLOPs a partial step runs, the value it puts after the span, its stats, the refusals, and the
tuner's use of the budget a ratio leaves between whole step counts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forecache
from forecache.accel.forecasters import Reuse
from forecache.accel.policies import Decision, Timeline
from forecache.calibrate.flops import count_flops
from forecache.calibrate.partial import middle, partial_ratio, saving_needed, spans_for, spread
from forecache.configfile import load_config, save_config
from forecache.reference import load_reference

STEPS = 12
CALL = {"class_labels": [3, 7], "num_inference_steps": STEPS}
FULL = [0, 4, 8]
PARTIAL = 6
SPAN = (1, 4)  # the second double block and the first two single blocks forecast


@pytest.fixture(scope="module")
def flux(one_thread):
    pipe = load_reference("flux-digits")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def blocks_of(pipe):
    transformer = pipe.transformer
    return [*transformer.transformer_blocks, *transformer.single_transformer_blocks]


def generate(pipe, config=None):
    def call():
        return pipe(**CALL, generator=torch.Generator().manual_seed(0), output_type="np").images

    if config is None:
        return call()
    with forecache.cached(pipe, config):
        return call()


def partial_config(forecaster=None):
    policy = Timeline.from_steps(FULL, STEPS, [PARTIAL], SPAN)
    return forecache.CacheConfig(policy=policy, forecaster=forecaster or Reuse(), target="blocks")


def test_timeline_partial_steps_are_computed_steps_and_hold_their_positions():
    policy = Timeline.from_steps([0, 9, 18, 27], 28, [4], (2, 7))
    assert policy.partial == (4 / 27,) and policy.partial_blocks == (2, 7)
    decided = [policy.decide(step, 28, 0) for step in range(28)]
    assert [s for s, d in enumerate(decided) if d is Decision.COMPUTE] == [0, 4, 9, 18, 27]
    assert [s for s in range(28) if policy.is_partial(s, 28)] == [4]
    assert sorted(policy.partial_steps(55)) == [8]  # round(4 / 27 * 54)
    assert not policy.is_partial(4, 3)  # at 3 steps it falls on a full step: full
    assert Timeline.from_steps([0, 5], 10).partial_blocks == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"partial": (0.5,)}, "partial_blocks"),  # partial steps need a span
        ({"partial_blocks": (1, 3)}, "partial_blocks"),  # a span needs partial steps
        ({"partial": (0.5,), "partial_blocks": (3, 3)}, "partial_blocks"),
        ({"partial": (0.5,), "partial_blocks": (-1, 2)}, "partial_blocks"),
        ({"partial": (0.5,), "partial_blocks": (1, 2, 3)}, "partial_blocks"),
        ({"partial": (0.0,), "partial_blocks": (1, 2)}, "partial"),  # step 0 is always full
        ({"partial": (0.4,), "partial_blocks": (1, 2)}, "partial"),  # also a full position
        ({"partial": (0.6, 0.5), "partial_blocks": (1, 2)}, "partial"),
    ],
)
def test_timeline_refuses_bad_partial_fields_by_name(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        Timeline((0.0, 0.4, 1.0), 10, **kwargs)


def test_a_partial_step_runs_every_block_but_its_span_and_their_flops_only(flux):
    blocks = blocks_of(flux)
    with count_flops(flux.transformer, blocks) as full_count:
        generate(flux)
    with count_flops(flux.transformer, blocks) as count:
        generate(flux, partial_config())
    one = full_count.per_block[0]
    per_step = len(count.per_block) // STEPS  # the two guidance branches
    assert per_step == 2 and sum(one) == full_count.inside[0]

    def at(step):
        return count.per_block[step * per_step : (step + 1) * per_step]

    assert at(PARTIAL) == [[0 if SPAN[0] <= i < SPAN[1] else flops for i, flops in enumerate(one)]] * 2
    assert all(at(step) == [one] * 2 for step in FULL)
    assert all(sum(map(sum, at(step))) == 0 for step in range(STEPS) if step not in [*FULL, PARTIAL])
    assert count.per_call[2 * PARTIAL] == full_count.per_call[0] - sum(one[SPAN[0] : SPAN[1]])


def test_stats_show_the_partial_step_and_its_units(flux):
    with forecache.cached(flux, partial_config()):
        flux(**CALL, generator=torch.Generator().manual_seed(0), output_type="np")
        context = forecache.stats(flux).contexts["cond"]
    assert "".join(context.decisions) == "CFFFCFPFCFFF"
    assert (context.computed_steps, context.partial_steps, context.forecast_steps) == (3, 1, 8)
    span = SPAN[1] - SPAN[0]
    assert context.executed_units == 3 * 6 + (6 - span) and context.total_units == STEPS * 6


def test_the_partial_step_adds_the_span_residual_of_the_last_full_step(flux):
    """With `Reuse`, the input of the first block after the span is its input at the span's start
    plus the span's residual at step 4 (the last full step), exactly."""
    blocks = blocks_of(flux)
    seen: dict[str, list[torch.Tensor]] = {"start": [], "end": []}

    def keep(name):
        def hook(module, args, kwargs):
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            seen[name].append(hidden.detach().clone())

        return hook

    handles = [
        blocks[SPAN[0]].register_forward_pre_hook(keep("start"), with_kwargs=True),
        blocks[SPAN[1]].register_forward_pre_hook(keep("end"), with_kwargs=True),
    ]
    try:
        generate(flux, partial_config())
    finally:
        for handle in handles:
            handle.remove()
    # both blocks are called at every step (a pass-through too), once per guidance branch
    start, end = seen["start"], seen["end"]
    assert len(start) == len(end) == 2 * STEPS
    for branch in range(2):
        last_full, partial = 2 * FULL[1] + branch, 2 * PARTIAL + branch
        expected = start[partial] + (end[last_full] - start[last_full])
        torch.testing.assert_close(end[partial], expected, rtol=0, atol=1e-5)
        assert not torch.allclose(end[partial], end[last_full])  # not a copy of step 4's value


def test_a_partial_step_lies_between_forecasting_and_computing_the_step(flux):
    """Step 9 after full steps 0, 4, 8 (Reuse): forecast, partial (last three blocks forecast), computed."""
    reference = generate(flux)

    def psnr(full, partial=(), span=(0, 0)):
        policy = Timeline.from_steps(full, STEPS, list(partial), span)
        images = generate(flux, forecache.CacheConfig(policy=policy, forecaster=Reuse()))
        return 10 * np.log10(1.0 / float(np.mean((np.asarray(images, np.float64) - reference) ** 2)))

    forecast, partial, computed = psnr(FULL), psnr(FULL, [9], (3, 6)), psnr([*FULL, 9])
    assert forecast + 1.0 <= partial <= computed + 0.5, (forecast, partial, computed)  # 27.6, 29.4
    np.testing.assert_array_equal(generate(flux), reference)  # bitwise after removal


def test_targets_without_partial_steps_and_spans_past_the_stack_are_refused(flux):
    policy = Timeline.from_steps(FULL, STEPS, [PARTIAL], SPAN)
    with pytest.raises(ValueError, match=r"partial steps .*\['blocks'\].*target='output'"):
        forecache.apply(flux, forecache.CacheConfig(policy=policy, target="output"))
    for span in [(0, 6), (5, 7)]:
        too_wide = Timeline.from_steps(FULL, STEPS, [PARTIAL], span)
        with pytest.raises(ValueError, match=r"`partial_blocks` must lie within the 6 blocks"):
            forecache.apply(flux, forecache.CacheConfig(policy=too_wide))
    with pytest.raises(ValueError, match="not applied"):  # nothing left applied
        forecache.stats(flux)


def test_partial_steps_round_trip_through_a_config_file(tmp_path):
    config = partial_config()
    assert load_config(save_config(config, tmp_path / "partial.json")) == config
    assert load_config(save_config(config, tmp_path / "partial.yaml")) == config


def test_span_helpers():
    assert spans_for([1.0] * 6, 2.5) == [(0, 3), (1, 4), (2, 5), (3, 6)]
    assert spans_for([1.0] * 6, 6.0) == []  # a span must leave a block to run
    assert spans_for([1.0] * 6, 0.0) == []  # nothing to save: no partial step
    assert spans_for([2.0, 1.0, 1.0], 1.5) == [(0, 1), (1, 3)]
    assert middle([(0, 3), (1, 4), (2, 5), (3, 6)], 6) == (1, 4)
    assert spread([(i, i + 1) for i in range(10)], 3) == [(0, 1), (4, 5), (9, 10)]
    assert spread([(0, 1), (1, 2)], 5) == [(0, 1), (1, 2)]
    need = saving_needed(28, 4, 100.0, 0.3, 6.0)
    assert partial_ratio(28, 4, 100.0, 0.3, need) == pytest.approx(6.0)
    assert partial_ratio(28, 4, 100.0, 0.3, 50.0) == pytest.approx(28 * 100 / (4 * 100 + 50 + 23 * 0.3))


def test_the_tuner_spends_the_budget_a_ratio_leaves_on_a_partial_step(flux):
    """12 steps at 3x: 4 full steps are 2.99x, so 3 full steps (4x) leave most of a step unused."""
    call = {"class_labels": [3, 7], "num_inference_steps": STEPS}
    whole = forecache.tune(flux, call, ratio=3.0, trials=3, partial=False, progress=False)
    result = forecache.tune(flux, call, ratio=3.0, trials=3, progress=False)
    assert not whole.chosen.partial and len(whole.chosen.computed) == 3
    chosen = result.chosen
    tried = [c for c in result.candidates if c.partial]
    assert len(tried) >= 3 and all(3.0 <= c.ratio < whole.chosen.ratio for c in tried)
    assert chosen.psnr_db >= whole.chosen.psnr_db  # the best verified, partial ones among them
    best_partial = max(tried, key=lambda c: c.psnr_db)
    assert best_partial.psnr_db >= whole.chosen.psnr_db + 3.0, (best_partial.psnr_db, whole.chosen.psnr_db)
    # the ratio it reports is the one the FLOPs counter measures
    with count_flops(flux.transformer) as full_count:
        generate(flux)
    with count_flops(flux.transformer) as count:
        generate(flux, best_partial.config(STEPS, "blocks"))
    assert full_count.total / count.total == pytest.approx(best_partial.ratio, rel=1e-3)
    assert "P" in result.report() and "partial" in result.report()
