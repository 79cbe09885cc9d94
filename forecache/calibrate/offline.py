"""Offline evaluation of schedules and forecasters on a recorded trajectory, and the schedule search.

Every built-in forecaster is linear in the features it was fed: its forecast at ``x`` is
``sum_i w_i F_i`` over the computed features ``F_i``. Feeding a history one-hot vectors instead of
features therefore returns the weights ``w`` themselves, and with the Gram matrix ``G = <F_a, F_b>``
of the recorded trajectory the squared error of any forecast is
``w^T G w - 2 w^T G[:, j] + G[j, j]``: one small matrix product per forecast, whatever the
feature size. `check_linear` verifies the linearity of a forecaster before it is used this way.

`best_schedules` is a dynamic programme over the computed steps (not a grid of intervals): for
every number of computed steps ``M`` it finds the set of steps that minimises the summed,
weighted forecast error of a forecaster that uses the last two computed steps (reuse, Taylor 1,
Adams-Bashforth 2 on either coordinate). Forecasters that use more points are then scored
exactly (`schedule_cost`) on the schedules found, and the tuner verifies the best few with real
cached runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from forecache.accel.forecasters import Forecaster

__all__ = [
    "Trajectory",
    "best_schedules",
    "check_linear",
    "error_table",
    "forecast_weights",
    "schedule_cost",
    "step_costs",
    "step_weights",
]


@dataclass(frozen=True)
class Trajectory:
    """What the search needs of a recorded trajectory.

    Attributes:
        gram: ``(n, n)`` float64: ``<F_a, F_b>`` summed over contexts, samples and calibration calls,
            divided by the mean of the diagonal (so costs are relative squared errors).
        steps: ``(n,)`` the step coordinate.
        timesteps: ``(n,)`` the timestep coordinate (the first context's).

    """

    gram: np.ndarray
    steps: np.ndarray
    timesteps: np.ndarray

    @property
    def length(self) -> int:
        """The number of steps."""
        return int(self.gram.shape[0])

    def coordinate(self, forecaster: Forecaster) -> np.ndarray:
        """Return the coordinates the forecaster's histories are fed."""
        return self.steps if forecaster.coordinate == "step" else self.timesteps

    @classmethod
    def from_features(cls, features: Sequence[torch.Tensor], timesteps: Sequence[float]) -> Trajectory:
        """Build from per-context ``(steps, ...)`` feature tensors of one length (their Grams are summed)."""
        gram = None
        for feature in features:
            flat = feature.reshape(feature.shape[0], -1).double()
            part = (flat @ flat.T).numpy()
            gram = part if gram is None else gram + part
        assert gram is not None
        scale = float(np.mean(np.diag(gram))) or 1.0
        n = gram.shape[0]
        return cls(gram / scale, np.arange(n, dtype=np.float64), np.asarray(timesteps, dtype=np.float64))


def forecast_weights(
    forecaster: Forecaster, xs: Sequence[float], targets: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Weights over the fed points of the forecaster's forecast at each target.

    Args:
        forecaster: A forecaster linear in its features (see `check_linear`).
        xs: Coordinates of the computed steps, in order.
        targets: Coordinates to forecast at (after the last computed one).

    Returns:
        ``(len(targets), len(xs))`` float64.

    """
    history = forecaster.make_history(None, {})
    k = len(xs)
    for i, x in enumerate(xs):
        history.update(torch.eye(k, dtype=torch.float32)[i].clone(), float(x))
    return np.stack([history.predict(float(t)).double().numpy() for t in targets]).reshape(len(targets), k)


def check_linear(forecaster: Forecaster, xs: Sequence[float], target: float, seed: int = 0) -> bool:
    """Whether the forecaster's forecast equals its one-hot weights applied to random features."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(len(xs), 7, generator=generator)
    history = forecaster.make_history(None, {})
    for feature, x in zip(features, xs, strict=True):
        history.update(feature.clone(), float(x))
    direct = history.predict(float(target)).double()
    weights = torch.from_numpy(forecast_weights(forecaster, xs, [target])[0])
    return bool(torch.allclose(direct, weights @ features.double(), rtol=1e-4, atol=1e-5))


def _quadratic(gram: np.ndarray, points: np.ndarray, weights: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``||sum_i w_ti F_points[i] - F_targets[t]||^2`` for each target t (weights ``(T, K)``)."""
    sub = gram[np.ix_(points, points)]
    cross = gram[np.ix_(points, targets)]  # (K, T)
    quad = np.einsum("tk,kl,tl->t", weights, sub, weights)
    lin = np.einsum("tk,kt->t", weights, cross)
    return np.maximum(quad - 2 * lin + gram[targets, targets], 0.0)


def step_weights(trajectory: Trajectory, kind: str) -> np.ndarray:
    """Per-step weights of the squared forecast errors in the cost (normalised to mean 1).

    Args:
        trajectory: The trajectory.
        kind: ``"uniform"`` (every step alike); ``"dt"`` (the squared timestep gap to the next
            step: the sampler integrates the model's output over that gap, so an output error
            moves the latent in proportion to it); ``"late"`` (a squared ramp from 0.5 to 1.5:
            an error late in the trajectory is corrected by fewer later steps); or
            ``"sensitivity"``, the product of the two, which is the tuner's ranking cost: its
            order agreed best with the real PSNR of cached runs (Spearman -0.87 over 11
            schedules on flux-digits and on dit-digits, against -0.70 and -0.75 uniform; see
            ``tests/calibrate``). The others generate alternative schedules; verification decides.

    """
    n = trajectory.length
    t = trajectory.timesteps
    gaps = np.abs(np.diff(t)) if n > 1 else np.ones(1)
    gaps = np.append(gaps, gaps[-1] if n > 1 else 1.0) ** 2
    ramp = (0.5 + np.arange(n) / max(n - 1, 1)) ** 2
    weights = {"uniform": np.ones(n), "dt": gaps, "late": ramp, "sensitivity": gaps * ramp}
    if kind not in weights:
        raise ValueError(f"`weighting` must be one of {list(weights)}, got {kind!r}")
    chosen = weights[kind]
    mean = float(chosen.mean()) or 1.0
    return chosen / mean


def error_table(trajectory: Trajectory, forecaster: Forecaster, max_gap: int) -> np.ndarray:
    """Return the forecast errors ``E[p + 1, l, j]`` of a two-point history (computed ``p < l``, ``j > l``).

    ``p = -1`` (index 0) is a history of the single point ``l``. Entries outside ``l < j <= l +
    max_gap`` are inf. Forecasters that keep more points still see only these two here.
    """
    n = trajectory.length
    x = trajectory.coordinate(forecaster)
    table = np.full((n + 1, n, n), np.inf)
    for last in range(n):
        targets = np.arange(last + 1, min(n, last + max_gap + 1))
        if targets.size == 0:
            continue
        for prev in range(-1, last):
            points = np.array([last] if prev < 0 else [prev, last])
            weights = forecast_weights(forecaster, x[points], x[targets])
            table[prev + 1, last, targets] = _quadratic(trajectory.gram, points, weights, targets)
    return table


def best_schedules(
    table: np.ndarray, weights: np.ndarray, counts: Sequence[int], max_gap: int
) -> dict[int, tuple[float, list[int]]]:
    """Return the cheapest schedule with each number of computed steps, by dynamic programming.

    Args:
        table: `error_table`'s ``(n + 1, n, n)`` errors.
        weights: ``(n,)`` per-step weights of the errors (`step_weights`).
        counts: The numbers of computed steps M wanted (1 <= M <= n).
        max_gap: Most steps between two computed ones (forecast runs of at most ``max_gap - 1``).

    Returns:
        For each M: ``(cost, computed steps)``; the first step is always computed.

    """
    n = table.shape[1]
    weighted = table * weights[None, None, :]
    # segment[p + 1, l, q]: cost of forecasting l + 1 .. q - 1 from (p, l); tail[p + 1, l]: l + 1 .. n - 1
    finite = np.where(np.isinf(weighted), 0.0, weighted)
    cumulative = np.concatenate([np.zeros((n + 1, n, 1)), np.cumsum(finite, axis=2)], axis=2)
    top = max(counts)
    best: dict[int, tuple[float, list[int]]] = {}
    cost = np.full((top + 1, n + 1, n), np.inf)  # cost[m, p + 1, l]: m computed steps, the last two p, l
    back = np.full((top + 1, n + 1, n), -2, dtype=np.int64)
    cost[1, 0, 0] = 0.0
    for m in range(1, top + 1):
        for last in range(n):
            for prev1 in range(last + 1):  # prev1 = p + 1
                here = cost[m, prev1, last]
                if not np.isfinite(here) or m == top:
                    continue
                ahead = np.arange(last + 1, min(n, last + max_gap + 1))
                if ahead.size == 0:
                    continue
                values = here + cumulative[prev1, last, ahead] - cumulative[prev1, last, last + 1]
                better = values < cost[m + 1, last + 1, ahead]
                cost[m + 1, last + 1, ahead[better]] = values[better]
                back[m + 1, last + 1, ahead[better]] = prev1
    for m in counts:
        candidates = []
        for last in range(n):
            if n - 1 - last >= max_gap:
                continue
            for prev1 in range(last + 1):
                if not np.isfinite(cost[m, prev1, last]):
                    continue
                tail = cumulative[prev1, last, n] - cumulative[prev1, last, last + 1]
                candidates.append((cost[m, prev1, last] + tail, prev1, last))
        if not candidates:
            continue
        total, prev1, last = min(candidates)
        steps = [last]
        k = m
        while k > 1:
            steps.append(prev1 - 1)
            prev1, last, k = back[k, prev1, last], prev1 - 1, k - 1
        best[m] = (float(total), sorted(steps))
    return best


def step_costs(trajectory: Trajectory, forecaster: Forecaster, computed: Sequence[int]) -> np.ndarray:
    """Return each step's exact forecast error under a schedule (0 at computed steps).

    The forecaster sees its whole history (up to 8 points), not just two: valid for any linear
    forecaster, whatever the number of points it uses.
    """
    x = trajectory.coordinate(forecaster)
    n = trajectory.length
    done = sorted(set(computed))
    costs = np.zeros(n)
    position = 0
    for j in range(n):
        while position < len(done) and done[position] <= j:
            position += 1
        if j in done:
            continue
        if position == 0:
            costs[j] = np.inf
            continue
        keep = np.array(done[:position])  # every point: `Damped` counts its computed steps
        w = forecast_weights(forecaster, x[keep], [x[j]])
        costs[j] = _quadratic(trajectory.gram, keep, w, np.array([j]))[0]
    return costs


def schedule_cost(
    trajectory: Trajectory, forecaster: Forecaster, computed: Sequence[int], weights: np.ndarray
) -> float:
    """Return the exact weighted cost of a schedule (see `step_costs`)."""
    return float(np.dot(weights, step_costs(trajectory, forecaster, computed)))
