"""`forecache.tune` on the shipped reference model: what it finds, writes and how it ranks."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import forecache
from forecache.calibrate.frames import frame_psnr as _psnr
from forecache.calibrate.frames import output as _output
from forecache.calibrate.offline import schedule_cost, step_weights
from forecache.calibrate.tuner import _calls, _record
from forecache.configfile import load_config

STEPS = 20
CALL = {"class_labels": [3, 7], "num_inference_steps": STEPS}


@pytest.fixture(scope="module")
def tuned(flux):
    return forecache.tune(flux, CALL, ratio=4.0, progress=False)


class _NoBar:
    def update(self, n):
        pass


def real_psnr(pipe, config, seed=0):
    calls = _calls(pipe, CALL, seed)
    reference = [_output(c()) for c in calls]
    with forecache.cached(pipe, config):
        outputs = [_output(c()) for c in calls]
        ratio = forecache.stats(pipe).compute_ratio
    return _psnr(reference, outputs), ratio


def test_tuned_config_meets_its_ratio_and_beats_a_fixed_interval(flux, tuned):
    chosen = tuned.chosen
    assert isinstance(tuned.config.policy, forecache.Timeline) and tuned.config.target == "blocks"
    assert chosen.ratio >= 4.0 and tuned.steps == STEPS and chosen.computed[0] == 0
    assert sum(c.psnr_db is not None for c in tuned.candidates) >= 4  # verified for real
    psnr, executed = real_psnr(flux, tuned.config)
    assert psnr == pytest.approx(chosen.psnr_db, abs=1e-6)  # the verification was this run
    # block executions: a partial step runs all but its span
    blocks, span = 6, chosen.span[1] - chosen.span[0]
    ran = len(chosen.computed) * blocks + len(chosen.partial) * (blocks - span)
    assert executed == pytest.approx(STEPS * blocks / ran)
    # a fixed interval computing as many steps (a partial one as a whole): no more compute than tuned
    every = STEPS // (len(chosen.computed) + len(chosen.partial))
    interval = forecache.Timeline.from_steps(list(range(0, STEPS, every)), STEPS)
    fixed, fixed_ratio = real_psnr(flux, forecache.CacheConfig(policy=interval, forecaster=chosen.forecaster))
    assert fixed_ratio <= executed + 1e-9
    assert chosen.psnr_db >= fixed + 3.0, f"tuned {chosen.psnr_db:.1f} dB vs fixed interval {fixed:.1f} dB"


def test_the_config_file_round_trips_and_applies(flux, tuned, tmp_path):
    path = tuned.save(tmp_path / "tuned.json")
    document = json.loads(path.read_text())
    entry = document["methods"][0]
    assert entry["method"] == "cache" and entry["params"]["policy"]["type"] == "timeline"
    assert load_config(path) == tuned.config
    forecache.apply(flux, str(path))
    try:
        flux(**CALL, generator=torch.Generator().manual_seed(0), output_type="np")
        decisions = "".join(forecache.stats(flux).contexts["cond"].decisions)
    finally:
        forecache.remove(flux)
    chosen = tuned.chosen
    assert decisions == "".join(
        "C" if i in chosen.computed else "P" if i in chosen.partial else "F" for i in range(STEPS)
    )


def test_report_and_plot(tuned):
    report = tuned.report()
    assert "compute ratio >= 4x" in report and report.count("dB |") >= 4
    assert "Note: verified on 2 sample(s): a PSNR pooled over so few reads high" in report
    image = tuned.plot()
    assert isinstance(image, Image.Image) and image.size == (900, 300)


def test_budget_mode_returns_the_highest_ratio_it_verified(flux):
    result = forecache.tune(flux, CALL, budget_db=40.0, trials=2, progress=False)
    assert result.chosen.psnr_db >= 40.0 and result.chosen.ratio > 2.0
    higher = [c for c in result.candidates if c.psnr_db is not None and c.ratio > result.chosen.ratio]
    assert all(c.psnr_db < 40.0 for c in higher)


def test_offline_ranking_agrees_with_the_real_runs(flux):
    """Spearman rank correlation of the offline cost with the real PSNR over random schedules."""
    calls = _calls(flux, CALL)
    trajectory, _, _, _ = _record(flux, calls, _NoBar())
    weights = step_weights(trajectory, "sensitivity")
    rng = np.random.default_rng(1)
    schedules = [[0, *sorted(rng.choice(np.arange(1, STEPS), 4, replace=False).tolist())] for _ in range(8)]
    forecaster = forecache.Taylor(order=1)
    costs, psnrs = [], []
    for schedule in schedules:
        costs.append(schedule_cost(trajectory, forecaster, schedule, weights))
        config = forecache.CacheConfig(
            policy=forecache.Timeline.from_steps(schedule, STEPS), forecaster=forecaster
        )
        psnrs.append(real_psnr(flux, config)[0])
    rank = lambda values: np.argsort(np.argsort(values))  # noqa: E731
    spearman = np.corrcoef(rank(costs), rank(psnrs))[0, 1]
    assert spearman <= -0.7, (
        f"offline costs {np.round(costs, 3)} vs PSNR {np.round(psnrs, 1)}: {spearman:.2f}"
    )


def test_bad_goals_name_the_field(flux):
    with pytest.raises(ValueError, match=r"pass exactly one of `ratio` and `budget_db`"):
        forecache.tune(flux, CALL, ratio=4.0, budget_db=30.0)
    with pytest.raises(ValueError, match=r"`ratio` must be a float > 1, got 0.5"):
        forecache.tune(flux, CALL, ratio=0.5)
    with pytest.raises(ValueError, match=r"leave out `generator`"):
        forecache.tune(flux, {**CALL, "generator": torch.Generator()}, ratio=4.0)
    with pytest.raises(TypeError, match=r"`call_kwargs` must be a dict of pipeline arguments"):
        forecache.tune(flux, "labels", ratio=4.0)
