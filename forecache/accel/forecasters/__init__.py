"""Forecasters: how a skipped step's feature is predicted from the steps that were computed.

Each forecaster is a frozen spec registered by name (`register_forecaster`) that makes one runtime
`History` per cached tensor. Speed/quality: every order adds one history tensor per cached site
(memory and bandwidth of one feature each); higher orders follow curved trajectories better but
amplify noise when the computed steps are far apart. Order 1-2 is the usual sweet spot. `Hermite`
(HiCache) damps the series for long intervals, `FoCa` steps it as an ODE predictor-corrector, and
`DMD` fits exponentials per sample (nonlinear: a torch path instead of the fused kernel).
"""

from forecache.accel.forecasters.adams_bashforth import AdamsBashforth, lagrange_weights
from forecache.accel.forecasters.base import (
    COORDINATES,
    FORECASTERS,
    Coordinate,
    Forecaster,
    Guard,
    History,
    Memo,
    TensorHistory,
    make_history,
    register_forecaster,
)
from forecache.accel.forecasters.damped import Damped
from forecache.accel.forecasters.dmd import DMD
from forecache.accel.forecasters.foca import FoCa
from forecache.accel.forecasters.hermite import Hermite
from forecache.accel.forecasters.reuse import Reuse
from forecache.accel.forecasters.taylor import Taylor

__all__ = [
    "COORDINATES",
    "DMD",
    "FORECASTERS",
    "AdamsBashforth",
    "Coordinate",
    "Damped",
    "FoCa",
    "Forecaster",
    "Guard",
    "Hermite",
    "History",
    "Memo",
    "Reuse",
    "Taylor",
    "TensorHistory",
    "lagrange_weights",
    "make_history",
    "register_forecaster",
]
