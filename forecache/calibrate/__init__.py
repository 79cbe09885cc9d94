"""Calibration: record a full-compute trajectory, search schedules offline, verify, write a config.

The package behind the function `forecache.tune(pipe, call_kwargs, ratio=...)` (or
``budget_db=...``): `tuner` (the function), `record` (the recording target), `offline` (the
schedule search), `search` (one transformer's search and verification; two experts combined),
`partial` (partial steps between whole step counts), `refine` (moving the chosen steps by real
runs), `validate` (the choice scored on new seeds of the calibration calls), `frames` (videos
scored frame by frame), `result` (what it returns, its report and plot)
and `flops` (the one FLOPs counter, which the harness measures every method with).
"""

from forecache.calibrate.tuner import DEFAULT_FORECASTERS, Candidate, TuneResult, tune

__all__ = ["DEFAULT_FORECASTERS", "Candidate", "TuneResult", "tune"]
