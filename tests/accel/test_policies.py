from forecache.accel.policies import ConfidenceGate, Decision, Interval, StepMask


def letters(policy, num_steps, run_lengths=None):
    out = []
    run = 0
    for step in range(num_steps):
        d = policy.decide(step, num_steps, run)
        out.append(d.value[0].upper())
        run = run + 1 if d is not Decision.COMPUTE else 0
    return "".join(out)


def test_interval_schedule_with_warmup_and_cooldown():
    assert letters(Interval(every=3, warmup=2, cooldown=2), 12) == "CCCFFCFFCFCC"
    assert letters(Interval(every=1, warmup=1, cooldown=0), 5) == "CCCCC"


def test_interval_without_known_step_count_has_no_cooldown():
    policy = Interval(every=2, warmup=1, cooldown=3)
    assert [policy.decide(s, None, 0) for s in (8, 9)] == [Decision.FORECAST, Decision.COMPUTE]


def test_step_mask_and_steps_past_its_end():
    policy = StepMask((True, False, False, True, False))
    assert letters(policy, 7) == "CFFCFCC"


def test_gate_probes_between_forced_steps_and_caps_runs():
    policy = ConfidenceGate(max_consecutive=2, warmup=2, cooldown=1)
    assert letters(policy, 8) == "CCPPCPPC"
    judged = [policy.judge(error, (0.09, 0.09)) for error in (0.05, 0.2, float("nan"))]
    assert judged == [Decision.FORECAST, Decision.COMPUTE, Decision.COMPUTE]  # each step alone


def test_timeline_gives_back_the_tuned_steps_and_the_same_positions_elsewhere():
    from forecache.accel.policies import Timeline

    tuned = [0, 3, 8, 14, 20, 27]
    policy = Timeline.from_steps(tuned, 28)
    assert letters(policy, 28) == "".join("C" if i in tuned else "F" for i in range(28))
    assert sorted(policy.computed_steps(50)) == [0, 5, 15, 25, 36, 49]  # round(i / 27 * 49)
    assert sorted(policy.computed_steps(10)) == [0, 1, 3, 5, 7, 9]
    assert policy.decide(60, 50, 0).value == "compute"  # past the end: computed


def test_shaped_keeps_its_ratio_at_every_step_count():
    from forecache.accel.policies import Shaped

    policy = Shaped(ratio=5.5, shape=1.3)
    assert letters(policy, 50).count("C") == 9 and letters(policy, 28).count("C") == 5
    assert [i for i, c in enumerate(letters(policy, 50)) if c == "C"] == [0, 8, 15, 22, 29, 35, 41, 46, 49]
    assert letters(Shaped(ratio=4.0, shape=1.0), 21) == "CFFFFCFFFFCFFFFCFFFFC"  # even: 0, 5, 10, 15, 20


def test_timeline_validates_its_positions():
    import pytest

    from forecache.accel.policies import Timeline

    with pytest.raises(ValueError, match=r"`positions` must increase strictly from 0\.0 to at most 1\.0"):
        Timeline((0.1, 0.5), 10)
    with pytest.raises(ValueError, match=r"`positions` must increase strictly"):
        Timeline((0.0, 0.5, 0.5), 10)
    with pytest.raises(ValueError, match=r"`steps` must be an int >= 2, got 1"):
        Timeline((0.0,), 1)
    with pytest.raises(TypeError, match=r"`positions` must be a tuple"):
        Timeline([0.0, 1.0], 10)
    from forecache.accel.policies import Shaped

    with pytest.raises(ValueError, match=r"Shaped: `ratio` must be a float in \(1\.0, 1000\.0\], got 1"):
        Shaped(ratio=1)
