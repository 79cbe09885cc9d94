"""Runs one method on the workload: attach it, generate on the same seeds, count, time, score, detach.

Per method: one measured run of all batches (outputs, linear-layer FLOPs, forecache statistics,
peak memory), extra untimed warm-up runs, then `repeats` timed runs of all batches
(``torch.cuda.synchronize`` around GPU timings; none when `repeats` is 0). `evaluate` runs the
first batch only, for the matched-speed search, and `run` reuses such an evaluation as its first
batch. The method is always detached afterwards, also when it failed; a failure anywhere
(attaching, generating, scoring) becomes the row's ``error``, never a dropped row, while Ctrl-C
(`KeyboardInterrupt`) propagates.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import forecache
import forecache.eval.metrics as metrics
import forecache.eval.temporal as temporal
from forecache.calibrate.flops import count_flops
from forecache.eval.methods import MethodRun, MethodSpec, attached
from forecache.eval.probes import loop_clock, memory_probe
from forecache.eval.schema import MethodResult, speedup
from forecache.eval.workload import Workload

__all__ = ["FULL_CALL_FRACTION", "Harness"]

FULL_CALL_FRACTION = 0.95
"""A peer's transformer call counts as computed ("C") when it runs at least this fraction of the
baseline call's FLOPs, else as forecast ("F")."""


@dataclass
class _Generated:
    """What one attached pass over some batches produced."""

    images: list[np.ndarray] = field(default_factory=list)
    flops_per_call: list[int] = field(default_factory=list)
    calls_per_batch: list[int] = field(default_factory=list)
    stats: list[Any] = field(default_factory=list)
    peak_bytes: int | None = None


@dataclass
class Harness:
    """Holds the workload, the scorer and the baseline, and measures methods against them.

    Args:
        workload: What to generate.
        batch_size: Samples per pipeline call.
        repeats: Timed runs of all batches per method (the median is reported); 0: not timed.
        warmup: Untimed runs before timing (the first one is the measured run).
        scorer: Quality metrics.
        progress: Show a progress bar per method.

    """

    workload: Workload
    batch_size: int
    repeats: int
    warmup: int
    scorer: metrics.QualityScorer
    progress: bool = False
    baseline: MethodResult | None = None
    memory_note: str = "unavailable"
    calls_per_step: int = 1
    _batches: list[list[int]] = field(default_factory=list)
    _bracket: tuple[list[float], list[float]] = ([], [])
    _reference: tuple[list[float], list[float]] = ([], [])
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)
    _first: dict[str, _Generated] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.workload.seeds)
        self._batches = [list(range(i, min(i + self.batch_size, n))) for i in range(0, n, self.batch_size)]

    @property
    def transformer(self) -> torch.nn.Module:
        """The pipeline's transformer."""
        return self.workload.pipe.transformer

    @property
    def _sync(self) -> bool:
        return self.workload.device.type == "cuda"

    @contextlib.contextmanager
    def _attached(self, spec: MethodSpec, result: MethodResult) -> Iterator[None]:
        pipe = self.workload.pipe
        run = MethodRun(
            num_inference_steps=self.workload.call_kwargs["num_inference_steps"],
            run_once=functools.partial(self.workload, self._batches[0]),
            calls_per_step=self.calls_per_step,
            memo=self._memo.setdefault(spec.name, {}),
            calibration=self.workload.calibration_kwargs,
        )
        with attached(spec, pipe, pipe, run):
            result.info.update(run.info)
            yield

    def _bar(self, total: int, label: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=label[:40], disable=not self.progress, leave=False, unit="run")

    def evaluate(self, spec: MethodSpec) -> MethodResult:
        """Run `spec` on the first batch once (FLOPs, outputs, quality against the baseline's same samples).

        The generation is kept, so `run` of the same spec reuses it as its first batch.

        Returns:
            A row for the first batch only (no timing), or one with the error.

        """
        result = MethodResult(spec.label, spec.name, spec.kind, dict(spec.params))
        try:
            with self._attached(spec, result):
                generated = self._generate(spec, self._batches[:1])
            self._first[spec.label] = generated
            self._fill(spec, result, generated, first_only=True)
        except Exception as err:  # a setting that cannot run is reported, not raised
            result.status, result.error = "error", f"{type(err).__name__}: {err}"
        return result

    def forget(self) -> None:
        """Drop the kept first-batch generations of `evaluate` (call after each method's search)."""
        self._first.clear()

    def run(self, spec: MethodSpec) -> MethodResult:
        """Measure `spec` on all batches (the baseline first: the others are compared with it).

        After each method, the baseline is timed once more, so every method's speed-up is taken
        against the baseline runs just before and just after it: a machine whose load drifts
        (shared CPUs, thermal limits) biases no method.
        """
        result = MethodResult(spec.label, spec.name, spec.kind, dict(spec.params))
        try:
            with self._attached(spec, result):
                self._measure(spec, result)
        except Exception as err:  # a method that cannot run is reported, not dropped
            result.status, result.error = "error", f"{type(err).__name__}: {err}"
            result.images = None
        self._first.pop(spec.label, None)
        if self._sync:  # a row's CUDA tensors held in cycles; on CPU it took 0.3 s a row for nothing
            gc.collect()
        if spec.kind == "baseline" and result.ok:
            self.baseline = result
            steps = self.workload.call_kwargs["num_inference_steps"]
            self.calls_per_step = max(1, round(len(result.flops_per_call) / len(self._batches) / steps))
            self._bracket = (result.call_s[-1:], result.loop_s[-1:])
        elif self.baseline is not None and result.ok and self.repeats > 0:
            call_after, loop_after = self._time_runs(1)
            self._reference = (self._bracket[0] + call_after, self._bracket[1] + loop_after)
            self._bracket = (call_after, loop_after)
            result.info["baseline_call_s_around"] = self._reference[0]
        if result.ok and self.baseline is not None:
            try:
                self._score(spec, result)
            except Exception as err:  # a metric that fails loses this row only
                result.status, result.error = "error", f"scoring failed: {type(err).__name__}: {err}"
        return result

    def _generate(self, spec: MethodSpec, batches: Sequence[list[int]]) -> _Generated:
        out = _Generated()
        with memory_probe(self.workload.device) as memory:
            for batch in batches:
                with count_flops(self.transformer) as count:
                    out.images.append(self.workload(batch))
                out.flops_per_call += count.per_call
                out.calls_per_batch.append(len(count.per_call))
                out.stats.append(forecache.stats(self.workload.pipe) if spec.kind == "forecache" else None)
        self.memory_note = memory.method
        out.peak_bytes = memory.peak_bytes
        return out

    def _measure(self, spec: MethodSpec, result: MethodResult) -> None:
        first = self._first.get(spec.label)
        with self._bar(self.warmup + self.repeats, spec.label) as bar:
            rest = self._generate(spec, self._batches[1:] if first else self._batches)
            generated = rest
            if first is not None:
                generated = _Generated(
                    first.images + rest.images,
                    first.flops_per_call + rest.flops_per_call,
                    first.calls_per_batch + rest.calls_per_batch,
                    first.stats + rest.stats,
                    max((b for b in (first.peak_bytes, rest.peak_bytes) if b is not None), default=None),
                )
            self._fill(spec, result, generated, first_only=False)
            bar.update()
            if self.repeats == 0:
                return
            for _ in range(self.warmup - 1):
                for batch in self._batches:
                    self.workload(batch)
                bar.update()
            result.call_s, result.loop_s = self._time_runs(self.repeats, bar.update)

    def _fill(self, spec: MethodSpec, result: MethodResult, generated: _Generated, first_only: bool) -> None:
        """Fill in outputs, FLOPs, ratios, decisions and (for `evaluate`) PSNR of a generation."""
        result.images = np.concatenate(generated.images)
        result.peak_memory_bytes = generated.peak_bytes
        result.flops_per_call = generated.flops_per_call
        result.flops = sum(generated.flops_per_call)
        first_calls = generated.calls_per_batch[0]
        base = self.baseline.flops_per_call if self.baseline is not None else generated.flops_per_call
        result.call_flops_fraction = [
            round(f / b, 4) if b else 1.0
            for f, b in zip(generated.flops_per_call[:first_calls], base[:first_calls], strict=False)
        ]
        base_flops = sum(base[: len(generated.flops_per_call)])
        if result.flops:
            result.compute_ratio = base_flops / result.flops
            result.skips_nothing = result.compute_ratio < 1.005
        if spec.kind == "forecache":
            self._read_stats(result, generated.stats)
        elif spec.kind == "peer":
            result.decisions = _peer_decisions(result.call_flops_fraction, self.calls_per_step)
        if first_only and self.baseline is not None and self.baseline.images is not None:
            reference = self.baseline.images[: len(result.images)]
            if self.workload.kind != "latent":
                scores = metrics.paired_scores(reference, result.images, with_ssim=False)
                result.psnr_db, result.psnr_db_per_sample = scores["psnr_db"], scores["psnr_db_per_sample"]

    @staticmethod
    def _read_stats(result: MethodResult, stats: list[Any]) -> None:
        if any(s is None for s in stats):
            raise RuntimeError("forecache.stats recorded nothing: the transformer was never called")
        total = sum(s.total_units for s in stats)
        executed = sum(s.executed_units for s in stats)
        result.execution_ratio = total / executed if executed else 1.0
        result.execution_unit = stats[0].unit
        result.cache_bytes = max(s.cache_bytes for s in stats)
        result.fallbacks = sum(getattr(s, "fallbacks", 0) for s in stats)
        decisions: dict[str, list[str]] = {}
        for s in stats:
            for name, ctx in s.contexts.items():
                decisions.setdefault(name, []).append("".join(ctx.decisions))
        result.decisions = decisions
        gate_errors = {
            name: [[step, round(err, 5)] for step, err in ctx.gate_errors]
            for name, ctx in stats[0].contexts.items()
            if ctx.gate_errors
        }
        if gate_errors:
            result.info["gate_errors"] = gate_errors
        result.info["fallbacks_per_context"] = {
            name: ctx.fallbacks for name, ctx in stats[0].contexts.items()
        }

    def _timed(self, fn: Callable[[], Any]) -> float:
        if self._sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def _time_runs(
        self, repeats: int, tick: Callable[[], Any] | None = None
    ) -> tuple[list[float], list[float]]:
        """Time `repeats` runs of all batches: (whole-call seconds, denoising-loop seconds) per run."""
        calls, loops = [], []
        with loop_clock(self.transformer, self._sync) as clock:
            for _ in range(repeats):
                clock.seconds = 0.0
                total = 0.0
                for batch in self._batches:
                    total += self._timed(functools.partial(self.workload, batch))
                    clock.close_run(self._sync)
                calls.append(total)
                loops.append(clock.seconds)
                if tick is not None:
                    tick()
        return calls, loops

    def _score(self, spec: MethodSpec, result: MethodResult) -> None:
        base = self.baseline
        if base is None or base.images is None or result.images is None:
            return
        if spec.kind == "baseline":
            result.compute_ratio, result.skips_nothing = 1.0, True
        reference = (base.call_s, base.loop_s) if spec.kind == "baseline" else self._reference
        result.speedup_call = speedup(reference[0], result.call_s)
        result.speedup_loop = speedup(reference[1], result.loop_s)
        if self.workload.kind == "latent":
            return
        scores = metrics.paired_scores(base.images, result.images)
        for key, value in scores.items():
            setattr(result, key, value)
        if self.workload.kind == "frames":
            scorer = self.scorer
            for key, value in temporal.video_scores(
                base.images, result.images, scorer.judge, scorer.conditions
            ).items():
                setattr(result, key, value)
            return
        result.lpips = self.scorer.lpips(base.images, result.images).value
        result.fid = self.scorer.fid(result.images).value
        result.adherence = self.scorer.adherence(result.images).value
        result.clip_score = self.scorer.clip_score(result.images).value


def _peer_decisions(fractions: list[float], calls_per_step: int) -> dict[str, list[str]]:
    """One letter per transformer call of the first batch, split into the per-step branches."""
    letters = ["C" if f >= FULL_CALL_FRACTION else "F" for f in fractions]
    if calls_per_step == 1:
        return {"transformer calls, from FLOPs": ["".join(letters)]}
    return {
        f"call {b + 1}/{calls_per_step} per step, from FLOPs": ["".join(letters[b::calls_per_step])]
        for b in range(calls_per_step)
    }
