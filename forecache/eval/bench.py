"""``forecache.eval.bench``: the baseline and a list of methods on the same seeds, measured and reported.

Example (a notebook)::

    from forecache.eval import bench
    result = bench(methods=["taylorseer", "diffusers.fbcache"], match=(2, 3), steps=20, seeds=range(4))
    print(result.row("taylorseer @3x").psnr_db)

With `match` (the default when no method is named) each method's knob is tuned onto each target
compute ratio and quality is compared at equal compute; otherwise each method runs as given. With
an output folder every finished row is on disk the moment it finishes (see `forecache.eval.store`),
the report and figures are rewritten at the end, also after Ctrl-C or a failure, and `resume`
continues a run that was cut short.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

import forecache
import forecache.eval.temporal as temporal
from forecache.eval.config import DEFAULT_METHODS, DEFAULT_TARGETS, BenchConfig, RunConfig
from forecache.eval.matched import run_matched
from forecache.eval.methods import MethodSpec
from forecache.eval.metrics import FID_MIN_SAMPLES, QualityScorer
from forecache.eval.outputs import write_outputs
from forecache.eval.quiet import captured
from forecache.eval.report import format_table
from forecache.eval.runner import Harness
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.store import RunFolder, file_digests
from forecache.eval.workload import (
    Workload,
    build_call_kwargs,
    conditions_for,
    load_pipeline,
    reference_of,
    source_of,
)

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_TARGETS",
    "BenchConfig",
    "RunConfig",
    "bench",
    "format_table",
    "prepare",
    "resolve_threads",
    "run_methods",
    "torch_threads",
    "write_outputs",
]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the ``with`` block with `threads` torch CPU threads (None: unchanged), then restore them."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_threads(config: RunConfig) -> int | None:
    """Return the torch thread count a run uses (see `RunConfig.threads`); None keeps torch's."""
    if config.threads is not None:
        return config.threads
    small = reference_of(config.model) is not None or (
        isinstance(config.model, str) and source_of(config.model) is not None
    )
    return 1 if small and torch.device(config.device).type == "cpu" else None


def _environment(config: RunConfig) -> dict[str, Any]:
    import diffusers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "device": torch.cuda.get_device_name(config.device)
        if config.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "dtype": config.dtype,
        "torch_threads": resolve_threads(config) or torch.get_num_threads(),
        "platform": sys.platform,
    }


def prepare(config: RunConfig) -> tuple[Harness, dict[str, Any]]:
    """Load the pipeline, build the workload and the quality scorer.

    Returns:
        The harness (no method run yet) and the workload description.

    """
    pipe, source = load_pipeline(config.model, config.device, config.dtype)
    reference = reference_of(config.model)
    conditions, described = conditions_for(pipe, len(config.seeds), config.prompts, reference)
    kwargs = build_call_kwargs(
        pipe,
        config.steps,
        config.guidance_scale,
        config.height,
        config.width,
        config.frames,
        defaults=dict(reference.call_defaults) if reference is not None else None,
    )
    calibration = reference.calibration_conditions(len(config.seeds)) if reference is not None else None
    workload = Workload(
        pipe, config.seeds, conditions, kwargs, torch.device(config.device), config.output, calibration
    )
    judge = reference.judge() if reference is not None else None
    real: np.ndarray | None = None
    real_note = "the baseline's images (set once the baseline has run)"
    if judge is not None and conditions is not None:
        real, real_note = judge.real_images(conditions)
    scorer = QualityScorer(real, real_note, conditions, judge)
    harness = Harness(
        workload, config.batch_size, config.timed_repeats, config.warmup, scorer, config.progress
    )
    description = {
        "model": source,
        "pipeline": type(pipe).__name__,
        "transformer": type(pipe.transformer).__name__,
        "conditions": described,
        "samples": len(config.seeds),
        "seeds": list(config.seeds),
        "batch_size": config.batch_size,
        "call_arguments": kwargs,
        "repeats": config.timed_repeats,
        "output": config.output,
    }
    return harness, description


def run_baseline(harness: Harness, spec: MethodSpec) -> MethodResult:
    """Run the baseline and set the FID reference set when the model brings none.

    Raises:
        RuntimeError: If the baseline cannot run (nothing can be compared then).

    """
    base = harness.run(spec)
    if not base.ok or harness.baseline is None:
        raise RuntimeError(f"the baseline could not run: {base.error}")
    if base.images is not None and base.images.ndim == 5:
        harness.scorer.notes["fid"] = "not computed: video outputs (FID, LPIPS, CLIP score: image metrics)"
    elif harness.scorer.real_images is None and base.images is not None and harness.workload.kind != "latent":
        harness.scorer.set_reference(base.images, "the baseline's images")
        base.fid = harness.scorer.fid(base.images).value
    return base


def run_methods(harness: Harness, specs: Sequence[MethodSpec]) -> list[MethodResult]:
    """Run the baseline (first) and the other methods as given, in memory (no matching, no files)."""
    from tqdm.auto import tqdm

    results = [run_baseline(harness, specs[0])]
    for spec in tqdm(specs[1:], desc="methods", disable=not harness.progress, unit="method"):
        results.append(harness.run(spec))
    return results


def _settings(config: RunConfig) -> dict[str, Any]:
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    if settings["model"] is not None and not isinstance(settings["model"], str):
        settings["model"] = f"{type(settings['model']).__name__} instance"
    return settings


def _notes(harness: Harness, config: RunConfig) -> dict[str, str]:
    notes = {
        **harness.scorer.notes,
        "memory": harness.memory_note,
        "compute_ratio": "linear-layer FLOPs of the baseline over the method's: nn.Linear and "
        "convolution layers that ran inside the transformer (forecache.calibrate.flops), for every row",
        "execution_ratio": "forecache rows only: cached units (blocks or modules) without the cache "
        "over those that ran, from forecache.stats",
    }
    samples = len(config.seeds)
    if samples < FID_MIN_SAMPLES and not notes.get("fid", "").startswith(("unavailable", "not computed")):
        notes["fid"] = (
            f"not computed: {samples} samples per method < {FID_MIN_SAMPLES} (would be: {notes['fid']})"
        )
    if harness.repeats == 0:
        notes["speed"] = "not timed (repeats 0): set repeats (--repeats N) to time each row N times"
    if harness.workload.kind == "frames":
        notes.update(temporal.notes(harness.scorer.judge))
    if harness.workload.kind == "latent":
        notes["quality"] = "not measured: latent outputs (output='latent'), a speed and compute run"
    return notes


class _Session:
    """One bench run: the baseline, then each method; every row saved the moment it finishes."""

    def __init__(
        self, config: BenchConfig, harness: Harness, folder: RunFolder | None, result: BenchResult
    ) -> None:
        self.config, self.harness, self.folder, self.result = config, harness, folder, result
        self.done = folder.finished() if folder is not None and config.resume else {}
        self.searches = folder.searches() if folder is not None and config.resume else {}
        self.matched: list[dict[str, Any]] = []

    def _finished(self, spec: MethodSpec) -> list[MethodResult] | None:
        """Return the stored rows of a method the resumed run finished, else None."""
        if not self.config.match:
            return [self.done[spec.label]] if spec.label in self.done else None
        search = self.searches.get(spec.label)
        if search is None or search.get("error"):
            return None
        wanted = [c["row"] for c in search["cells"] if c.get("row")]
        if not all(label in self.done for label in wanted):
            return None
        self.matched.append({k: v for k, v in search.items()})
        return [self.done[label] for label in dict.fromkeys(wanted)]

    def _save(self, row: MethodResult, keep: bool = False) -> None:
        if self.folder is not None:
            images = row.images
            self.folder.save_row(len(self.result.methods), row)
            if keep:
                row.images = images
        self.result.methods.append(row)

    def run(self) -> None:
        config, specs = self.config, self.config.specs
        pending = [spec for spec in specs[1:] if self._finished(spec) is None]
        self.matched.clear()
        if "baseline" in self.done and not pending:
            self.result.methods.append(self.done["baseline"])
        else:
            base = run_baseline(self.harness, specs[0])
            stored = self.done.get("baseline")
            if stored is not None and stored.images is not None and base.images is not None:
                _check_same_outputs(stored.images, base.images)
            self._save(base, keep=True)
        from tqdm.auto import tqdm

        bar = tqdm(specs[1:], desc="methods", disable=not config.progress, unit="method")
        for spec in bar:
            bar.set_postfix_str(spec.label[:30])
            stored_rows = self._finished(spec)
            if stored_rows is not None:
                self.result.methods += stored_rows
                continue
            if config.match:
                self._run_matched(spec)
            else:
                self._save(self.harness.run(spec))
        bar.close()

    def _run_matched(self, spec: MethodSpec) -> None:
        from tqdm.auto import tqdm

        progress, self.harness.progress = self.harness.progress, False
        inner = tqdm(desc=spec.label[:30], disable=not self.config.progress, leave=False, unit="run")
        try:
            outcome = run_matched(
                self.harness, spec, self.config.match or (), self.config.tolerance, lambda _: inner.update()
            )
        finally:
            inner.close()
            self.harness.progress = progress
        if outcome.error is not None:
            failed = MethodResult(spec.label, spec.name, spec.kind, dict(spec.params), status="error")
            failed.error = outcome.error
            outcome.rows = [failed]
        for row in outcome.rows:
            self._save(row)
        record = outcome.record()
        self.matched.append(record)
        if self.folder is not None:
            self.folder.save_search(spec.label, record)


def _check_same_outputs(stored: np.ndarray, now: np.ndarray) -> None:
    """Refuse to resume when the baseline no longer reproduces the stored one (8-bit comparison)."""
    if stored.shape != now.shape or np.abs(np.round(now * 255.0) - np.round(stored * 255.0)).max() > 1:
        raise ValueError(
            "`resume`: the baseline's outputs differ from the stored ones: the model, its weights or the "
            "software changed; start a new run instead"
        )


def bench(config: BenchConfig | None = None, **overrides: Any) -> BenchResult:
    """Benchmark the baseline and every method on the same seeds (matched or as given).

    Args:
        config: A `BenchConfig`; None builds one from `overrides`.
        **overrides: `BenchConfig` fields, replacing those of `config`.

    Returns:
        The `BenchResult` (rows in `methods`, baseline first; ``match`` holds the matched-speed
        search per method). With an output folder the report and figures are written, also when
        the run is interrupted (``complete`` false) before the `KeyboardInterrupt` propagates.

    Raises:
        ValueError: Invalid settings (naming the field, allowed values and value), an unwritable
            output folder (before anything runs), or a model that cannot be loaded. A method that
            fails does not raise: its row has the error (see `BenchResult.failed`).
        KeyboardInterrupt: Ctrl-C, after the finished rows and the report are written.

    """
    config = dataclasses.replace(config, **overrides) if config is not None else BenchConfig(**overrides)
    where = config.resume or config.out
    folder = RunFolder(where, resume=config.resume is not None) if where is not None else None
    digests = file_digests(config.config_files)
    if folder is not None and config.resume is not None:
        folder.check_resumable(_settings(config), digests)
    preload = tuple(dict.fromkeys(module for s in config.specs for module in s.method.preload))
    with captured(config.verbose, preload) as capture, torch_threads(resolve_threads(config)):
        try:
            harness, workload = prepare(config)
        except BaseException:
            if folder is not None and config.resume is None:
                folder.discard()  # nothing ran: leave no empty folder behind
            raise
        result = BenchResult(
            kind="bench",
            settings=_settings(config),
            workload=workload,
            environment=_environment(config),
            notes={},
            methods=[],
            created="",
            forecache_version=forecache.__version__,
            complete=False,
        )
        if folder is not None and config.resume is None:
            folder.start(
                {
                    "settings": result.settings,
                    "config_file_sha256": digests,
                    "workload": workload,
                    "environment": result.environment,
                }
            )
        session = _Session(config, harness, folder, result)
        try:
            session.run()
            result.complete = True
        finally:
            result.notes = _notes(harness, config)
            if config.match:
                result.match = {
                    "targets": list(config.match),
                    "tolerance": config.tolerance,
                    "methods": session.matched,
                }
            result.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result.log = capture.lines()
            if folder is not None:
                result.files = write_outputs(result, folder)
    return result
