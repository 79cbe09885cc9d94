"""``forecache.eval.bench``: the baseline and a list of methods on the same seeds, measured and reported.

Example (a notebook)::

    from forecache.eval import bench
    result = bench(methods=["taylorseer:interval=4", "diffusers.fbcache"], steps=20, seeds=range(4))
    print(result.row("taylorseer:interval=4").psnr_db)
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import forecache
from forecache.eval.files import atomic_write_image, atomic_write_json, atomic_write_text
from forecache.eval.methods import BASELINE, MethodSpec, load_methods, make_method, parse_method
from forecache.eval.metrics import QualityScorer
from forecache.eval.plots import ParetoPoint, image_grid, pareto_plot
from forecache.eval.report import decisions_text, format_table, markdown_report
from forecache.eval.runner import Harness
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.workload import DTYPES, Workload, build_call_kwargs, conditions_for, load_pipeline

__all__ = [
    "DEFAULT_METHODS",
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

REFERENCE_MODELS = ("flux-digits", "dit-digits", "flux-digits-deep")
DEFAULT_METHODS: tuple[str, ...] = (
    "taylorseer",
    "ab",
    "cg",
    "diffusers.taylorseer",
    "diffusers.fbcache",
    "diffusers.magcache",
    "cachedit.dbcache",
)


def _positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: `{name}` must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """What to generate and how to time it (shared by `BenchConfig` and `SweepConfig`).

    Args:
        model: None (default: the shipped ``flux-digits`` reference model), a pipeline instance, a
            reference name,
            ``"tiny:<TransformerClass>"`` (random weights; plumbing and speed only), a local pipeline
            folder, or a Hub id already in the local cache (never downloaded).
        prompts: ``"drawbench"`` or a text file, for text-to-image pipelines (default drawbench);
            must be None for class-conditional pipelines (labels ``i % 10``).
        steps: Denoising steps (>= 1). Default 28 (FLUX.1-dev's default; the shipped reference
            model then runs the whole default benchmark in about a minute on one CPU thread).
        height: Image height for pipelines that take one. Default None (the pipeline's).
        width: Image width. Default None.
        guidance_scale: Classifier-free guidance scale. Default None (the pipeline's).
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        device: Torch device. Default ``"cpu"``.
        seeds: One sample per seed; the same seeds for every method. Default 0..7.
        batch_size: Samples per pipeline call (>= 1). Default 8.
        repeats: Timed runs per method (>= 1); the median is reported. Default 3. More is steadier.
        warmup: Untimed runs per method before timing (>= 1); the first is also the measured run
            (images, FLOPs, statistics). Default 1.
        threads: CPU threads for torch during the run (restored afterwards). Default None: 1 for
            the shipped reference and tiny models on CPU (their 64-token matmuls only lose to
            thread synchronisation, and a shared CPU stalls badly when oversubscribed), torch's own
            choice otherwise.
        progress: Show progress bars. Default True.

    """

    model: Any = None
    prompts: str | None = None
    steps: int = 28
    height: int | None = None
    width: int | None = None
    guidance_scale: float | None = None
    dtype: str = "float32"
    device: str = "cpu"
    seeds: tuple[int, ...] = tuple(range(8))
    batch_size: int = 8
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _positive_int(owner, "steps", self.steps)
        _positive_int(owner, "batch_size", self.batch_size)
        _positive_int(owner, "repeats", self.repeats)
        _positive_int(owner, "warmup", self.warmup)
        for name in ("height", "width"):
            if getattr(self, name) is not None:
                _positive_int(owner, name, getattr(self, name), 8)
        if (
            self.model is not None
            and not isinstance(self.model, str)
            and not hasattr(self.model, "transformer")
        ):
            raise ValueError(f"{owner}: `model` must be a name, a folder or a pipeline, got {self.model!r}")
        if self.threads is not None:
            _positive_int(owner, "threads", self.threads)
        if self.dtype not in DTYPES:
            raise ValueError(f"{owner}: `dtype` must be one of {list(DTYPES)}, got {self.dtype!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"{owner}: `seeds` must be a non-empty list of ints >= 0, got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"{owner}: `seeds` must be distinct, got {self.seeds!r}")
        if self.guidance_scale is not None and (
            isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float))
        ):
            raise ValueError(
                f"{owner}: `guidance_scale` must be a float or None, got {self.guidance_scale!r}"
            )
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(
                f"{owner}: `device` must be a torch device like 'cpu' or 'cuda:0', got {self.device!r}"
            ) from err


@dataclass(frozen=True)
class BenchConfig(RunConfig):
    """A benchmark: `RunConfig` plus the methods and where to write the report.

    Args:
        methods: Method specs (``"taylorseer:interval=5,order=2"``, ``"diffusers.fbcache"``...). Default
            `DEFAULT_METHODS` (the three presets and every peer) unless `config_files` are given.
        config_files: Config files whose methods are added (JSON, or YAML with PyYAML).
        out: Folder for results.json, report.md, grid.png, pareto.png and decisions.txt (None:
            write nothing).

    """

    methods: tuple[str, ...] | None = None
    config_files: tuple[str, ...] = ()
    out: str | None = None
    specs: tuple[MethodSpec, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "config_files", tuple(str(c) for c in self.config_files))
        methods = self.methods
        if methods is None:
            methods = () if self.config_files else DEFAULT_METHODS
        object.__setattr__(self, "methods", tuple(methods))
        specs = [make_method(BASELINE)]
        specs += [parse_method(m) if isinstance(m, str) else m for m in methods]
        for path in self.config_files:
            specs += load_methods(path)
        labels = [s.label for s in specs]
        duplicate = next((label for label in labels if labels.count(label) > 1), None)
        if duplicate is not None:
            raise ValueError(f"BenchConfig: `methods` must have distinct labels, got {duplicate!r} twice")
        object.__setattr__(self, "specs", tuple(specs))


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
    small = config.model is None or (
        isinstance(config.model, str)
        and (config.model in REFERENCE_MODELS or config.model.startswith("tiny:"))
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
    from forecache import reference

    pipe, source = load_pipeline(config.model, config.device, config.dtype)
    conditions, described = conditions_for(pipe, len(config.seeds), config.prompts)
    kwargs = build_call_kwargs(pipe, config.steps, config.guidance_scale, config.height, config.width)
    workload = Workload(pipe, config.seeds, conditions, kwargs, torch.device(config.device))
    is_reference = isinstance(pipe, (reference.FluxDigitsPipeline, reference.DiTDigitsPipeline))
    classifier = None
    if (reference.WEIGHTS_DIR / "classifier").is_dir():
        classifier = reference.load_classifier()
    if is_reference:
        digits, digit_labels = reference.load_digits_16("test")
        wanted = sorted({c for c in conditions or [] if isinstance(c, int)})
        digits = digits[torch.isin(digit_labels, torch.tensor(wanted))]
        real: np.ndarray | None = ((digits + 1.0) / 2.0).permute(0, 2, 3, 1).numpy()
        real_note = (
            f"the {len(digits)} test digits of the requested classes {wanted}; with "
            f"{len(config.seeds)} samples per method FID is biased upward: compare rows, not papers"
        )
    else:
        real, real_note = None, "the baseline's images (set once the baseline has run)"
    labels = [c for c in conditions or [] if isinstance(c, int)] if is_reference else None
    prompts = [c for c in conditions or [] if isinstance(c, str)] or None
    scorer = QualityScorer(real, real_note, labels, prompts, classifier)
    harness = Harness(workload, config.batch_size, config.repeats, config.warmup, scorer, config.progress)
    description = {
        "model": source,
        "pipeline": type(pipe).__name__,
        "transformer": type(pipe.transformer).__name__,
        "conditions": described,
        "samples": len(config.seeds),
        "seeds": list(config.seeds),
        "batch_size": config.batch_size,
        "call_arguments": kwargs,
        "repeats": config.repeats,
    }
    return harness, description


def run_methods(harness: Harness, specs: Sequence[MethodSpec]) -> list[MethodResult]:
    """Run the baseline (first) and the other methods; an FID reference of baseline images if needed."""
    results = [harness.run(specs[0])]
    base = harness.baseline
    if base is None:
        raise RuntimeError(f"the baseline could not run: {results[0].error}")
    if harness.scorer.real_images is None and base.images is not None:
        harness.scorer.set_reference(base.images, "the baseline's images")
        results[0].fid = harness.scorer.fid(base.images).value
    from tqdm.auto import tqdm

    for spec in tqdm(specs[1:], desc="methods", disable=not harness.progress, unit="method"):
        results.append(harness.run(spec))
    return results


def _settings(config: RunConfig) -> dict[str, Any]:
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    if settings["model"] is not None and not isinstance(settings["model"], str):
        settings["model"] = f"{type(settings['model']).__name__} instance"
    return settings


def bench(config: BenchConfig | None = None, **overrides: Any) -> BenchResult:
    """Benchmark the baseline and every method on the same seeds; write the report if ``out`` is set.

    Args:
        config: A `BenchConfig`; None builds one from `overrides`.
        **overrides: `BenchConfig` fields, replacing those of `config`.

    Returns:
        The `BenchResult` (rows in `methods`, baseline first; images kept in memory on each row).

    Raises:
        ValueError: Invalid settings (naming the field, allowed values and value), or a model that
            cannot be loaded. A method that fails to run does not raise: its row has the error.

    """
    config = dataclasses.replace(config, **overrides) if config is not None else BenchConfig(**overrides)
    with torch_threads(resolve_threads(config)):
        harness, workload = prepare(config)
        results = run_methods(harness, config.specs)
    notes = {
        **harness.scorer.notes,
        "memory": harness.memory_note,
        "compute_ratio": "block (or module) executions without the cache over those with it, "
        "from forecache.stats; peers: the FLOPs ratio",
        "flops_ratio": "transformer FLOPs (torch FlopCounterMode: matmul, conv, attention) "
        "of the baseline over the method",
    }
    result = BenchResult(
        kind="bench",
        settings=_settings(config),
        workload=workload,
        environment=_environment(config),
        notes=notes,
        methods=results,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        forecache_version=forecache.__version__,
    )
    if config.out is not None:
        write_outputs(result, Path(config.out))
    return result


def write_outputs(result: BenchResult, out: Path) -> dict[str, Path]:
    """Write grid.png, pareto.png, decisions.txt, report.md and results.json (last) into `out`, atomically.

    Returns:
        File role -> path.

    """
    rows = [(r.label, r.images) for r in result.methods if r.ok and r.images is not None]
    grid = image_grid(rows, result.workload["seeds"])
    files = {"grid": atomic_write_image(out / "grid.png", grid)}
    points = [
        ParetoPoint(r.label, (r.speedup_loop or {}).get("median"), r.psnr_db, r.fid)
        for r in result.methods
        if r.ok
    ]
    files["pareto"] = atomic_write_image(out / "pareto.png", pareto_plot(points))
    files["decisions"] = atomic_write_text(out / "decisions.txt", decisions_text(result))
    figures = {"Images (baseline first; same seed per column)": "grid.png", "Pareto plot": "pareto.png"}
    files["report"] = atomic_write_text(out / "report.md", markdown_report(result, figures))
    files["results"] = atomic_write_json(out / "results.json", result.to_dict())
    return files
