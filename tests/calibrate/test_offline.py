"""The tuner's offline search: one-hot forecast weights, the dynamic programme against brute force."""

import itertools
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import forecache
from forecache.accel.forecasters.adams_bashforth import RingHistory
from forecache.calibrate.offline import (
    Trajectory,
    best_schedules,
    check_linear,
    error_table,
    forecast_weights,
    schedule_cost,
    step_costs,
    step_weights,
)


def synthetic(n=9, dim=40, seed=0):
    """A smooth random trajectory: a random walk of features with a curved drift."""
    generator = torch.Generator().manual_seed(seed)
    steps = torch.arange(n, dtype=torch.float64)[:, None]
    base = torch.randn(3, dim, generator=generator, dtype=torch.float64)
    noise = 0.05 * torch.randn(n, dim, generator=generator, dtype=torch.float64).cumsum(0)
    features = base[0] + steps * base[1] / n + (steps / n) ** 2 * base[2] + noise
    timesteps = [1000.0 * (1 - i / n) ** 1.5 for i in range(n)]
    return Trajectory.from_features([features.float()], timesteps), features


def test_one_hot_weights_are_the_forecasters_closed_forms():
    # Taylor 1 at x from (x0, x1): f1 + (x - x1) (f1 - f0) / (x1 - x0)
    weights = forecast_weights(forecache.Taylor(order=1), [0.0, 2.0], [5.0])[0]
    np.testing.assert_allclose(weights, [-1.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(forecast_weights(forecache.Reuse(), [0.0, 2.0], [5.0])[0], [0.0, 1.0])
    # Adams-Bashforth 3 on a non-uniform grid: the Lagrange weights, summing to 1
    weights = forecast_weights(forecache.AdamsBashforth(order=3), [0.0, 1.0, 3.0], [4.0])[0]
    np.testing.assert_allclose(weights, [1.0, -2.0, 2.0], rtol=1e-5)  # (4-1)(4-3)/((0-1)(0-3)), ...


def test_linearity_check_accepts_the_built_ins_and_refuses_a_nonlinear_forecaster():
    for forecaster in (forecache.Reuse(), forecache.Taylor(2), forecache.AdamsBashforth(3)):
        assert check_linear(forecaster, [0.0, 1.0, 2.5], 4.0)

    class Squaring(RingHistory):
        def predict(self, x, guard=None, addend=None):
            return self.combine((1.0,), 0, guard, addend) ** 2

    @dataclass(frozen=True)
    class Nonlinear:
        coordinate = "step"

        def make_history(self, dtype, memo, track_peak=False):
            return Squaring(1, dtype, memo, track_peak)

    assert not check_linear(Nonlinear(), [0.0, 1.0, 2.5], 4.0)


def test_gram_costs_equal_direct_forecast_errors():
    trajectory, features = synthetic()
    computed = [0, 3, 5]
    forecaster = forecache.Taylor(order=1)
    costs = step_costs(trajectory, forecaster, computed)
    scale = float(np.mean(np.diag(features.double() @ features.double().T)))
    for j in (4, 6, 8):
        history = forecaster.make_history(None, {})
        for step in [s for s in computed if s < j]:
            history.update(features[step].float(), float(step))
        direct = float(((history.predict(float(j)).double() - features[j]) ** 2).sum()) / scale
        assert costs[j] == pytest.approx(direct, rel=1e-4)
    assert costs[0] == costs[3] == costs[5] == 0.0


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize(
    "forecaster", [forecache.Reuse(), forecache.Taylor(order=1)], ids=["reuse", "taylor1"]
)
@pytest.mark.parametrize("kind", ["uniform", "sensitivity"])
def test_dynamic_programme_finds_the_brute_force_optimum(count, forecaster, kind):
    trajectory, _ = synthetic()
    n = trajectory.length
    weights = step_weights(trajectory, kind)
    table = error_table(trajectory, forecaster, max_gap=n)
    cost, schedule = best_schedules(table, weights, [count], max_gap=n)[count]
    brute = min(
        (schedule_cost(trajectory, forecaster, [0, *rest], weights), [0, *rest])
        for rest in itertools.combinations(range(1, n), count - 1)
    )
    assert schedule == brute[1] and cost == pytest.approx(brute[0], rel=1e-9)


def test_the_largest_gap_is_respected():
    trajectory, _ = synthetic(n=12)
    table = error_table(trajectory, forecache.Taylor(order=1), max_gap=4)
    _, schedule = best_schedules(table, step_weights(trajectory, "uniform"), [3], max_gap=4)[3]
    assert max(b - a for a, b in zip([*schedule, 12], [*schedule[1:], 12], strict=False)) <= 4
    assert schedule == [0, 4, 8]


def test_step_weights_name_the_kinds():
    trajectory, _ = synthetic()
    assert step_weights(trajectory, "uniform").tolist() == [1.0] * 9
    late = step_weights(trajectory, "late")
    assert late[-1] > late[0] and late.mean() == pytest.approx(1.0)
    with pytest.raises(
        ValueError, match=r"`weighting` must be one of \['uniform', 'dt', 'late', 'sensitivity'\], got 'x'"
    ):
        step_weights(trajectory, "x")
