"""`Damped`: linear extrapolation with one slope damping per forecast stretch, against its closed form."""

import numpy as np
import pytest
import torch

import forecache
from forecache.accel.forecasters import Damped, Hermite, Reuse, Taylor, make_history
from forecache.calibrate.offline import check_linear, forecast_weights
from forecache.configfile import load_config, save_config

GRID = [0.0, 0.7, 1.9, 2.4, 4.0]  # a non-uniform grid of computed coordinates


def features(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 5, generator=generator) for _ in range(count)]


def fed(spec, xs, values):
    history = make_history(spec, torch.float32)
    for x, value in zip(xs, values, strict=True):
        history.update(value.clone(), x)
    return history


@pytest.mark.parametrize(
    "damping, same_as", [(0.0, Reuse()), (1.0, Taylor(order=1)), (0.5, Hermite(order=1, sigma=0.5))]
)
def test_one_damping_is_reuse_taylor_one_or_hermite_one(damping, same_as):
    values = features(4)
    ours, theirs = fed(Damped(damping), GRID[:4], values), fed(same_as, GRID[:4], values)
    for target in (2.5, 3.0, 6.0):
        torch.testing.assert_close(ours.predict(target), theirs.predict(target), rtol=1e-5, atol=1e-5)


def test_each_stretch_takes_its_own_damping_and_the_last_holds_past_the_end():
    values = features(5)
    history = make_history(Damped((0.9, 0.3, 0.7)), torch.float32)
    history.update(values[0].clone(), GRID[0])
    torch.testing.assert_close(history.predict(0.5), values[0])  # one point: no slope, reused
    for k in range(1, 5):
        history.update(values[k].clone(), GRID[k])
        damping = (0.9, 0.3, 0.7)[min(k, 2)]
        slope = (values[k] - values[k - 1]) / (GRID[k] - GRID[k - 1])
        target = GRID[k] + 0.4
        torch.testing.assert_close(history.predict(target), values[k] + damping * 0.4 * slope)


def test_a_history_that_starts_over_counts_from_its_first_step_again():
    values = features(4)
    history = fed(Damped((0.0, 1.0, 0.0)), GRID[:3], values[:3])  # third stretch: damping 0
    torch.testing.assert_close(history.predict(3.0), values[2])
    history.update(values[3].clone(), GRID[2])  # the same coordinate again: the history restarts
    assert history.count == 1
    torch.testing.assert_close(history.predict(3.0), values[3])
    history.update(values[0].clone(), 3.5)  # second point of the new history: damping[1] = 1, Taylor 1
    torch.testing.assert_close(
        history.predict(4.0), values[0] + 0.5 * (values[0] - values[3]) / (3.5 - GRID[2])
    )


def test_it_is_linear_and_its_offline_weights_count_the_stretch():
    spec = Damped((0.0, 0.2, 0.6))
    assert check_linear(spec, [0.0, 1.0, 2.5], 4.0)
    # after 3 points the third damping: F2 + 0.6 * (4 - 2.5) / 1.5 * (F2 - F1)
    np.testing.assert_allclose(forecast_weights(spec, [0.0, 1.0, 2.5], [4.0])[0], [0.0, -0.6, 1.6], rtol=1e-6)
    np.testing.assert_allclose(forecast_weights(spec, [0.0, 1.0], [2.0])[0], [-0.2, 1.2], rtol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (-0.1, r"Damped: `damping` must be a float or a non-empty tuple of floats in \[0, 2\], got -0.1"),
        ((), r"got \(\)"),
        ((0.1, 2.5), r"got \(0.1, 2.5\)"),
        ((0.1, float("nan")), r"got \(0.1, nan\)"),
        ((0.1, True), r"got \(0.1, True\)"),
    ],
)
def test_bad_dampings_are_refused_naming_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        Damped(bad)


def test_a_damping_of_another_type_or_a_bad_coordinate_is_refused():
    with pytest.raises(
        TypeError, match=r"Damped: `damping` must be a float or a tuple of floats, got '0.1' \(str\)"
    ):
        Damped("0.1")
    with pytest.raises(ValueError, match="Damped: `coordinate` must be one of"):
        Damped(0.1, coordinate="time")
    assert Damped([0.1, 1]).damping == (0.1, 1.0) and Damped(0).damping == (0.0,)


def test_a_damped_config_round_trips_through_a_config_file(tmp_path):
    config = forecache.CacheConfig(
        policy=forecache.Timeline.from_steps([0, 4, 9], 20),
        forecaster=Damped((0.0, 0.15, 0.8)),
        target="blocks",
    )
    path = tmp_path / "tuned.json"
    save_config(config, path)
    assert load_config(path) == config
