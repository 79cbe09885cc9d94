"""The tuner's validation: the chosen config scored on new seeds of the calibration calls."""

import math

import pytest
import torch

import forecache
from forecache.accel.session import session_of
from forecache.calibrate.frames import Errors, frame_psnr, output
from forecache.calibrate.tuner import _calls
from forecache.calibrate.validate import bootstrap_interval

STEPS = 16
CALL = {"class_labels": [3, 7], "num_inference_steps": STEPS}
TUNE = {"ratio": 4.0, "trials": 2, "partial": False, "damp": False, "progress": False}


@pytest.fixture(scope="module")
def validated(flux):
    return forecache.tune(flux, CALL, seed=5, validate=2, **TUNE)


@pytest.fixture(scope="module")
def plain(flux):
    return forecache.tune(flux, CALL, seed=5, **TUNE)


def test_the_validation_is_a_real_run_of_the_chosen_config_on_new_seeds(flux, validated):
    check = validated.validation
    # the calibration call took seed 5; two repeats take the next two seeds, 2 samples each
    assert check.seeds == (6, 7) and check.samples == 4
    calls = _calls(flux, [CALL, CALL], 6)
    reference = [output(c()) for c in calls]
    with forecache.cached(flux, validated.config):
        outputs = [output(c()) for c in calls]
    assert check.psnr_db == pytest.approx(frame_psnr(reference, outputs), abs=1e-9)
    pairs = zip(reference, outputs, strict=True)
    each = [frame_psnr([a[i : i + 1]], [b[i : i + 1]]) for a, b in pairs for i in range(2)]
    assert check.per_sample_db == pytest.approx(each, abs=1e-9)
    assert check.worst_db == min(check.per_sample_db) and check.worst_db < check.psnr_db
    low, high = check.interval_db
    assert min(check.per_sample_db) < low < check.psnr_db < high < max(check.per_sample_db)
    # other samples than the verification's: another figure
    assert check.psnr_db != pytest.approx(validated.chosen.psnr_db, abs=0.01)


def test_the_validation_changes_nothing_the_search_chose_and_leaves_the_pipeline_bare(flux, validated, plain):
    assert plain.validation is None
    assert plain.chosen.computed == validated.chosen.computed
    assert plain.chosen.psnr_db == validated.chosen.psnr_db
    assert session_of(flux.transformer) is None
    run = _calls(flux, CALL, 6)[0]
    first, again = output(run()), output(run())
    assert torch.equal(first, again)


def test_the_report_names_the_validation_and_only_with_one(validated, plain):
    report = validated.report()
    check = validated.validation
    assert (
        f"Validated on 4 new sample(s) of the calibration calls (seeds 6-7), which no choice was made on: "
        f"{check.psnr_db:.2f} dB against full compute (90 % bootstrap interval {check.interval_db[0]:.2f}-"
        f"{check.interval_db[1]:.2f} dB), worst sample {check.worst_db:.2f} dB" in report
    )
    assert "Validated" not in plain.report()


@pytest.mark.parametrize("bad", [True, -1, 1.5, "2"])
def test_a_bad_validate_is_refused_naming_the_field(flux, bad):
    with pytest.raises(ValueError, match=rf"tune: `validate` must be an int >= 0, got {bad!r}"):
        forecache.tune(flux, CALL, ratio=4.0, validate=bad)


def test_the_bootstrap_interval_spans_the_spread_of_the_samples():
    reference = [torch.zeros(4, 8, 8, 3, dtype=torch.float64)]
    alike = Errors.of(reference, [torch.full((4, 8, 8, 3), 0.01, dtype=torch.float64)])
    assert bootstrap_interval(alike) == pytest.approx((40.0, 40.0))  # every resample reads 40 dB
    # one sample 10x the error of the other three: 40 dB each, one at 30 dB
    spread = torch.full((4, 8, 8, 3), 0.01, dtype=torch.float64)
    spread[0] *= math.sqrt(10)
    errors = Errors.of(reference, [spread])
    pooled = 10 * math.log10(4 / (1e-3 + 3e-4))
    assert errors.psnr() == pytest.approx(pooled)
    low, high = bootstrap_interval(errors)
    # the resamples read from 30 dB (the bad sample drawn 4 times) to 40 dB (never drawn)
    assert 30.0 <= low < pooled < high <= 40.0
    assert high == pytest.approx(40.0)  # about a third of the resamples miss it: (3/4)^4
    assert bootstrap_interval(errors) == (low, high)  # seeded
