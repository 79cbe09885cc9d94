"""The slope damping of each forecast stretch of a schedule, fitted by least squares on a recorded trajectory.

For the stretch after computed step ``l`` (the one before it ``p``), `forecache.Damped` forecasts
``F_l + d * c_j * a`` at step ``j``, with ``a = F_l - F_p`` and ``c_j = (x_j - x_l) / (x_l - x_p)``.
The weighted squared error over the stretch, ``sum_j w_j ||d c_j a - (F_j - F_l)||^2``, is a
parabola in ``d``, least at ``d = sum_j w_j c_j <a, F_j - F_l> / (||a||^2 sum_j w_j c_j^2)``: a
few entries of the trajectory's Gram matrix per stretch, and each stretch's damping is found
alone, since offline every forecast starts from computed features. The value is clipped to [0, 1]
(reuse to Taylor order 1): past 1 the fit extrapolates a curvature the two points do not show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecache.accel.forecasters import Forecaster, Taylor
from forecache.calibrate.offline import Trajectory

__all__ = ["DAMPING_SCALES", "fit_damping"]

DAMPING_SCALES = (1.0, 0.5, 0.25)
"""The scales of the fitted dampings the tuner runs for real. The fit scores each forecast against
the recorded (full-compute) trajectory, but a cached run drifts from it, and a slope carries the
drift on: on the scenes model the fit at half or a quarter did best (50 steps, 10x, 64 held-out
prompts: reuse 40.1 dB, the fit 40.8, at half 41.8)."""

_STEP = Taylor()  # slopes on the step index


def fit_damping(
    trajectory: Trajectory, computed: Sequence[int], weights: np.ndarray, along: Forecaster = _STEP
) -> tuple[float, ...]:
    """Return the damping of each stretch of `computed` that least squares on `trajectory` gives.

    Args:
        trajectory: The recorded trajectory (its Gram matrix).
        computed: The computed step indices, the first among them (partial steps counted as computed).
        weights: ``(n,)`` per-step weights of the squared errors (`step_weights`).
        along: The forecaster whose coordinate the slopes are taken on (`Trajectory.coordinate`);
            default the step index.

    Returns:
        One damping per computed step (the first, with no slope before it, is 0.0), each in [0, 1].

    """
    gram = trajectory.gram
    x = trajectory.coordinate(along)
    done = sorted(set(computed))
    ends = [*done[1:], trajectory.length]
    fitted = [0.0]
    for k in range(1, len(done)):
        p, last = done[k - 1], done[k]
        targets = np.arange(last + 1, ends[k])
        norm = gram[last, last] - 2 * gram[last, p] + gram[p, p]  # ||a||^2
        if targets.size == 0 or norm <= 0:
            fitted.append(0.0)
            continue
        c = (x[targets] - x[last]) / (x[last] - x[p])
        moved = gram[last, targets] - gram[last, last] - gram[p, targets] + gram[p, last]  # <a, F_j - F_l>
        w = weights[targets]
        fitted.append(float(np.clip(np.sum(w * c * moved) / (norm * np.sum(w * c * c)), 0.0, 1.0)))
    return tuple(fitted)
