"""Refining the tuned schedule by real runs (`forecache.tune(..., refine=N)`): the moves, what it keeps."""

import pytest

import forecache
from forecache.calibrate.frames import frame_psnr, output
from forecache.calibrate.refine import MIN_GAIN_DB, REACH, moves
from forecache.calibrate.tuner import _calls

STEPS = 20
CALL = {"class_labels": [3, 7], "num_inference_steps": STEPS}


def test_moves_shift_one_step_nearest_first_and_keep_the_schedule_valid():
    assert REACH == 3
    # step 5 of [0, 5, 10] at 15 steps, stretches of at most 6: 4 and 6 only (3, 7, 2, 8 leave 7 or 8)
    assert list(moves([0, 5, 10], 1, 15, 6)) == [[0, 4, 10], [0, 6, 10]]
    # nearest first, either way; never onto another computed step, 0 or past the end
    assert list(moves([0, 5, 6], 2, 9, 9)) == [[0, 5, 7], [0, 4, 5], [0, 5, 8], [0, 3, 5]]
    assert list(moves([0, 1, 8], 1, 9, 9)) == [[0, 2, 8], [0, 3, 8], [0, 4, 8]]
    # a step may pass another: the schedule comes back sorted
    assert [0, 4, 6] in list(moves([0, 6, 7], 2, 9, 9))
    # the stretch from the last computed step to the end counts too
    assert list(moves([0, 4], 1, 10, 6)) == [[0, 5], [0, 6]]


@pytest.mark.parametrize("ratio, moves_kept", [(3.0, True), (4.0, False)])  # 3x: 42.3 -> 48.3 dB
def test_refining_keeps_the_count_and_only_moves_that_gain(flux, ratio, moves_kept):
    plain = forecache.tune(flux, CALL, ratio=ratio, trials=3, partial=False, progress=False)
    result = forecache.tune(flux, CALL, ratio=ratio, trials=3, partial=False, refine=2, progress=False)
    start, chosen = plain.chosen, result.chosen
    assert len(chosen.computed) == len(start.computed) and chosen.ratio == start.ratio
    assert chosen.computed[0] == 0 and chosen.forecaster == start.forecaster
    moved = [c for c in result.candidates if c.source.endswith("+ refined")]
    verified = [c for c in result.candidates if c.psnr_db is not None]
    plain_verified = [c for c in plain.candidates if c.psnr_db is not None]
    assert 1 <= len(moved) <= 2 * 2 * REACH * (len(start.computed) - 1)
    assert len(verified) == len(plain_verified) + len(moved)
    assert (chosen.computed != start.computed) is moves_kept
    if moves_kept:  # each kept move gained more than the threshold
        assert chosen.source.endswith("+ refined") and chosen.psnr_db > start.psnr_db + MIN_GAIN_DB
    else:
        assert all(c.psnr_db <= start.psnr_db + MIN_GAIN_DB for c in moved)
    assert chosen.psnr_db >= start.psnr_db
    # the verified figure is a real run of the config it returns
    calls = _calls(flux, CALL, 0)
    reference = [output(c()) for c in calls]
    with forecache.cached(flux, result.config):
        outputs = [output(c()) for c in calls]
    assert frame_psnr(reference, outputs) == pytest.approx(chosen.psnr_db, abs=1e-6)
    # two samples: the report says the moves fit them
    assert any("refined on 2 sample(s)" in note for note in result.notes)
    assert not any("refined on" in note for note in plain.notes)


def test_a_budget_goal_is_refined_and_still_meets_the_budget(flux):
    result = forecache.tune(flux, CALL, budget_db=40.0, trials=2, refine=1, progress=False)
    assert result.chosen.psnr_db >= 40.0
    assert any(c.source.endswith("+ refined") for c in result.candidates)


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_a_bad_refine_is_refused_naming_the_field(flux, bad):
    with pytest.raises(ValueError, match=rf"tune: `refine` must be an int >= 0, got {bad!r}"):
        forecache.tune(flux, CALL, ratio=4.0, refine=bad)
