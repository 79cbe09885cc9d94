"""Fitting each stretch's slope damping on a recorded trajectory, and the tuner's use of it."""

import numpy as np
import pytest
import torch

import forecache
from forecache.accel.forecasters import Damped
from forecache.calibrate.damping import DAMPING_SCALES, fit_damping
from forecache.calibrate.frames import frame_psnr, output
from forecache.calibrate.offline import Trajectory, schedule_cost, step_weights
from forecache.calibrate.refine import MIN_GAIN_DB
from forecache.calibrate.tuner import _calls


def bent(n=12, dim=64, slopes=(1.0, 0.0, 0.4), seed=0):
    """Features moving along one direction with the given speed per stretch of [0, 4, 8], noise across."""
    generator = torch.Generator().manual_seed(seed)
    start, direction = torch.randn(2, dim, generator=generator, dtype=torch.float64)
    position, rows = 0.0, []
    for step in range(n):
        rows.append(start + position * direction)
        position += slopes[min(step // 4, len(slopes) - 1)]
    features = torch.stack(rows) + 1e-3 * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return Trajectory.from_features([features.float()], [1000.0 - 80 * i for i in range(n)])


def test_the_fit_reads_each_stretchs_slope_against_the_one_before():
    # positions 0, 1, 2, 3, 4, 4, 4, 4, 4, 4.4, 4.8, 5.2 (speeds 1, 0, 0.4 from steps 0, 4, 8);
    # computed [0, 2, 6, 9]
    trajectory = bent()
    fitted = fit_damping(trajectory, [0, 2, 6, 9], np.ones(trajectory.length))
    assert len(fitted) == 4 and fitted[0] == 0.0
    # after 2 (slope 1): steps 3, 4, 5 at 3, 4, 4 against 3, 4, 5 forecast: (1 + 4 + 6) / (1 + 4 + 9)
    assert fitted[1] == pytest.approx(11 / 14, abs=0.01)
    # after 6 (slope 0.5): steps 7, 8 stand still
    assert fitted[2] == pytest.approx(0.0, abs=0.01)
    # after 9 (slope 0.4 / 3): steps 10, 11 move 0.4 a step, three times the slope: clipped to 1
    assert fitted[3] == 1.0


def test_the_fit_is_the_least_offline_cost_of_each_stretch_and_clipped():
    trajectory = bent(slopes=(1.0, -0.5, 2.0))  # a reversal (clipped at 0) and an acceleration (at 1)
    weights = step_weights(trajectory, "sensitivity")
    computed = [0, 2, 5, 9]
    fitted = fit_damping(trajectory, computed, weights)
    assert all(0.0 <= d <= 1.0 for d in fitted)
    best = schedule_cost(trajectory, Damped(fitted), computed, weights)
    for k in range(1, len(fitted)):
        for delta in (-0.05, 0.05):
            moved = list(fitted)
            moved[k] = min(1.0, max(0.0, moved[k] + delta))
            if moved[k] != fitted[k]:
                assert schedule_cost(trajectory, Damped(tuple(moved)), computed, weights) >= best - 1e-12


def test_a_stretch_with_nothing_to_forecast_or_no_slope_gets_zero():
    fitted = fit_damping(bent(), [0, 1, 2, 11], np.ones(12))
    assert fitted[1] == 0.0  # stretch 1 -> 2 holds no forecast step
    rows = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.5], [3.0, 0.0]])  # steps 1 and 2 alike
    flat = Trajectory.from_features([rows], [1000.0, 800.0, 600.0, 400.0, 200.0])
    assert fit_damping(flat, [0, 1, 2], np.ones(5)) == (0.0, 0.0, 0.0)  # no slope from 1 to 2
    assert fit_damping(flat, [0, 1], np.ones(5))[1] > 0.0  # from 0 to 1 there is one


STEPS = 20
CALL = {"class_labels": [3, 7], "num_inference_steps": STEPS}


def test_the_tuner_runs_each_scaled_fit_and_keeps_one_only_when_it_gains(flux):
    plain = forecache.tune(flux, CALL, ratio=4.0, trials=3, partial=False, damp=False, progress=False)
    result = forecache.tune(flux, CALL, ratio=4.0, trials=3, partial=False, progress=False)
    damped = [c for c in result.candidates if "+ damped x" in c.source]
    assert len(damped) == len(DAMPING_SCALES)
    assert all(isinstance(c.forecaster, Damped) and c.computed == plain.chosen.computed for c in damped)
    assert not any("damped" in c.source for c in plain.candidates)
    best = max(c.psnr_db for c in damped)
    if best > plain.chosen.psnr_db + MIN_GAIN_DB:
        assert result.chosen.psnr_db == best and isinstance(result.config.forecaster, Damped)
    else:
        assert result.chosen.forecaster == plain.chosen.forecaster
    assert result.chosen.psnr_db >= plain.chosen.psnr_db
    # the verified figure is a real run of the config it returns
    calls = _calls(flux, CALL, 0)
    reference = [output(c()) for c in calls]
    with forecache.cached(flux, result.config):
        outputs = [output(c()) for c in calls]
    assert frame_psnr(reference, outputs) == pytest.approx(result.chosen.psnr_db, abs=1e-6)


@pytest.mark.parametrize("bad", [1, "no", None])
def test_a_bad_damp_is_refused_naming_the_field(flux, bad):
    with pytest.raises(ValueError, match=rf"tune: `damp` must be True or False, got {bad!r}"):
        forecache.tune(flux, CALL, ratio=4.0, damp=bad)
