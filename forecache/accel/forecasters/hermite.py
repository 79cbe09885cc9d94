"""Scaled-Hermite forecasting with dual scaling (HiCache, arXiv:2508.16984)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forecache.accel._checks import check_choice, check_float, check_int
from forecache.accel.forecasters.base import (
    COORDINATES,
    MAX_ORDER,
    Coordinate,
    Guard,
    History,
    Memo,
    register_forecaster,
)
from forecache.accel.forecasters.taylor import TaylorHistory

__all__ = ["Hermite", "HermiteHistory", "hermite_polynomial", "hermite_weights"]

EXACT_SIGMA = 1.0 / math.sqrt(2.0)
"""The scale at which ``s = 2 sigma^2 = 1``: order 1 is then exactly `Taylor(order=1)`."""


@register_forecaster("hermite")
@dataclass(frozen=True)
class Hermite:
    r"""Scaled-Hermite forecast with dual scaling (HiCache, Feng et al., arXiv:2508.16984).

    HiCache replaces the monomials of TaylorSeer's series with physicists' Hermite polynomials
    ``H_k`` and scales twice, the time offset inside the polynomial and the coefficient outside
    (the authors' code, ``hicache_scale_factor``; 0.5 by default, 0.5-0.7 in their scripts):

    .. math::

        \hat F(x_n + u) = F(x_n) + \sum_{k=1}^{m} \frac{1}{k!}\, \sigma^k H_k(\sigma u)\, F^{(k)}(x_n),

    with ``u`` the distance to the last computed step in units of the coordinate. Here the
    derivatives ``F^{(k)}(x_n)`` are those of the polynomial through the last ``m + 1`` computed
    features (Newton divided differences, as `Taylor`; TaylorSeer's backward differences agree
    with them at order 1, and at order 2 in the second derivative).

    What it reproduces, exactly (``He_k(y) = E[(y + iZ)^k]`` with ``Z ~ N(0, 1)``): with ``P`` that
    polynomial and ``s = 2 sigma^2``, the forecast is the Gaussian "unsmoothing" of ``P`` evaluated
    at a contracted offset,

    .. math::

        \hat F(x_n + u) = \sum_{j \ge 0} \frac{(-s/2)^j}{j!}\, P^{(2j)}(x_n + s u).

    So a trajectory that is a polynomial of degree <= `order` gives this closed form on any grid,
    but it is reproduced only when it is linear and ``sigma = 1/sqrt(2)`` (then order 1 equals
    `Taylor(order=1)`); order 1 is linear extrapolation with its slope damped by ``s`` (``sigma =
    0.5``: half the Taylor step, between reuse and Taylor-1); every order >= 2 adds the constant
    ``-s/2 P''`` (and higher even derivatives), so no quadratic is reproduced at any ``sigma > 0``;
    ``sigma -> 0`` is reuse. Unlike Taylor, the terms of order >= 2 depend on the unit of the
    coordinate (``-s/2 P''`` is not scale-free), so a `sigma` tuned on the paper's ``"step"``
    coordinate does not carry over to ``"timestep"``.

    Speed/quality: one fused weighted sum per forecast, like `Taylor` (``order + 1`` history
    tensors, the same update pass); the damping trades the bias of a shorter step for far less
    overshoot at long intervals, where Taylor-2 amplifies error; at short intervals Taylor-1 is
    better, and the best `sigma` differs per model (measured: BENCHMARKS.md, "Forecasters and
    probing policies").

    Args:
        order: Series order m in [1, 8]. Default 2 (the paper's FLUX setting is 1-2).
        sigma: The dual scale sigma in (0, 10]. Default 0.5 (the authors' default).
        coordinate: ``"step"`` (default, the paper's step offset) or ``"timestep"``.

    """

    order: int = 2
    sigma: float = 0.5
    coordinate: Coordinate = "step"

    def __post_init__(self) -> None:
        check_int("Hermite", "order", self.order, 1, MAX_ORDER)
        check_float("Hermite", "sigma", self.sigma, 0.0, 10.0)
        check_choice("Hermite", "coordinate", self.coordinate, COORDINATES)

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the divided-difference history of one cached tensor, read with Hermite weights."""
        return HermiteHistory(self.order, self.sigma, dtype, memo, track_peak)


def hermite_polynomial(k: int, y: float) -> float:
    """Return the physicists' Hermite polynomial ``H_k(y)`` (``H_{k+1} = 2y H_k - 2k H_{k-1}``)."""
    previous, current = 1.0, 2.0 * y
    if k == 0:
        return previous
    for n in range(1, k):
        previous, current = current, 2.0 * y * current - 2.0 * n * previous
    return current


def _newton_basis_coefficients(deltas: tuple[float, ...]) -> list[list[float]]:
    """Coefficients of ``u^k`` in ``prod_{j < i} (u + deltas[j])`` for every i (Newton basis at x_n)."""
    rows = [[1.0]]
    for delta in deltas[:-1]:
        last = rows[-1]
        row = [0.0] * (len(last) + 1)
        for k, c in enumerate(last):
            row[k] += c * delta
            row[k + 1] += c
        rows.append(row)
    return rows


def hermite_weights(xs: tuple[float, ...], x: float, sigma: float) -> tuple[float, ...]:
    """Weights of the stored divided differences (newest point last in `xs`) for the Hermite forecast at `x`.

    Slot i holds ``f[x_n, ..., x_{n-i}]``; its Newton basis polynomial ``prod_{j<i} (u + d_j)``
    (``d_j = x_n - x_{n-j}``, ``u = x - x_n``) contributes ``e_{ik}`` to the Taylor coefficient
    ``c_k = F^(k)(x_n) / k!``, and ``c_k`` is weighted by ``sigma^k H_k(sigma u)``.
    """
    newest = xs[-1]
    u = x - newest
    deltas = tuple(newest - xs[-1 - j] for j in range(len(xs)))
    scaled = [sigma**k * hermite_polynomial(k, sigma * u) for k in range(len(xs))]
    rows = _newton_basis_coefficients(deltas)
    return tuple(sum(c * scaled[k] for k, c in enumerate(row)) for row in rows)


class HermiteHistory(TaylorHistory):
    """Newton divided differences (shared with `Taylor`), combined with scaled-Hermite weights."""

    def __init__(
        self, order: int, sigma: float, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False
    ) -> None:
        super().__init__(order, dtype, memo, track_peak)
        self.sigma = sigma

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the scaled-Hermite series at `x` in one fused pass (refused elements: last feature)."""
        key = ("hermite", self.sigma, self.xs, x)
        weights = self.memo.get(key)
        if weights is None:
            weights = self.memo[key] = hermite_weights(self.xs, x, self.sigma)
        return self.combine(weights, 0, guard, addend)
