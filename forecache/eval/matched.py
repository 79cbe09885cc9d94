"""Matched-speed runs: tune one method's knob onto each target compute ratio, then measure it there.

The search (`forecache.eval.knob_search.search`) runs the method on the first batch at each setting it
tries (`Harness.evaluate`: linear-layer FLOPs and PSNR against the baseline's same samples); every
setting runs at most once. Each target that some setting lands on (within the tolerance) becomes a
row measured on all samples (of the settings tried with exactly that compute ratio, the one with
the best first-batch PSNR) (`Harness.run`, which reuses the first batch already generated); a
setting chosen for two targets is measured once. The settings tried are kept as the method's swept
curve for the plots.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forecache.eval.knob_search import MATCHED, search
from forecache.eval.methods import MethodSpec, knob_for, make_method
from forecache.eval.runner import Harness
from forecache.eval.schema import MethodResult

__all__ = ["OFF_TARGET", "MatchedMethod", "cell_label", "run_matched"]

OFF_TARGET = "off target"
"""A cell whose setting landed on the target on the first batch but not on all samples."""


class _SettingFailed(Exception):
    """A setting could not run; the search stops and the method is reported as failed."""


def cell_label(label: str, target: float) -> str:
    """Return the row name of a method at a target (``"taylorseer @3x"``)."""
    return f"{label} @{target:g}x"


@dataclass
class MatchedMethod:
    """One method's matched-speed outcome.

    Attributes:
        label: The method's row name (its spec without the knob).
        method: The method name.
        knob: The knob's description.
        evaluated: Every setting tried: ``{value, compute_ratio, psnr_db}``, in order.
        cells: Per target: ``{target, status, value, compute_ratio, reason, row}``; status is
            "matched", "cannot reach", "error" or `OFF_TARGET` (``row``: the label of the measured
            row, None when unreachable or failed).
        rows: The measured rows (one per distinct matched setting and target).
        error: Why the method failed (then `cells` say "error").

    """

    label: str
    method: str
    knob: str
    evaluated: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    rows: list[MethodResult] = field(default_factory=list)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """Return the JSON form (an entry of ``results.json``'s ``match.methods``)."""
        return {
            "label": self.label,
            "method": self.method,
            "knob": self.knob,
            "evaluated": self.evaluated,
            "cells": self.cells,
            "error": self.error,
        }


def _setting(spec: MethodSpec, field_name: str, value: Any) -> MethodSpec:
    params = {**dict(spec.params), field_name: value}
    made = make_method(spec.name, params, label=f"{spec.label}:{field_name}={value}")
    return made


def run_matched(
    harness: Harness,
    spec: MethodSpec,
    targets: tuple[float, ...],
    tolerance: float,
    tick: Callable[[str], None] | None = None,
) -> MatchedMethod:
    """Tune `spec`'s knob onto each target and measure the settings found.

    Args:
        harness: The harness, its baseline already run.
        spec: The method (its knob not given).
        targets: Target compute ratios.
        tolerance: Relative distance counted as on target.
        tick: Called with a short description after each generation (progress).

    Returns:
        The `MatchedMethod`. A setting that fails to run fails the whole method (``error`` set,
        each cell ``"error"``), and nothing is raised.

    """
    steps = harness.workload.call_kwargs["num_inference_steps"]
    knob = knob_for(spec.name, spec.config, steps)
    outcome = MatchedMethod(spec.label, spec.name, knob.describe())
    tried: dict[Any, MethodSpec] = {}

    def evaluate(value: Any) -> float:
        setting = _setting(spec, knob.field, value)
        row = harness.evaluate(setting)
        if tick is not None:
            tick(f"{spec.label}: {knob.field}={value}")
        if not row.ok or row.compute_ratio is None:
            raise _SettingFailed(f"{knob.field}={value}: {row.error}")
        tried[value] = setting
        outcome.evaluated.append({"value": value, "compute_ratio": row.compute_ratio, "psnr_db": row.psnr_db})
        return row.compute_ratio

    try:
        found = search(knob, evaluate, targets, tolerance)
    except _SettingFailed as err:
        harness.forget()
        outcome.error = str(err)
        outcome.cells = [{"target": t, "status": "error", "value": None, "compute_ratio": None,
                          "reason": str(err), "row": None} for t in targets]  # fmt: skip
        return outcome
    measured: dict[Any, MethodResult] = {}
    for choice in found.choices:
        if choice.status == MATCHED:  # settings at the same compute: the one of best quality
            same = [e for e in outcome.evaluated if abs(e["compute_ratio"] / choice.ratio - 1) < 1e-9]
            best = max(same, key=lambda e: -math.inf if e["psnr_db"] is None else e["psnr_db"])
            choice = dataclasses.replace(choice, value=best["value"])
        cell = {
            "target": choice.target,
            "status": choice.status,
            "value": choice.value,
            "compute_ratio": choice.ratio,
            "reason": choice.reason,
            "row": None,
        }
        if choice.status == MATCHED:
            if choice.value not in measured:
                measured[choice.value] = harness.run(tried[choice.value])
                if tick is not None:
                    tick(f"{spec.label}: measured {knob.field}={choice.value}")
            row = dataclasses.replace(
                measured[choice.value],
                label=cell_label(spec.label, choice.target),
                target=choice.target,
                setting={knob.field: choice.value},
                info=dict(measured[choice.value].info),
            )
            row.images = measured[choice.value].images
            if (
                row.ok
                and row.compute_ratio is not None
                and abs(row.compute_ratio / choice.target - 1) > tolerance
            ):
                cell["status"] = OFF_TARGET  # the first batch landed, all samples together did not
                cell["reason"] = (
                    f"on all samples the ratio is {row.compute_ratio:.2f}x (first batch: {choice.ratio:.2f}x)"
                )
            cell["row"] = row.label
            if not row.ok:
                cell["status"], cell["reason"] = "error", row.error or ""
            outcome.rows.append(row)
        outcome.cells.append(cell)
    harness.forget()
    return outcome
