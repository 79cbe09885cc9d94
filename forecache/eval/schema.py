"""The results schema of ``forecache bench`` and ``forecache sweep``: result dataclasses and their JSON form.

``results.json``, schema version 3 (``schema_version``; a change of meaning bumps it)::

    schema_version     int, 3 (3: `adherence` replaced `class_accuracy`)
    kind               "bench" or "sweep"
    forecache_version  str
    created            ISO-8601 UTC time the file was written
    complete           false while methods are missing (an interrupted run; ``--resume`` completes it)
    environment        python, torch, diffusers versions; device; dtype; torch CPU threads
    settings           every field of the BenchConfig / SweepConfig that produced the file
    workload           model (where it was loaded from), pipeline class, conditions, samples, seeds,
                       steps, call arguments, output ("images", "frames" or "latent")
    notes              per metric: what it measures, or "unavailable: <reason>"; "memory": how peak
                       memory was measured; "compute_ratio", "execution_ratio": their definitions
    match              matched-speed runs only: {targets, tolerance, methods: [{method, label, knob,
                       evaluated: [{value, compute_ratio, psnr_db}], cells: [{target, status,
                       value, compute_ratio, reason, row}]}]}; status: "matched", "cannot reach"
                       (reason: the knob's highest ratio, a jump between neighbouring settings, or
                       the runs allowed), "error", or "off target" (on the first batch only);
                       "row" is the label in `methods`
    methods            list, baseline first; each entry:
      label              row name (the method spec, or the config file's label; matched rows:
                         "<method> @<target>x")
      method, kind       method name; "baseline" | "forecache" | "peer"
      params             every parameter the method ran with (presets: every field)
      target, setting    matched rows: the target ratio and {knob: value} found; else null
      status, error      "ok" | "error"; the error text of a method that could not run (else null)
      compute_ratio      linear-layer FLOPs of the baseline / of the method (``nn.Linear`` and
                         convolutions that ran inside the transformer; `forecache.calibrate.flops`)
      execution_ratio    forecache rows: cached units (blocks or modules) without the cache / with
                         it, from forecache.stats; null for peers
      execution_unit     "block" or "module" (forecache rows), else null
      skips_nothing      true when the method ran every linear layer the baseline ran
      call_s, loop_s     timing summaries {median, min, max, samples} in seconds of all batches (null
                         when not timed): the whole pipeline call, and the denoising loop
      speedup_call, speedup_loop {median, low, high}: baseline median / method median, and the
                         range baseline median / method max .. baseline median / method min; the
                         baseline median is over the baseline runs timed just before and just
                         after the method (its info.baseline_call_s_around), so load drift cancels
      psnr_db            PSNR against the baseline output of the same seed, pooled MSE over samples
                         (and frames)
      psnr_db_per_sample per sample
      psnr_db_per_frame, ssim_per_frame   videos: per frame, over the samples
      ssim, lpips        paired with the baseline (lpips null when unavailable, see notes)
      fid                null unless notes["fid"] says how it was measured (>= 64 samples)
      adherence          reference models only: mean fraction of what each sample's condition asks
                         for that the model's judge finds (the requested digit; a scene prompt's
                         attributes); see notes["adherence"]
                         for videos the mean over frames of the judge's per-frame reading
      adherence_per_frame videos with a video judge: each frame's adherence, mean over the samples
      motion_accuracy    videos with a video judge: per clip the fraction of its objects the judge
                         reads moving as the prompt says, mean over clips
      flicker            videos: how much the row's frame-to-frame change differs from the
                         baseline's, over the baseline's change (forecache.eval.temporal), mean over
                         clips; 0 for the baseline
      flicker_per_sample videos: per clip
      clip_score         CLIP score against the prompts (text models with local CLIP weights only)
      peak_memory_bytes  see notes["memory"]
      cache_bytes        peak bytes of forecache's histories (forecache.stats), null for peers
      fallbacks          forecast steps in which forecache's guard refused a forecast element
                         (forecache.stats), null for peers
      decisions          {context: [one string per batch]}: "C" computed / "F" forecast per step;
                         peers: per transformer-call branch, "C" when the call ran >= 95% of the
                         baseline call's FLOPs
      gate_errors        in info: {context: [[step, error], ...]} of a confidence gate's probes
      call_flops_fraction linear-layer FLOPs of each transformer call of the first batch / the
                         baseline's same call
      images_file        the stored outputs (uint8 .npz) relative to the folder, when written
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
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "BenchResult",
    "MethodResult",
    "jsonable",
    "speedup",
    "timing_summary",
]

RESULTS_SCHEMA_VERSION = 3


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


_IN_MEMORY_ONLY = ("images", "flops", "flops_per_call")


@dataclass
class MethodResult:
    """One row of a benchmark (see the module docstring for each field).

    The generated outputs are in `images` while the run holds them; once written to disk (a run
    with an output folder) they are dropped from memory and `images` reads them back from
    `images_file` (8-bit, as stored) when asked.
    """

    label: str
    method: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    target: float | None = None
    setting: dict[str, Any] | None = None
    status: str = "ok"
    error: str | None = None
    compute_ratio: float | None = None
    execution_ratio: float | None = None
    execution_unit: str | None = None
    skips_nothing: bool | None = None
    call_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    speedup_call: dict[str, float] | None = None
    speedup_loop: dict[str, float] | None = None
    psnr_db: float | None = None
    psnr_db_per_sample: list[float] = field(default_factory=list)
    psnr_db_per_frame: list[float] = field(default_factory=list)
    ssim_per_frame: list[float] = field(default_factory=list)
    ssim: float | None = None
    lpips: float | None = None
    fid: float | None = None
    adherence: float | None = None
    adherence_per_frame: list[float] = field(default_factory=list)
    motion_accuracy: float | None = None
    flicker: float | None = None
    flicker_per_sample: list[float] = field(default_factory=list)
    clip_score: float | None = None
    peak_memory_bytes: int | None = None
    cache_bytes: int | None = None
    fallbacks: int | None = None
    decisions: dict[str, list[str]] = field(default_factory=dict)
    call_flops_fraction: list[float] = field(default_factory=list)
    images_file: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    flops: int | None = field(default=None, repr=False)
    flops_per_call: list[int] = field(default_factory=list, repr=False)
    folder: Path | None = field(default=None, repr=False, compare=False)
    _images: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the method ran."""
        return self.status == "ok"

    @property
    def images(self) -> np.ndarray | None:
        """The outputs ``(batch, H, W, C)`` or ``(batch, frames, H, W, C)`` in [0, 1], or None."""
        if self._images is None and self.images_file is not None and self.folder is not None:
            with np.load(self.folder / self.images_file) as stored:
                array = stored["images"]
            return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
        return self._images

    @images.setter
    def images(self, value: np.ndarray | None) -> None:
        self._images = value

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (outputs and raw FLOP counts left out, timings summarised)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in (*_IN_MEMORY_ONLY, "folder", "_images")
        }
        out["call_s"] = timing_summary(self.call_s)
        out["loop_s"] = timing_summary(self.loop_s)
        return jsonable(out)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], folder: Path | None = None) -> MethodResult:
        """Rebuild a row written by `to_dict` (timings keep their samples; outputs stay on disk)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: _finite(v) for k, v in doc.items() if k in known}
        for key in ("call_s", "loop_s"):
            values[key] = list((doc.get(key) or {}).get("samples", []))
        return cls(**values, folder=folder)


def _finite(value: Any) -> Any:
    """Undo `jsonable`'s encoding of non-finite floats."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


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
    match: dict[str, Any] | None = None
    complete: bool = True
    log: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[MethodResult]:
        """The rows whose method could not run."""
        return [r for r in self.methods if not r.ok]

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
            "complete": self.complete,
            "environment": self.environment,
            "settings": self.settings,
            "workload": self.workload,
            "notes": self.notes,
            "match": self.match,
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
