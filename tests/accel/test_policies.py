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
    assert policy.accept(0.05) and not policy.accept(0.2) and not policy.accept(float("nan"))
