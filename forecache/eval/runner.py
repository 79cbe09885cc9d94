"""Runs one method on the workload: attach it, generate on the same seeds, count, time, score, detach.

Per method: one measured run (images, FLOPs, forecache statistics, peak memory), extra untimed
warm-up runs, then `repeats` timed runs of all batches (``torch.cuda.synchronize`` around GPU
timings). The method is always detached afterwards, also when it failed; a failure becomes the
row's ``error``, never a dropped row.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import forecache
from forecache.eval import metrics
from forecache.eval.methods import MethodSpec, attached
from forecache.eval.peers import PeerRun
from forecache.eval.probes import count_compute, loop_clock, memory_probe
from forecache.eval.schema import MethodResult, speedup
from forecache.eval.workload import Workload

__all__ = ["FULL_CALL_FRACTION", "Harness"]

FULL_CALL_FRACTION = 0.95
"""A peer's transformer call counts as computed ("C") when it runs at least this fraction of the
baseline call's FLOPs, else as forecast ("F")."""


@dataclass
class Harness:
    """Holds the workload, the scorer and the baseline, and measures methods against them.

    Args:
        workload: What to generate.
        batch_size: Samples per pipeline call.
        repeats: Timed runs of all batches per method (the median is reported).
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
    _batches: list[list[int]] = field(default_factory=list)
    _bracket: tuple[list[float], list[float]] = ([], [])
    _reference: tuple[list[float], list[float]] = ([], [])

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
        run = PeerRun(
            num_inference_steps=self.workload.call_kwargs["num_inference_steps"],
            run_once=self._run_first_batch,
        )
        with attached(spec, pipe, pipe, run):
            result.info.update(run.info)
            yield

    def _run_first_batch(self) -> None:
        self.workload(self._batches[0])

    def _bar(self, total: int, label: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=label[:40], disable=not self.progress, leave=False, unit="run")

    def run(self, spec: MethodSpec) -> MethodResult:
        """Measure `spec` (the baseline first: the others are compared with it).

        After each method, the baseline is timed once more, so every method's speed-up is taken
        against the baseline runs just before and just after it: a machine whose load drifts
        (shared CPUs, thermal limits) biases no method.
        """
        params = dict(spec.params)
        result = MethodResult(spec.label, spec.name, spec.kind, params)
        try:
            with self._attached(spec, result):
                self._measure(spec, result)
        except Exception as err:  # a method that cannot run is reported, not dropped
            result.status, result.error = "error", f"{type(err).__name__}: {err}"
            result.images = None
        gc.collect()
        if spec.kind == "baseline" and result.ok:
            self.baseline = result
            self._bracket = (result.call_s[-1:], result.loop_s[-1:])
        elif self.baseline is not None and result.ok:
            call_after, loop_after = self._time_runs(1)
            self._reference = (self._bracket[0] + call_after, self._bracket[1] + loop_after)
            self._bracket = (call_after, loop_after)
            result.info["baseline_call_s_around"] = self._reference[0]
        if result.ok:
            self._score(spec, result)
        return result

    def _generate_measured(self, spec: MethodSpec, result: MethodResult) -> None:
        images, stats, counts = [], [], []
        with memory_probe(self.transformer, self.workload.device) as memory:
            for batch in self._batches:
                with count_compute(self.transformer) as count:
                    images.append(self.workload(batch))
                counts.append(count)
                stats.append(forecache.stats(self.workload.pipe) if spec.kind == "forecache" else None)
        self.memory_note = memory.method
        result.peak_memory_bytes = memory.peak_bytes
        result.images = np.concatenate(images)
        result.flops_per_call = [f for c in counts for f in c.per_call]
        result.flops = sum(c.total for c in counts)
        first_calls = len(counts[0].per_call)
        base = self.baseline.flops_per_call if self.baseline is not None else result.flops_per_call
        result.call_flops_fraction = [
            round(f / b, 4) if b else 1.0
            for f, b in zip(counts[0].per_call, base[:first_calls], strict=False)
        ]
        if spec.kind == "forecache":
            self._read_stats(result, stats)
        elif spec.kind == "peer":
            letters = "".join("C" if f >= FULL_CALL_FRACTION else "F" for f in result.call_flops_fraction)
            result.decisions = {"transformer calls, from FLOPs": [letters]}

    @staticmethod
    def _read_stats(result: MethodResult, stats: list[Any]) -> None:
        if any(s is None for s in stats):
            raise RuntimeError("forecache.stats recorded nothing: the transformer was never called")
        total = sum(s.total_units for s in stats)
        executed = sum(s.executed_units for s in stats)
        result.compute_ratio = total / executed if executed else 1.0
        result.compute_ratio_source = f"forecache.stats ({stats[0].unit} executions)"
        result.cache_bytes = max(s.cache_bytes for s in stats)
        result.fallbacks = sum(getattr(s, "fallbacks", 0) for s in stats)
        decisions: dict[str, list[str]] = {}
        for s in stats:
            for name, ctx in s.contexts.items():
                decisions.setdefault(name, []).append("".join(ctx.decisions))
        result.decisions = decisions
        result.info["gate_errors"] = {
            name: [[step, round(err, 5)] for step, err in ctx.gate_errors]
            for name, ctx in stats[0].contexts.items()
            if ctx.gate_errors
        }
        if not result.info["gate_errors"]:
            del result.info["gate_errors"]

    def _timed(self, fn: Callable[[], Any]) -> float:
        if self._sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def _measure(self, spec: MethodSpec, result: MethodResult) -> None:
        with self._bar(self.warmup + self.repeats, spec.label) as bar:
            self._generate_measured(spec, result)
            bar.update()
            for _ in range(self.warmup - 1):
                for batch in self._batches:
                    self.workload(batch)
                bar.update()
            result.call_s, result.loop_s = self._time_runs(self.repeats, bar.update)

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
        if base.flops and result.flops:
            result.flops_ratio = base.flops / result.flops
        if spec.kind == "baseline":
            result.compute_ratio, result.compute_ratio_source = 1.0, "baseline"
        elif spec.kind == "peer":
            result.compute_ratio, result.compute_ratio_source = (
                result.flops_ratio,
                "FlopCounterMode (transformer FLOPs)",
            )
        reference = (base.call_s, base.loop_s) if spec.kind == "baseline" else self._reference
        result.speedup_call = speedup(reference[0], result.call_s)
        result.speedup_loop = speedup(reference[1], result.loop_s)
        result.psnr_db, result.psnr_db_per_sample = metrics.psnr(base.images, result.images)
        result.ssim = metrics.ssim(base.images, result.images)
        result.lpips = self.scorer.lpips(base.images, result.images).value
        result.fid = self.scorer.fid(result.images).value
        result.class_accuracy = self.scorer.accuracy(result.images).value
        result.clip_score = self.scorer.clip_score(result.images).value
