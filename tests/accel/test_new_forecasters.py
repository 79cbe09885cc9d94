"""The Hermite (HiCache), forecast-then-calibrate (FoCa) and DMD forecasters against their closed forms."""

import math

import numpy as np
import pytest
import torch

from forecache.accel.forecasters import DMD, Damped, FoCa, Guard, Hermite, Taylor, make_history
from forecache.accel.forecasters.dmd import dmd_coefficients, dmd_fit
from forecache.accel.forecasters.foca import foca_weights
from forecache.accel.forecasters.hermite import hermite_polynomial, hermite_weights

GRID = [0.0, 0.7, 1.9, 2.4, 4.0]  # a non-uniform grid of computed coordinates
COEFFICIENTS = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-1.5, 3.0], [0.7, -0.4]])  # two channels


def poly(x: float, degree: int, derivative: int = 0) -> torch.Tensor:
    """The test polynomial of `degree` (two channels), or its `derivative`-th derivative, at `x`."""
    total = torch.zeros(2)
    for d in range(derivative, degree + 1):
        total = total + COEFFICIENTS[d] * math.perm(d, derivative) * x ** (d - derivative)
    return total


def hermite_closed_form(x_n: float, u: float, degree: int, sigma: float) -> torch.Tensor:
    """``sum_j (-s/2)^j / j! P^(2j)(x_n + s u)`` with ``s = 2 sigma^2``."""
    s = 2 * sigma**2
    return sum(
        (-s / 2) ** j / math.factorial(j) * poly(x_n + s * u, degree, 2 * j) for j in range(degree // 2 + 1)
    )


def fed(spec, points, degree):
    history = make_history(spec, torch.float32)
    for x in points:
        history.update(poly(x, degree), x)
    return history


def test_hermite_polynomials_are_the_physicists_ones():
    y = 0.7
    assert hermite_polynomial(0, y) == 1.0
    assert hermite_polynomial(1, y) == pytest.approx(1.4)
    assert hermite_polynomial(2, y) == pytest.approx(4 * y**2 - 2)
    assert hermite_polynomial(3, y) == pytest.approx(8 * y**3 - 12 * y)
    assert hermite_polynomial(4, y) == pytest.approx(16 * y**4 - 48 * y**2 + 12)


@pytest.mark.parametrize("sigma", [0.3, 0.5, 1 / math.sqrt(2), 1.1])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_hermite_gives_its_closed_form_for_polynomials_up_to_its_order_on_a_non_uniform_grid(order, sigma):
    for degree in range(order + 1):
        history = fed(Hermite(order=order, sigma=sigma, coordinate="timestep"), GRID[: order + 1], degree)
        x_n = GRID[order]
        for target in (x_n + 0.5, x_n + 1.0, x_n + 3.0):
            expected = hermite_closed_form(x_n, target - x_n, degree, sigma)
            torch.testing.assert_close(history.predict(target), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_hermite_is_the_papers_series_with_exact_derivatives(order):
    """HiCache's ``F + sum_k H_k(sigma u) sigma^k F^(k) / k!`` with the derivatives of the trajectory."""
    sigma, x_n, u = 0.6, GRID[order], 2.5
    history = fed(Hermite(order=order, sigma=sigma, coordinate="timestep"), GRID[: order + 1], order)
    expected = poly(x_n, order) + sum(
        hermite_polynomial(k, sigma * u) * sigma**k / math.factorial(k) * poly(x_n, order, k)
        for k in range(1, order + 1)
    )
    torch.testing.assert_close(history.predict(x_n + u), expected, rtol=1e-5, atol=1e-5)


def test_hermite_reproduces_lines_exactly_only_at_sigma_one_over_root_two():
    for order in (1, 2, 3):
        exact = fed(Hermite(order=order, sigma=1 / math.sqrt(2), coordinate="timestep"), GRID[:4], 1)
        torch.testing.assert_close(exact.predict(6.0), poly(6.0, 1), rtol=1e-5, atol=1e-5)
    damped = fed(Hermite(order=1, sigma=0.5, coordinate="timestep"), GRID[:2], 1)
    # s = 2 sigma^2 = 0.5: half the Taylor step from the last point, 0.7 -> 6.0 is 2.65 of slope 2 and 0.25
    torch.testing.assert_close(damped.predict(6.0), poly(0.7, 1) + 0.5 * 5.3 * COEFFICIENTS[1])


def test_hermite_order_one_at_the_exact_sigma_is_taylor_one_on_any_data():
    data = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    hermite = make_history(Hermite(order=1, sigma=1 / math.sqrt(2)))
    taylor = make_history(Taylor(order=1))
    for step in range(4):
        hermite.update(data[step], float(step))
        taylor.update(data[step], float(step))
    torch.testing.assert_close(hermite.predict(6.0), taylor.predict(6.0), rtol=1e-6, atol=1e-6)


def test_hermite_never_reproduces_a_quadratic_the_gap_is_minus_s_half_the_curvature():
    sigma = 1 / math.sqrt(2)  # s = 1: the offset is not contracted, only the constant remains
    history = fed(Hermite(order=2, sigma=sigma, coordinate="timestep"), GRID[:3], 2)
    gap = history.predict(5.0) - poly(5.0, 2)
    torch.testing.assert_close(gap, torch.tensor([1.5, -3.0]), rtol=1e-5, atol=1e-4)  # -P''/2, P'' = (-3, 6)


def test_hermite_small_sigma_is_reuse_and_weights_sum_to_one_at_order_one():
    history = fed(Hermite(order=2, sigma=1e-4, coordinate="timestep"), GRID[:3], 2)
    torch.testing.assert_close(history.predict(9.0), poly(GRID[2], 2), rtol=1e-4, atol=1e-4)
    assert hermite_weights((0.0, 1.0), 4.0, 0.5) == pytest.approx((1.0, 1.5))  # the slope's weight: s u


def test_hermite_validates_its_fields():
    with pytest.raises(ValueError, match=r"Hermite: `sigma` must be a float in \(0.0, 10.0\], got 0"):
        Hermite(sigma=0)
    with pytest.raises(ValueError, match=r"Hermite: `order` must be an int in \[1, 8\], got 0"):
        Hermite(order=0)
    with pytest.raises(ValueError, match="Hermite: `coordinate` must be one of"):
        Hermite(coordinate="time")


def run_foca(points: dict[float, float], order: list[float]) -> dict[float, float]:
    """Feed FoCa the computed values in `points`, predict every other coordinate of `order`."""
    history = make_history(FoCa(coordinate="timestep"))
    predicted = {}
    for x in order:
        if x in points:
            history.update(torch.tensor([points[x]]), x)
        else:
            predicted[x] = float(history.predict(x))
    return predicted


def test_foca_hand_computed_sequence_on_unit_steps():
    """f(x) = x^2 computed at 0, 1, 4, 7; the recursion worked by hand.

    2: F'_a = 1, slope 1 -> 1 + (1 + 1)/2 = 2;  3: 2 + (1 + 1)/2 = 3 (Taylor-1 so far).
    4 computed: before-anchor value 3 at x = 3; F'_a = (16 - 1)/3 = 5, one-step slope 16 - 3 = 13.
    5: 16 + (5 + 13)/2 = 25;  6: slope 25 - 16 = 9, 25 + (5 + 9)/2 = 32.
    7 computed: before-anchor 32 at 6; F'_a = (49 - 16)/3 = 11, slope 49 - 32 = 17.
    8: 49 + (11 + 17)/2 = 63 (Taylor-1: 60, truth 64);  9: slope 14, 63 + (11 + 14)/2 = 75.5.
    """
    squares = {x: x * x for x in (0.0, 1.0, 4.0, 7.0)}
    predicted = run_foca(squares, [float(x) for x in range(10)])
    assert predicted == pytest.approx({2.0: 2.0, 3.0: 3.0, 5.0: 25.0, 6.0: 32.0, 8.0: 63.0, 9.0: 75.5})


def test_foca_hand_computed_sequence_on_a_non_uniform_grid():
    """f(x) = x^2 computed at 0, 2, 6.

    3: F'_a = (4 - 0)/2 = 2, slope 2, h = 1 -> 4 + (2 + 2)/2 = 6;  5: h = 2 -> 6 + 2 (2 + 2)/2 = 10.
    6 computed: before-anchor 10 at 5; F'_a = (36 - 4)/4 = 8, slope (36 - 10)/1 = 26.
    7: 36 + (8 + 26)/2 = 53;  8: slope 17 -> 53 + (8 + 17)/2 = 65.5.
    """
    squares = {x: x * x for x in (0.0, 2.0, 6.0)}
    predicted = run_foca(squares, [0.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0])
    assert predicted == pytest.approx({3.0: 6.0, 5.0: 10.0, 7.0: 53.0, 8.0: 65.5})


def test_foca_closed_form_after_a_forecast_run():
    """Unit steps: ``F_{a+j} = F_a + j F'_a + (s_a - F'_a)(1 - 2^-j)``."""
    w = [foca_weights(1.0, 3.0, 4.0, [5.0 + i for i in range(j - 1)], 4.0 + j) for j in (1, 2, 3)]
    anchor, prev, before = 16.0, 1.0, 3.0  # the first test's state at step 4
    slope, local = (anchor - prev) / 3, anchor - before
    for j, (wa, wp, wb) in enumerate(w, start=1):
        expected = anchor + j * slope + (local - slope) * (1 - 2.0**-j)
        assert wa * anchor + wp * prev + wb * before == pytest.approx(expected)


def test_foca_is_taylor_one_after_a_computed_predecessor_and_exact_on_lines():
    data = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    foca, taylor = make_history(FoCa()), make_history(Taylor(order=1))
    for step in (0, 1, 2):
        foca.update(data[step], float(step))
        taylor.update(data[step], float(step))
    for x in (3.0, 4.0, 5.0):
        torch.testing.assert_close(foca.predict(x), taylor.predict(x), rtol=1e-6, atol=1e-6)
    line = {x: 2.0 - 0.5 * x for x in (0.0, 0.5, 2.0, 2.25, 5.0)}
    order = [0.0, 0.5, 1.0, 1.5, 2.0, 2.25, 3.0, 4.0, 5.0, 6.0, 7.5]
    for x, value in run_foca(line, order).items():
        assert value == pytest.approx(2.0 - 0.5 * x)


def test_foca_fused_path_adds_the_addend_guards_and_holds_three_buffers_at_most():
    history = make_history(FoCa(), torch.float32)
    history.track_peak = True
    squares = [torch.full((2, 3), float(x * x)) for x in range(8)]
    history.update(squares[0], 0.0)
    history.update(squares[1], 1.0)
    assert history.nbytes == 2 * 6 * 4
    addend = torch.arange(6.0).reshape(2, 3)
    torch.testing.assert_close(history.predict(2.0, addend=addend), 2.0 + addend)
    history.predict(3.0)
    history.update(squares[4], 4.0)
    assert history.nbytes == 3 * 6 * 4
    torch.testing.assert_close(history.predict(5.0), torch.full((2, 3), 25.0))
    guard = Guard(margin=1.5)  # limit 1.5 x peak 16 = 24: the forecast 32 at step 6 is refused
    torch.testing.assert_close(history.predict(6.0, guard), squares[4])
    assert int(guard.counter(torch.device("cpu"))[0]) == 6


def test_foca_validates_its_coordinate():
    with pytest.raises(
        ValueError, match=r"FoCa: `coordinate` must be one of \['step', 'timestep'\], got 'x'"
    ):
        FoCa(coordinate="x")


@pytest.mark.eval
def test_new_forecasters_parse_as_bench_methods():
    from forecache.eval.methods import method_to_dict, parse_method

    spec = parse_method("cache:forecaster=hermite,order=1,sigma=0.6,every=4,warmup=2,target=blocks")
    assert spec.config.forecaster == Hermite(order=1, sigma=0.6)
    assert spec.config.policy.every == 4
    params = method_to_dict(spec)["params"]
    assert params["forecaster"] == {"type": "hermite", "order": 1, "sigma": 0.6, "coordinate": "step"}
    spec = parse_method("cache:forecaster=foca,every=5,coordinate=timestep")
    assert spec.config.forecaster == FoCa(coordinate="timestep")
    spec = parse_method("cache:forecaster=dmd,window=5,every=6")
    assert spec.config.forecaster == DMD(window=5)
    assert method_to_dict(spec)["params"]["forecaster"] == {"type": "dmd", "window": 5}


def exponentials(x: float) -> torch.Tensor:
    """Two samples: sample 0 ``u 0.8^x + v 1.1^x``, sample 1 a damped rotation ``0.9^x (cos, sin)(0.5 x)``."""
    u, v = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, 0.4, -1.0])
    first = u * 0.8**x + v * 1.1**x
    second = 0.9**x * torch.tensor([math.cos(0.5 * x), math.sin(0.5 * x), 2 * math.cos(0.5 * x)])
    return torch.stack([first, second])


def test_dmd_reproduces_sums_of_exponentials_per_sample_on_evenly_spaced_steps():
    history = make_history(DMD(window=4), torch.float32)
    for x in (0.0, 2.0, 4.0, 6.0, 8.0):  # the ring keeps the last four, spacing 2
        history.update(exponentials(x), x)
    for target in (9.0, 10.0, 12.0, 16.0):
        torch.testing.assert_close(history.predict(target), exponentials(target), rtol=1e-4, atol=1e-4)
    taylor = make_history(Taylor(order=1))
    for x in (6.0, 8.0):
        taylor.update(exponentials(x), x)
    assert (taylor.predict(16.0) - exponentials(16.0)).abs().max() > 0.3  # a line cannot follow it


def test_dmd_coefficients_of_a_geometric_sequence():
    """Snapshots 1, 2, 4 (ratio 2): the fit is lambda = 2, the forecast k steps on is 4 * 2^k."""
    snapshots = np.array([[1.0, 2.0, 4.0]])
    fit = dmd_fit(snapshots.T @ snapshots)
    assert fit is not None and fit[1] == pytest.approx([2.0])
    weights = dmd_coefficients(fit, 1.5)
    assert float(weights @ snapshots[0, 1:]) == pytest.approx(4.0 * 2**1.5)


def test_dmd_falls_back_to_the_line_without_three_even_steps_and_guards_like_the_kernel():
    history = make_history(DMD(window=4), torch.float32)
    history.track_peak = True
    for x in (0.0, 1.0, 3.0):
        history.update(torch.full((2, 3), 2.0 * x), x)
    torch.testing.assert_close(history.predict(5.0), torch.full((2, 3), 10.0))  # the line through 1 and 3
    growth = make_history(DMD(window=3), torch.float32)
    growth.track_peak = True
    for x in (0.0, 1.0, 2.0):
        growth.update(torch.full((1, 4), 3.0**x), x)
    torch.testing.assert_close(growth.predict(3.0), torch.full((1, 4), 27.0), rtol=1e-4, atol=1e-4)
    guard = Guard(margin=2.0)  # limit 2 x 9 = 18: 27 is refused, the last computed 9 is returned
    addend = torch.ones(1, 4)
    torch.testing.assert_close(growth.predict(3.0, guard, addend), torch.full((1, 4), 10.0))
    assert int(guard.counter(torch.device("cpu"))[0]) == 4
    assert growth.nbytes == 3 * 4 * 4


def test_dmd_validates_its_window():
    with pytest.raises(ValueError, match=r"DMD: `window` must be an int in \[3, 8\], got 2"):
        DMD(window=2)


def forecasts_with_backend(spec, backend, monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", backend)
    history = make_history(spec, torch.float32)
    history.track_peak = True
    generator = torch.Generator().manual_seed(0)
    data = [torch.randn(2, 5, 3, generator=generator) + 0.1 * i for i in range(12)]
    guard, outputs = Guard(margin=3.0), []
    for x in range(12):
        if x < 2 or x % 4 == 0:
            history.update(data[x], float(x))
        else:
            outputs.append(history.predict(float(x), guard, addend=0.5 * data[x]))
    assert history.ops.backend == backend
    return torch.stack(outputs), guard.counter(torch.device("cpu")).clone()


@pytest.mark.parametrize(
    "spec",
    [FoCa(), Hermite(order=2, sigma=0.6), DMD(), Damped((0.0, 0.3, 0.8))],
    ids=["foca", "hermite", "dmd", "damped"],
)
def test_triton_and_torch_paths_agree_bitwise(spec, monkeypatch):
    from forecache.kernels.dispatch import triton_available

    if not triton_available():
        pytest.skip("needs triton (its CPU interpreter runs here)")
    triton_out, triton_refused = forecasts_with_backend(spec, "triton", monkeypatch)
    torch_out, torch_refused = forecasts_with_backend(spec, "torch", monkeypatch)
    assert torch.equal(triton_out, torch_out) and torch.equal(triton_refused, torch_refused)
