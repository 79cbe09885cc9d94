"""Dynamic mode decomposition: an exponential forecast fitted to the computed steps (as cache-dit's DMD)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from forecache.accel._checks import check_int
from forecache.accel.forecasters.adams_bashforth import RingHistory
from forecache.accel.forecasters.base import Coordinate, Guard, History, Memo, register_forecaster
from forecache.kernels.torch_ops import refuse_diverging

__all__ = ["DMD", "DMDHistory", "dmd_coefficients", "dmd_fit"]

RANK_TOLERANCE = 1e-4
"""Singular values below this fraction of the largest are dropped (noise), as cache-dit's DMD."""
RIDGE = 1e-8
"""Added to the kept singular values before they are inverted."""
DOT_CHUNK = 1 << 20
"""Elements per sample converted to float64 at a time for the Gram matrix (bounds its scratch memory)."""


@register_forecaster("dmd")
@dataclass(frozen=True)
class DMD:
    r"""Dynamic mode decomposition forecast (Schmid 2010; cache-dit's DMD calibrator), per sample.

    Fits a linear propagator ``y_{j+1} ~= A y_j`` to the last `window` computed features (the
    longest evenly spaced tail of them, spacing ``D`` steps) and forecasts ``y(x_n + k D) =
    Phi diag(lambda^k) b``: a sum of damped or oscillating exponentials, the solution class of a
    linear ODE, which stays bounded when ``|lambda| <= 1`` where a polynomial runs away. Here the
    fit is done by the method of snapshots: from the Gram matrix ``G = Y^T Y`` of the snapshots
    (kept incrementally), ``X^T X = V S^2 V^T`` (the modes with ``S > 1e-4 S_max``), ``A~ =
    S^-1 V^T X^T X' V S^-1 = W Lambda W^-1``, ``Phi = X' V S^-1 W``, ``b = lstsq(Phi, y_n)``, so
    the forecast is ``X' c(k)`` with ``c(k) = Re(V S^-1 W (lambda^k * b))``: a weighted sum of the
    stored features whose weights depend on the data, one set per sample (each sample of a batch
    gets its own fit, as in cache-dit). With fewer than 3 evenly spaced computed steps (the first
    runs, or a schedule whose last computed steps are unevenly spaced) it falls back to linear
    extrapolation through the last two.

    Nonlinear in the features, so not the fused kernel: per computed step, ``window`` float64
    dot products per sample (one read of each stored feature) and one small device-to-host copy
    (``batch x window`` numbers, a synchronisation); per fit, a ``window x window`` eigen
    decomposition per sample on the host; per forecast, ``window`` multiply-adds in torch plus the
    guard (its margin over the running peak, refused elements take the last computed feature, as
    the fused kernel does). Memory: `window` features per cached tensor. Where it wins (damped
    trajectories: v-prediction, DDIM) and where it trails Taylor-1: BENCHMARKS.md, "Forecasters and
    probing policies".

    Args:
        window: Computed steps kept and fitted, in [3, 8]. Default 4 (cache-dit keeps 4-6).

    """

    window: int = 4

    def __post_init__(self) -> None:
        check_int("DMD", "window", self.window, 3, 8)

    @property
    def coordinate(self) -> Coordinate:
        """The step index: the fit needs evenly spaced snapshots, which timesteps seldom are."""
        return "step"

    def make_history(self, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False) -> History:
        """Create the snapshot ring and Gram matrix of one cached tensor."""
        return DMDHistory(self.window, dtype, memo, track_peak)


Fit = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A DMD fit: ``(basis, lambda, b)`` with the forecast ``X' @ basis @ (lambda^k * b)``."""


def dmd_fit(gram: np.ndarray) -> Fit | None:
    """Fit DMD from the ``(n, n)`` Gram matrix ``Y^T Y`` of ``n >= 3`` evenly spaced snapshots, oldest first.

    Returns:
        ``(basis, lambda, b)``, or None for a degenerate fit (all snapshots zero, singular system).

    """
    xx, xpxp, xxp, xpy = gram[:-1, :-1], gram[1:, 1:], gram[:-1, 1:], gram[1:, -1]
    values, vectors = np.linalg.eigh(xx)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    singular = np.sqrt(values)
    if not singular[0] > 0 or not np.isfinite(singular).all():
        return None
    keep = singular > singular[0] * RANK_TOLERANCE
    v, s_inv = vectors[:, keep], 1.0 / (singular[keep] + RIDGE)
    a_tilde = (s_inv[:, None] * (v.T @ xxp @ v)) * s_inv[None, :]
    try:
        lam, w = np.linalg.eig(a_tilde)
        basis = v @ (s_inv[:, None] * w)  # Phi = X' @ basis
        b = np.linalg.solve(basis.conj().T @ xpxp @ basis, basis.conj().T @ xpy)
    except np.linalg.LinAlgError:
        return None
    return basis, lam.astype(np.complex128), b


def dmd_coefficients(fit: Fit, k: float) -> np.ndarray | None:
    """Real weights over snapshots ``1 .. n-1`` of the forecast `k` spacings past the newest one.

    A fractional `k` takes the principal powers of the eigenvalues.
    """
    basis, lam, b = fit
    coefficients = (basis @ (np.power(lam, k) * b)).real
    return coefficients if np.isfinite(coefficients).all() else None


class DMDHistory(RingHistory):
    """The last `capacity` computed features (newest last), their per-sample Gram matrix, and its fits."""

    def __init__(
        self, capacity: int, dtype: torch.dtype | None, memo: Memo, track_peak: bool = False
    ) -> None:
        super().__init__(capacity, dtype, memo, track_peak)
        self.gram = np.zeros((0, 0, 0))
        self._fits: tuple[int, list[Fit | None]] | None = None

    def update(self, feature: Tensor, x: float) -> None:
        """Store `feature` (one fused copy with the peak) and add its dot products to the Gram matrix."""
        restart = not self.slots or self._signature != (feature.shape, feature.dtype, feature.device)
        full = len(self.slots) == self.capacity
        super().update(feature, x)
        if restart or len(self.slots) == 1:
            self.gram = np.zeros((self._samples(feature), 0, 0))
        elif full:
            self.gram = self.gram[:, 1:, 1:]
        newest = torch.stack([self._dots(self.slots[-1], s) for s in self.slots], dim=1).cpu().numpy()
        n = len(self.slots)
        gram = np.zeros((newest.shape[0], n, n))
        gram[:, : n - 1, : n - 1] = self.gram
        gram[:, n - 1, :] = newest
        gram[:, :, n - 1] = newest
        self.gram, self._fits = gram, None

    @staticmethod
    def _samples(feature: Tensor) -> int:
        return feature.shape[0] if feature.dim() > 1 else 1

    def _dots(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-sample dot products in float64, a chunk of `DOT_CHUNK` elements per sample at a time."""
        rows_a, rows_b = a.reshape(self._samples(a), -1), b.reshape(self._samples(b), -1)
        total = torch.zeros(rows_a.shape[0], dtype=torch.float64, device=a.device)
        for start in range(0, rows_a.shape[1], DOT_CHUNK):
            end = start + DOT_CHUNK
            total += (rows_a[:, start:end].double() * rows_b[:, start:end].double()).sum(1)
        return total

    def _tail(self) -> int:
        """Snapshots in the longest evenly spaced tail (the newest included)."""
        xs, n = self.xs, 1
        while n < len(xs) and math.isclose(xs[-n] - xs[-n - 1], xs[-1] - xs[-2], rel_tol=1e-9):
            n += 1
        return n

    def predict(self, x: float, guard: Guard | None = None, addend: Tensor | None = None) -> Tensor:
        """Return the per-sample DMD forecast at `x`, guarded, plus `addend` (a line before 3 even steps)."""
        n = self._tail()
        weights = None
        if n >= 3:
            if self._fits is None or self._fits[0] != n:  # one fit per sample, once per computed step
                self._fits = (n, [dmd_fit(g[-n:, -n:]) for g in self.gram])
            k = (x - self.xs[-1]) / (self.xs[-1] - self.xs[-2])
            rows = [None if f is None else dmd_coefficients(f, k) for f in self._fits[1]]
            if all(r is not None for r in rows):
                weights = np.stack(rows)  # type: ignore[arg-type]
        if weights is None:  # linear extrapolation (reuse with one point), the fused path
            count = min(len(self.slots), 2)
            lines = (1.0,) if count == 1 else self._line(x)
            return self.combine(
                (0.0,) * (len(self.slots) - count) + lines, len(self.slots) - 1, guard, addend
            )
        return self._forecast(weights, n, guard, addend)

    def _line(self, x: float) -> tuple[float, float]:
        x0, x1 = self.xs[-2], self.xs[-1]
        return ((x1 - x) / (x1 - x0), (x - x0) / (x1 - x0))

    def _forecast(self, weights: np.ndarray, n: int, guard: Guard | None, addend: Tensor | None) -> Tensor:
        last = self.slots[-1]
        batch = self._samples(last)
        c = torch.as_tensor(weights, dtype=torch.float32).to(last.device, non_blocking=True)
        snapshots = self.slots[len(self.slots) - n + 1 :]
        acc = torch.zeros((batch, last.numel() // batch), dtype=torch.float32, device=last.device)
        for j, snapshot in enumerate(snapshots):
            acc.addcmul_(snapshot.reshape(batch, -1).float(), c[:, j : j + 1])
        out = acc.reshape(last.shape)
        if guard is not None and self.peak is not None:
            counter = guard.counter(last.device)
            bound = self.peak * guard.margin
            return refuse_diverging(out, last, bound, counter, guard.slot, addend, self.out_dtype)
        if addend is not None:  # in float32, rounded once into the feature's dtype
            out = out.add_(addend)
        return out if out.dtype == self.out_dtype else out.to(self.out_dtype)
