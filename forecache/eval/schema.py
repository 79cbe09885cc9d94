"""The results schema of ``forecache bench`` and ``forecache sweep``: result dataclasses and their JSON form.

``results.json``, schema version 1 (``schema_version``; a change of meaning bumps it)::

    schema_version     int, 1
    kind               "bench" or "sweep"
    forecache_version  str
    created            ISO-8601 UTC time the run finished
    environment        python, torch, diffusers versions; device; dtype; torch CPU threads
    settings           every field of the BenchConfig / SweepConfig that produced the file
    workload           model (where it was loaded from), pipeline class, conditions, samples, seeds,
                       steps, call arguments
    notes              per metric: what it measures, or "unavailable: <reason>"; "memory": how peak
                       memory was measured; "compute_ratio" and "flops_ratio": their definitions
    methods            list, baseline first; each entry:
      label              row name (the method spec, or the config file's label)
      method, kind       method name; "baseline" | "forecache" | "peer"
      params             the overrides given; for forecache methods also "config": every field
      status, error      "ok" | "error"; the error text of a method that could not run (else null)
      compute_ratio      block (or module) executions without cache / with it, from forecache.stats,
                         summed over all batches and guidance branches; peers: = flops_ratio
      compute_ratio_source "forecache.stats (<unit> executions)" or "FlopCounterMode (transformer FLOPs)"
      flops_ratio        transformer FLOPs of the baseline / of the method (torch FlopCounterMode:
                         matmul, convolution and attention FLOPs; element-wise work excluded)
      call_s, loop_s     timing summaries {median, min, max, samples} in seconds of all batches:
                         the whole pipeline call, and the denoising loop (first transformer call to last)
      speedup_call, speedup_loop {median, low, high}: baseline median / method median, and the
                         range baseline median / method max .. baseline median / method min; the
                         baseline median is over the baseline runs timed just before and just
                         after the method (its info.baseline_call_s_around), so load drift cancels
      psnr_db            PSNR against the baseline image of the same seed, pooled MSE over samples
      psnr_db_per_sample per sample
      ssim, lpips        paired with the baseline (lpips null when unavailable, see notes)
      fid                see notes["fid"] for the features and the reference set
      class_accuracy     fraction classified as the requested digit (reference models only)
      clip_score         CLIP score against the prompts (text models with local CLIP weights only)
      peak_memory_bytes  see notes["memory"]
      cache_bytes        peak bytes of forecache's histories (forecache.stats), null for peers
      fallbacks          forecast steps forecache computed instead because a forecast was not finite
                         or out of range (forecache.stats), null for peers
      decisions          {context: [one string per batch]}: "C" computed / "F" forecast per step
      call_flops_fraction FLOPs of each transformer call of the first batch / the baseline's same call
      info               method-specific extras (e.g. MagCache's calibrated ratios)

Non-finite numbers (PSNR of identical images is ``inf``) are written as the strings ``"inf"``,
``"-inf"`` or ``"nan"``, so the file is strict JSON; an unavailable metric is ``null`` and its
note says why.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RESULTS_SCHEMA_VERSION", "BenchResult", "MethodResult", "jsonable", "timing_summary"]

RESULTS_SCHEMA_VERSION = 1


def timing_summary(samples: list[float]) -> dict[str, Any] | None:
    """``{median, min, max, samples}`` of timing samples, None if there are none."""
    if not samples:
        return None
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def speedup(baseline: list[float], method: list[float]) -> dict[str, float] | None:
    """Baseline median over method median, with the range from the method's min and max."""
    if not baseline or not method:
        return None
    base = statistics.median(baseline)
    return {"median": base / statistics.median(method), "low": base / max(method), "high": base / min(method)}


@dataclass
class MethodResult:
    """One row of a benchmark (see the module docstring for each field)."""

    label: str
    method: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    compute_ratio: float | None = None
    compute_ratio_source: str = ""
    flops_ratio: float | None = None
    call_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    speedup_call: dict[str, float] | None = None
    speedup_loop: dict[str, float] | None = None
    psnr_db: float | None = None
    psnr_db_per_sample: list[float] = field(default_factory=list)
    ssim: float | None = None
    lpips: float | None = None
    fid: float | None = None
    class_accuracy: float | None = None
    clip_score: float | None = None
    peak_memory_bytes: int | None = None
    cache_bytes: int | None = None
    fallbacks: int | None = None
    decisions: dict[str, list[str]] = field(default_factory=dict)
    call_flops_fraction: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    images: np.ndarray | None = field(default=None, repr=False)
    flops: int | None = field(default=None, repr=False)
    flops_per_call: list[int] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the method ran."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (images and raw FLOP counts left out, timings summarised)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("images", "flops", "flops_per_call"):
            out.pop(key)
        out["call_s"] = timing_summary(self.call_s)
        out["loop_s"] = timing_summary(self.loop_s)
        return jsonable(out)


@dataclass
class BenchResult:
    """A whole benchmark: settings, environment, notes and one `MethodResult` per method."""

    kind: str
    settings: dict[str, Any]
    workload: dict[str, Any]
    environment: dict[str, Any]
    notes: dict[str, str]
    methods: list[MethodResult]
    created: str
    forecache_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, label: str) -> MethodResult:
        """Return the result of the method labelled `label`.

        Raises:
            KeyError: If no method has that label; the message lists the labels.

        """
        for result in self.methods:
            if result.label == label:
                return result
        raise KeyError(f"no method labelled {label!r}; labels: {[r.label for r in self.methods]}")

    def to_dict(self) -> dict[str, Any]:
        """Return the ``results.json`` document."""
        doc = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": self.kind,
            "forecache_version": self.forecache_version,
            "created": self.created,
            "environment": self.environment,
            "settings": self.settings,
            "workload": self.workload,
            "notes": self.notes,
            "methods": [m.to_dict() for m in self.methods],
            **self.extra,
        }
        return jsonable(doc)


def jsonable(obj: Any) -> Any:
    """Convert to strict-JSON types: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
