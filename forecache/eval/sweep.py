"""``forecache.eval.sweep``: grid a method's fields, mark the Pareto front, keep the best per speed bucket.

The method is a forecache preset or a peer (``diffusers.fbcache`` with ``threshold=0.02:0.3:0.04``,
``cachedit.dbcache`` with ``residual_diff_threshold=...``). With an output folder every row is on
disk the moment it finishes and its outputs leave memory (rows read them back when asked), so a
long sweep holds one generation at a time.

Example::

    from forecache.eval import sweep
    result = sweep(preset="taylorseer", grid=["interval=2:8", "order=0:3"], steps=20, out="sweep/")
    # sweep/best_2-3x.json is a config file for `forecache bench --config` (BenchConfig.config_files)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import forecache
from forecache.eval.bench import (
    _environment,
    _notes,
    _settings,
    prepare,
    resolve_threads,
    run_baseline,
    torch_threads,
)
from forecache.eval.config import RunConfig
from forecache.eval.files import atomic_write_image, atomic_write_json, atomic_write_text
from forecache.eval.methods import (
    BASELINE,
    MethodSpec,
    make_method,
    method_named,
    method_names,
    parse_value,
    save_methods,
)
from forecache.eval.pareto import pareto_front
from forecache.eval.quiet import captured
from forecache.eval.report import markdown_report
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.store import RunFolder

__all__ = ["BUCKET_BY", "QUALITY", "SweepConfig", "SweepResult", "parse_grid", "sweep"]

BUCKET_BY = ("speedup", "compute_ratio")
QUALITY = ("psnr", "fid")
MAX_CONFIGS = 256


def _axis(key: str, text: str) -> list[Any]:
    """``a:b`` (inclusive, step 1), ``a:b:s``, ``v1,v2,...`` or one value."""
    if ":" in text:
        parts = [parse_value(p) for p in text.split(":")]
        if len(parts) not in (2, 3) or any(isinstance(p, (bool, str)) or p is None for p in parts):
            raise ValueError(f"`grid` axis `{key}` must be a:b or a:b:step of numbers, got {key}={text!r}")
        low, high = parts[0], parts[1]
        step = parts[2] if len(parts) == 3 else 1
        try:
            span = (high - low) / step if step > 0 and high >= low else math.nan
        except OverflowError:  # ints beyond a float's range
            span = math.inf
        finite = all(isinstance(p, int) or math.isfinite(p) for p in (low, high, step))
        if not finite or math.isnan(span):
            raise ValueError(f"`grid` axis `{key}` must have finite a <= b and step > 0, got {key}={text!r}")
        count = math.floor(span + 1e-9) + 1 if span < MAX_CONFIGS else MAX_CONFIGS + 1
        if count > MAX_CONFIGS:  # checked before the values are built
            raise ValueError(
                f"`grid` axis `{key}` must have at most {MAX_CONFIGS} values, got {key}={text!r} "
                f"({span + 1:.3g} values)"
            )
        values = [low + i * step for i in range(count)]
        return [round(v, 10) if isinstance(v, float) else v for v in values]
    return [parse_value(v) for v in text.split(",") if v.strip()]


def parse_grid(grid: tuple[str, ...]) -> dict[str, list[Any]]:
    """Parse ``("interval=2:8", "order=0,1,2")`` into ``{"interval": [2..8], "order": [0, 1, 2]}``.

    Raises:
        ValueError: A malformed axis, naming it and the text given.

    """
    axes: dict[str, list[Any]] = {}
    for item in grid:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ValueError(f"`grid` items must be field=a:b, field=a:b:step or field=v1,v2; got {item!r}")
        values = _axis(key.strip(), text.strip())
        if not values:
            raise ValueError(f"`grid` axis `{key.strip()}` has no values, got {item!r}")
        axes[key.strip()] = values
    return axes


@dataclass(frozen=True)
class SweepConfig(RunConfig):
    """A sweep: `RunConfig` plus the method, its grid and how the best configs are chosen.

    Args:
        preset: The method swept: a preset (``taylorseer``, ``ab``, ``cg``, ``timeline``, ``cache``,
            any registered with `forecache.register_preset`) or a peer
            (``diffusers.fbcache``...; see `forecache.eval.methods.METHODS`). Default ``"taylorseer"``.
        grid: Axes like ``"interval=2:8"`` (inclusive), ``"threshold=0.05:0.3:0.05"``,
            ``"order=0,1,2"``; a single value fixes a field. Default ``("interval=2:6",)``.
        bucket_edges: Edges of the speed buckets, increasing, > 1. Default (1.5, 2, 3, 4): buckets
            [1, 1.5), [1.5, 2), [2, 3), [3, 4), [4, inf).
        bucket_by: ``"speedup"`` (wall clock of the denoising loop; default) or ``"compute_ratio"``
            (linear-layer FLOPs: exact, immune to a busy machine).
        quality: What "best" maximises within a bucket: ``"psnr"`` (default) or ``"fid"`` (minimised).
        repeats: Timed runs per config. Default 1 (a sweep runs many configs).
        out: A new or empty folder for the rows (as they finish), results.json, report.md,
            pareto.png and one ``best_<bucket>.json`` per non-empty bucket. None writes nothing
            and keeps every row's outputs in memory.

    """

    preset: str = "taylorseer"
    grid: tuple[str, ...] = ("interval=2:6",)
    bucket_edges: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0)
    bucket_by: str = "speedup"
    quality: str = "psnr"
    repeats: int | None = 1
    out: str | None = None
    specs: tuple[MethodSpec, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        allowed = [name for name in method_names() if name != BASELINE]
        if self.preset not in allowed:
            raise ValueError(f"SweepConfig: `preset` must be one of {allowed}, got {self.preset!r}")
        if self.bucket_by not in BUCKET_BY:
            raise ValueError(
                f"SweepConfig: `bucket_by` must be one of {list(BUCKET_BY)}, got {self.bucket_by!r}"
            )
        if self.quality not in QUALITY:
            raise ValueError(f"SweepConfig: `quality` must be one of {list(QUALITY)}, got {self.quality!r}")
        try:
            edges = tuple(float(e) for e in self.bucket_edges)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"SweepConfig: `bucket_edges` must be increasing finite numbers > 1, "
                f"got {self.bucket_edges!r}"
            ) from err
        if (
            not edges
            or any(not math.isfinite(e) or e <= 1.0 for e in edges)
            or list(edges) != sorted(set(edges))
        ):
            raise ValueError(
                f"SweepConfig: `bucket_edges` must be increasing finite numbers > 1, "
                f"got {self.bucket_edges!r}"
            )
        object.__setattr__(self, "bucket_edges", edges)
        object.__setattr__(self, "grid", tuple(self.grid))
        axes = parse_grid(self.grid)
        size = math.prod(len(values) for values in axes.values())  # before the points are built
        if size > MAX_CONFIGS:
            raise ValueError(
                f"SweepConfig: `grid` must have at most {MAX_CONFIGS} points, got {size} "
                f"({' x '.join(str(len(v)) for v in axes.values())} from {self.grid!r})"
            )
        points = list(itertools.product(*axes.values()))
        specs = [make_method(BASELINE)]
        for values in points:
            params = dict(zip(axes, values, strict=True))
            specs.append(make_method(self.preset, params))
        object.__setattr__(self, "specs", tuple(specs))

    def buckets(self) -> list[tuple[float, float]]:
        """Return the ``[low, high)`` speed buckets."""
        edges = (1.0, *self.bucket_edges, math.inf)
        return list(itertools.pairwise(edges))


@dataclass
class SweepResult:
    """A sweep: every config's row, the Pareto fronts and the best config per bucket.

    Attributes:
        bench: The rows (baseline first) as a `BenchResult` (kind ``"sweep"``).
        front_psnr: Labels on the speed/PSNR Pareto front, by speed.
        front_fid: Labels on the speed/FID Pareto front, by speed.
        best: Bucket name (``"2-3x"``) -> the best method in it.
        files: File role -> path written.

    """

    bench: BenchResult
    front_psnr: list[str]
    front_fid: list[str]
    best: dict[str, MethodSpec]
    files: dict[str, Path] = field(default_factory=dict)


def _speed(config: SweepConfig, row: MethodResult) -> float | None:
    if config.bucket_by == "compute_ratio":
        return row.compute_ratio
    return None if row.speedup_loop is None else row.speedup_loop["median"]


def _quality(config: SweepConfig, row: MethodResult) -> float | None:
    """Return the quality to maximise: PSNR, or minus FID."""
    if config.quality == "psnr":
        return row.psnr_db
    return None if row.fid is None else -row.fid


def _bucket_name(low: float, high: float) -> str:
    return f"{low:g}-{high:g}x" if math.isfinite(high) else f"{low:g}x-up"


def _run_rows(
    config: SweepConfig, folder: RunFolder | None
) -> tuple[list[MethodResult], Any, dict[str, Any]]:
    from tqdm.auto import tqdm

    harness, workload = prepare(config)
    rows = [run_baseline(harness, config.specs[0])]
    if folder is not None:
        folder.start({"settings": _settings(config), "workload": workload})
        images = rows[0].images
        folder.save_row(0, rows[0])
        rows[0].images = images  # the baseline's outputs stay in memory: every row is scored against them
    for spec in tqdm(config.specs[1:], desc="configs", disable=not config.progress, unit="config"):
        row = harness.run(spec)
        if folder is not None:
            folder.save_row(len(rows), row)  # streamed: the outputs leave memory
        rows.append(row)
    return rows, harness, workload


def sweep(config: SweepConfig | None = None, **overrides: Any) -> SweepResult:
    """Run the baseline and every grid point, mark the Pareto fronts and pick the best per bucket.

    Args:
        config: A `SweepConfig`; None builds one from `overrides`.
        **overrides: `SweepConfig` fields, replacing those of `config`.

    Returns:
        The `SweepResult`; with ``out`` set, the files listed in `SweepConfig` are written.

    """
    config = dataclasses.replace(config, **overrides) if config is not None else SweepConfig(**overrides)
    folder = RunFolder(config.out) if config.out is not None else None
    preload = method_named(config.preset).preload
    with captured(config.verbose, preload) as capture, torch_threads(resolve_threads(config)):
        rows, harness, workload = _run_rows(config, folder)
    candidates = [
        (row, spec)
        for row, spec in zip(rows, config.specs, strict=True)
        if row.ok and spec.kind != "baseline"
    ]
    front_psnr = [
        candidates[i][0].label for i in pareto_front([(_speed(config, r), r.psnr_db) for r, _ in candidates])
    ]
    front_fid = [
        candidates[i][0].label
        for i in pareto_front([(_speed(config, r), r.fid) for r, _ in candidates], False)
    ]
    best: dict[str, MethodSpec] = {}
    for low, high in config.buckets():
        inside = [(r, s) for r, s in candidates if (v := _speed(config, r)) is not None and low <= v < high]
        scored = [(q, s) for r, s in inside if (q := _quality(config, r)) is not None]
        if not scored:
            continue
        _, spec = max(scored, key=lambda qs: qs[0])
        name = _bucket_name(low, high)
        best[name] = dataclasses.replace(spec, label=f"sweep best {name}: {spec.label}")
    extra = {
        "sweep": {
            "preset": config.preset,
            "grid": parse_grid(config.grid),
            "bucket_by": config.bucket_by,
            "quality": config.quality,
            "front_psnr": front_psnr,
            "front_fid": front_fid,
            "best": {name: spec.label for name, spec in best.items()},
        }
    }
    result = BenchResult(
        kind="sweep",
        settings=_settings(config),
        workload=workload,
        environment=_environment(config),
        notes=_notes(harness, config),
        methods=rows,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        forecache_version=forecache.__version__,
        extra=extra,
        log=capture.lines(),
    )
    out = SweepResult(result, front_psnr, front_fid, best)
    if folder is not None:
        out.files = _write(config, folder.path, out)
    return out


def _write(config: SweepConfig, folder: Path, swept: SweepResult) -> dict[str, Path]:
    result, best = swept.bench, swept.best
    files: dict[str, Path] = {}
    for name, spec in best.items():
        files[f"best {name}"] = save_methods([spec], folder / f"best_{name}.json")
    figures = {}
    try:
        from forecache.eval.figures import pareto_figure

        x_key = "speedup" if config.bucket_by == "speedup" else "compute_ratio"
        files["pareto"] = atomic_write_image(folder / "pareto.png", pareto_figure(result, x_key))
        figures["Pareto plot"] = "pareto.png"
    except ImportError as err:
        result.notes["figures"] = f"unavailable: {err}"
    front_text = f"Pareto front (speed vs PSNR): {', '.join(swept.front_psnr) or 'none'}\n\n" + "\n".join(
        f"- best {name}: `{spec.label}` -> `best_{name}.json`" for name, spec in best.items()
    )
    report = markdown_report(result, figures).replace(
        "## Rows", "## Sweep\n\n" + front_text + "\n\n## Rows", 1
    )
    if result.log:
        files["log"] = atomic_write_text(folder / "log.txt", "".join(f"{line}\n" for line in result.log))
    files["report"] = atomic_write_text(folder / "report.md", report)
    files["results"] = atomic_write_json(folder / "results.json", result.to_dict())
    return files
