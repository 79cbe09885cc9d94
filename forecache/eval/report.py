"""Human-readable reports of a benchmark: the console table and ``report.md``."""

from __future__ import annotations

import math
from typing import Any

from forecache.eval.schema import BenchResult, MethodResult

__all__ = ["decisions_text", "format_table", "markdown_report"]

_MiB = 2**20


def _num(value: float | None, spec: str, missing: str = "n/a") -> str:
    if value is None:
        return missing
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, spec)


def _speed(value: dict[str, float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value['median']:.2f}x ({value['low']:.2f}-{value['high']:.2f})"


def _row(r: MethodResult) -> list[str]:
    if not r.ok:
        return [r.label, "error", *([""] * 11)]
    return [
        r.label,
        "ok",
        _num(r.compute_ratio, ".2f") + "x",
        _num(r.flops_ratio, ".2f") + "x",
        _speed(r.speedup_loop),
        _speed(r.speedup_call),
        _num(r.psnr_db, ".2f"),
        _num(r.ssim, ".4f"),
        _num(r.fid, ".2f", "unavailable"),
        _num(r.class_accuracy, ".3f", "unavailable"),
        _num(r.lpips, ".4f", "unavailable"),
        _num(None if r.peak_memory_bytes is None else r.peak_memory_bytes / _MiB, ".1f", "unavailable"),
        _num(None if r.cache_bytes is None else r.cache_bytes / _MiB, ".2f", "-"),
    ]


_HEADER = [
    "method",
    "status",
    "compute",
    "FLOPs",
    "speedup loop",
    "speedup call",
    "PSNR dB",
    "SSIM",
    "FID*",
    "class acc",
    "LPIPS",
    "peak MiB",
    "cache MiB",
]


def _rows(result: BenchResult) -> list[list[str]]:
    return [_row(r) for r in result.methods]


def _errors(result: BenchResult) -> list[str]:
    return [f"{r.label}: {r.error}" for r in result.methods if not r.ok]


def format_table(result: BenchResult) -> str:
    """Format the console table: one row per method, then the failed methods' errors and the metric notes."""
    rows = [_HEADER, *_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"error  {line}" for line in _errors(result)]
    lines.append(f"* FID: {result.notes.get('fid', '')}")
    lines.append(f"  memory: {result.notes.get('memory', '')}")
    return "\n".join(lines)


def decisions_text(result: BenchResult) -> str:
    """Render every method's per-step decisions, one line per method, context and batch.

    Letters: ``C`` computed, ``F`` forecast (forecache.stats); for peers, one letter per
    transformer call, ``F`` when the call ran under 95% of the baseline call's FLOPs.
    """
    lines = []
    for r in result.methods:
        for context, per_batch in r.decisions.items():
            lines += [f"{r.label}\t{context}\tbatch {i}\t{letters}" for i, letters in enumerate(per_batch)]
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _kv(mapping: dict[str, Any]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in mapping.items())


def markdown_report(result: BenchResult, images: dict[str, str] | None = None) -> str:
    """Render the ``report.md`` text: workload, results table, errors, notes, decisions and linked figures.

    Args:
        result: The benchmark.
        images: Figure title -> file name (relative to the report), embedded at the end.

    """
    parts = [
        f"# forecache {result.kind}",
        f"forecache {result.forecache_version}, {result.created}. Machine-readable: `results.json` "
        f"(schema documented in `forecache.eval.schema`).",
        "## Workload",
        _kv(result.workload),
        "## Results",
        "Compute: block/module executions without cache over with it (forecache.stats; peers: FLOPs). "
        "FLOPs: transformer FLOPs of the baseline over the method's. Speedups: median (range) over "
        "repeats, of the denoising loop and of the whole call. PSNR/SSIM/LPIPS: against the baseline "
        "image of the same seed.",
        _md_table(_HEADER, _rows(result)),
    ]
    if _errors(result):
        parts += ["## Methods that could not run", "\n".join(f"- `{line}`" for line in _errors(result))]
    parts += ["## Metric notes", _kv(result.notes)]
    decisions = []
    for r in result.methods:
        for context, per_batch in r.decisions.items():
            decisions.append(f"{r.label} / {context}: {per_batch[0] if per_batch else ''}")
    if decisions:
        parts += [
            "## Per-step decisions (first batch; C computed, F forecast)",
            "```\n" + "\n".join(decisions) + "\n```",
        ]
    for title, name in (images or {}).items():
        parts += [f"## {title}", f"![{title}]({name})"]
    parts.append("## Environment\n" + _kv(result.environment))
    return "\n\n".join(parts) + "\n"
