import math

import pytest

from forecache.eval.knob_search import MATCHED, UNREACHABLE, search
from forecache.eval.methods import Knob, knob_for


def interval_ratio(interval, steps=28, warmup=3, cooldown=1):
    """Compute ratio of a fixed interval after a warm-up: what a TaylorSeer preset schedules."""
    computed = warmup + cooldown + math.ceil((steps - warmup - cooldown) / interval)
    return steps / computed


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, value):
        self.calls.append(value)
        return self.fn(value)


def test_interval_knob_lands_within_tolerance_and_runs_each_setting_once():
    evaluate = Counting(interval_ratio)
    found = search(Knob("interval", values=tuple(range(1, 29))), evaluate, [2, 3, 4, 5])
    assert len(evaluate.calls) == len(set(evaluate.calls)) <= 10
    by_target = {c.target: c for c in found.choices}
    # 28 steps, warm-up 3, cool-down 1: interval 2 gives 1.75x and 3 gives 2.33x, both > 10% from 2x
    assert by_target[2].status == UNREACHABLE
    assert by_target[2].reason == "the ratio jumps from 1.75x (interval=2) to 2.33x (interval=3)"
    assert by_target[2].value == 2 and by_target[2].ratio == pytest.approx(1.75)
    for target in (3, 4, 5):
        choice = by_target[target]
        assert choice.status == MATCHED and abs(choice.ratio / target - 1) <= 0.10, choice
        assert choice.ratio == pytest.approx(interval_ratio(choice.value))
    assert found.evaluated == {v: pytest.approx(interval_ratio(v)) for v in evaluate.calls}


def test_continuous_knob_bisects_onto_each_target():
    evaluate = Counting(lambda t: 1.0 + 8.0 * t**0.8)
    found = search(Knob("threshold", low=0.002, high=4.0, start=0.05), evaluate, [1.5, 2.0, 3.0, 5.0])
    assert all(c.status == MATCHED for c in found.choices), found.choices
    assert all(abs(c.ratio / c.target - 1) <= 0.10 for c in found.choices)
    assert evaluate.calls[0] == 0.05 and len(evaluate.calls) <= 12


def tuner_ratio(asked, steps=28, skip=0.00346):
    """The tuner's reached ratio for an asked one, as measured on the scenes model at 28 steps.

    It counts the most whole computed steps at or over the ratio asked, then keeps that schedule
    when it is within 13 % over the ask (it scored best there), else a partial step lands on the ask.
    """

    def whole(k):
        return steps / (k + (steps - k) * skip)

    k = max((k for k in range(1, steps + 1) if whole(k) >= asked), default=1)
    return whole(k) if whole(k) <= 1.13 * asked else asked * 1.005


def test_a_knob_that_is_the_ratio_tries_each_target_first():
    assert tuner_ratio(3.11) == pytest.approx(3.47, abs=0.01)  # the jumps the scenes model showed
    assert tuner_ratio(5.0) == pytest.approx(5.51, abs=0.01)
    assert tuner_ratio(4.8) == pytest.approx(4.82, abs=0.01)
    knob = Knob("ratio", low=1.2, high=28.0, start=4.0, is_ratio=True)
    evaluate = Counting(tuner_ratio)
    found = search(knob, evaluate, [3, 4, 5])
    assert all(c.status == MATCHED and abs(c.ratio / c.target - 1) <= 0.10 for c in found.choices)
    # 3 and 4 land at once; 5 lands at 5.51 (10.2 % over), then between 4 and 5
    assert evaluate.calls[:3] == [3.0, 4.0, 5.0] and len(evaluate.calls) == 4
    # the same response read as a threshold (start 4, bracketing by x4) takes 7 runs, one of them 16x
    evaluate = Counting(tuner_ratio)
    found = search(Knob("ratio", low=1.2, high=28.0, start=4.0), evaluate, [3, 4, 5])
    assert all(c.status == MATCHED for c in found.choices) and len(evaluate.calls) == 7
    assert 16.0 in evaluate.calls


def test_a_knob_that_is_the_ratio_steps_up_when_the_target_lands_below():
    evaluate = Counting(lambda asked: 0.8 * asked)  # a method that reaches 80 % of what it is asked
    knob = Knob("ratio", low=1.2, high=28.0, start=4.0, is_ratio=True)
    (choice,) = search(knob, evaluate, [4.0]).choices
    assert choice.status == MATCHED and choice.ratio == pytest.approx(4.0)
    assert evaluate.calls == [4.0, 5.0]
    # a target past the knob's range: the range's end once, then "at most"
    evaluate = Counting(lambda asked: 0.9 * asked)
    (choice,) = search(knob, evaluate, [40.0]).choices
    assert choice.status == UNREACHABLE and evaluate.calls == [28.0]
    assert choice.reason == "at most 25.20x (ratio=28.0; ratio in [1.2, 28])"
    with pytest.raises(ValueError, match="`is_ratio` is for continuous knobs"):
        Knob("interval", values=(1, 2), is_ratio=True)


def test_a_capped_knob_is_marked_cannot_reach_with_the_highest_ratio():
    evaluate = Counting(lambda t: min(1.0 + 10.0 * t, 1.27))
    found = search(Knob("threshold", low=0.002, high=4.0, start=0.05), evaluate, [2.0, 3.0])
    assert [c.status for c in found.choices] == [UNREACHABLE, UNREACHABLE]
    assert found.choices[0].reason.startswith("at most 1.27x (threshold=")
    assert found.choices[0].reason.endswith("; threshold in [0.002, 4])")
    assert len(evaluate.calls) <= 5  # stops once the ratio no longer grows over 16x of the knob


def test_a_jump_between_close_settings_is_cannot_reach():
    def evaluate(t):
        return 1.0 if t < 0.3 else 2.6

    knob = Knob("threshold", low=0.002, high=4.0, start=0.05)
    (choice,) = search(knob, evaluate, [2.0], max_evals=12).choices
    assert choice.status == UNREACHABLE and choice.ratio == 2.6
    assert (
        choice.reason.startswith("the ratio jumps from 1.00x (threshold=0.2")
        and "to 2.60x (threshold=0.3" in choice.reason
    )
    # with fewer runs the search says it gave up, and where the target lies
    (choice,) = search(knob, evaluate, [2.0], max_evals=3).choices
    assert choice.reason.startswith("not reached in the runs allowed per target; between 1.00x (threshold=")


def test_choices_keep_the_given_target_order():
    ratios = {"slow": 1.3, "medium": 1.6, "fast": 2.1}
    found = search(Knob("mask", values=("slow", "medium", "fast")), ratios.get, [2.0, 1.5])
    assert [c.target for c in found.choices] == [2.0, 1.5]
    assert [c.value for c in found.choices] == ["fast", "medium"]


def test_failures_propagate():
    def evaluate(value):
        raise RuntimeError("cannot attach")

    with pytest.raises(RuntimeError, match="cannot attach"):
        search(Knob("interval", values=(1, 2, 3)), evaluate, [2.0])


def test_knobs_of_presets_and_peers():
    import forecache

    assert knob_for("taylorseer", forecache.TaylorSeerConfig(), 28).values == tuple(range(1, 29))
    assert knob_for("cg", forecache.ConfidenceGateConfig(threshold=0.2), 28).start == 0.2
    assert knob_for("timeline", forecache.TimelineConfig(), 28).is_ratio
    assert knob_for("tuned", None, 28).is_ratio
    assert not knob_for("cg", forecache.ConfidenceGateConfig(), 28).is_ratio
    assert knob_for("diffusers.fbcache", None, 28).field == "threshold"
    assert knob_for("cachedit.dbcache", None, 28).field == "residual_diff_threshold"
    assert knob_for("diffusers.taylorseer", None, 10).values == tuple(range(1, 11))
    mask = forecache.CacheConfig(policy=forecache.StepMask((True, False, True)))
    with pytest.raises(ValueError, match="StepMask has no knob to match"):
        knob_for("cache", mask, 3)
    with pytest.raises(ValueError, match="`match`: method 'baseline' has no speed knob"):
        knob_for("baseline", None, 28)
