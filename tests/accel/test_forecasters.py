import pytest
import torch

from forecache.accel.forecasters import AdamsBashforth, Reuse, Taylor, lagrange_weights, make_history

NON_UNIFORM = [1.0, 0.93, 0.82, 0.66, 0.45, 0.2]  # a shifted flow-matching-like grid


def poly(x: float, degree: int) -> torch.Tensor:
    coefficients = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-1.5, 3.0], [0.7, -0.4], [1.1, 0.9]])
    return sum(coefficients[d] * x**d for d in range(degree + 1))


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_taylor_reproduces_polynomials_of_its_order_on_uniform_grid(order):
    history = make_history(Taylor(order=order), torch.float32)
    for step in range(order + 1):
        history.update(poly(float(step), order), float(step))
    for target in (order + 1.0, order + 2.5, order + 4.0):
        expected = poly(target, order)
        torch.testing.assert_close(history.predict(target), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_taylor_is_not_exact_beyond_its_order(order):
    history = make_history(Taylor(order=order - 1), torch.float32)
    for step in range(order + 1):
        history.update(poly(float(step), order), float(step))
    error = (history.predict(order + 2.0) - poly(order + 2.0, order)).abs().max()
    assert error > 1e-3, f"order {order - 1} should not reproduce degree {order}: error {error}"


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_adams_bashforth_reproduces_degree_below_order_on_non_uniform_grid(order):
    history = make_history(AdamsBashforth(order=order), torch.float32)
    degree = order - 1
    for x in NON_UNIFORM[:-1]:  # keeps only the last `order` points
        history.update(poly(x, degree), x)
    expected = poly(NON_UNIFORM[-1], degree)
    torch.testing.assert_close(history.predict(NON_UNIFORM[-1]), expected, rtol=1e-4, atol=1e-4)


def test_taylor_on_non_uniform_grid_is_exact_with_divided_differences():
    history = make_history(Taylor(order=2, coordinate="timestep"), torch.float32)
    for x in NON_UNIFORM[:4]:
        history.update(poly(x, 2), x)
    torch.testing.assert_close(history.predict(0.3), poly(0.3, 2), rtol=1e-4, atol=1e-4)


def test_step_and_timestep_coordinates_differ_and_each_is_right():
    """Timestep-linear data is exact on the timestep coordinate, step-linear data on the step one."""
    ts = NON_UNIFORM
    in_time = make_history(Taylor(order=1), torch.float32)
    in_step = make_history(Taylor(order=1), torch.float32)
    for step, t in enumerate(ts[:3]):
        in_time.update(poly(t, 1), t)
        in_step.update(poly(float(step), 1), float(step))
    torch.testing.assert_close(in_time.predict(ts[4]), poly(ts[4], 1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(in_step.predict(4.0), poly(4.0, 1), rtol=1e-4, atol=1e-4)
    # The same timestep-linear sequence seen on the step grid is mispredicted.
    cross = make_history(Taylor(order=1), torch.float32)
    for step, t in enumerate(ts[:3]):
        cross.update(poly(t, 1), float(step))
    gap = (cross.predict(4.0) - poly(ts[4], 1)).abs().max()
    assert gap > 1e-2, f"step coordinate should not fit a non-uniform timestep-linear sequence, gap {gap}"


def test_reuse_returns_last_feature_and_never_aliases_it():
    history = make_history(Reuse())
    feature = torch.randn(2, 5, 3)
    history.update(feature, 0.0)
    feature.add_(100.0)  # an in-place change after the update must not reach the cache
    second = torch.randn(2, 5, 3)
    history.update(second, 1.0)
    prediction = history.predict(7.0)
    assert torch.equal(prediction, second)
    prediction.zero_()
    assert torch.equal(history.predict(8.0), second)
    assert history.nbytes == second.numel() * 4


def test_history_dtype_is_storage_only():
    history = make_history(Taylor(order=2), torch.bfloat16)
    for step in range(3):
        history.update(torch.full((4,), float(step), dtype=torch.float32), float(step))
    prediction = history.predict(3.0)
    assert prediction.dtype == torch.float32
    torch.testing.assert_close(prediction, torch.full((4,), 3.0))
    assert history.nbytes == 3 * 4 * 2


def test_lagrange_weights_sum_to_one_and_match_known_values():
    assert lagrange_weights([0.0, 1.0], 2.0) == [-1.0, 2.0]
    weights = lagrange_weights([0.2, 0.5, 0.9], 1.3)
    assert abs(sum(weights) - 1.0) < 1e-12


def test_repeated_coordinate_restarts_history_instead_of_dividing_by_zero():
    history = make_history(Taylor(order=2))
    history.update(torch.ones(3), 1.0)
    history.update(torch.full((3,), 5.0), 1.0)
    assert torch.equal(history.predict(2.0), torch.full((3,), 5.0))
