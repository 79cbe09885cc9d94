"""Calibration: record a full-compute trajectory, search schedules offline, verify, write a config.

`forecache.tune(pipe, call_kwargs, ratio=...)` or ``budget_db=...``; see `forecache.tune.tuner`.
"""

from forecache.tune.tuner import DEFAULT_FORECASTERS, Candidate, TuneResult, tune

__all__ = ["DEFAULT_FORECASTERS", "Candidate", "TuneResult", "tune"]
