"""Human-readable reports of a benchmark: the console tables and ``report.md``.

A matched-speed run prints one row per method and one column per target compute ratio (PSNR
against full compute at the setting that lands on the target, or "cannot reach"), then the
detailed rows with the FLOPs ratio and forecache's execution ratio in separate columns. A row that
skips nothing (a peer at a default that never triggers) is not shown: it would only repeat the
baseline; the report names it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from forecache.eval.schema import BenchResult, MethodResult

__all__ = [
    "decisions_text",
    "detail_rows",
    "format_table",
    "markdown_report",
    "matched_rows",
    "shown_rows",
    "unreachable_lines",
    "worst_psnr",
]

_MiB = 2**20


def _num(value: float | None, spec: str, missing: str = "n/a") -> str:
    if value is None:
        return missing
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, spec)


def _speed(value: dict[str, float] | None) -> str:
    if value is None:
        return "not timed"
    return f"{value['median']:.2f}x ({value['low']:.2f}-{value['high']:.2f})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _setting(row: MethodResult) -> str:
    if row.setting:
        return ", ".join(f"{k}={v}" for k, v in row.setting.items())
    return "as given" if row.kind != "baseline" else "-"


def shown_rows(result: BenchResult) -> list[MethodResult]:
    """Rows for tables and figures: all but peers that skipped nothing (named in `hidden_note`)."""
    return [r for r in result.methods if not (r.kind == "peer" and r.ok and r.skips_nothing)]


def _hidden_note(result: BenchResult) -> list[str]:
    hidden = [r for r in result.methods if r not in shown_rows(result)]
    return [
        f"not shown: {r.label} skipped nothing at its settings ({_ratio(r.compute_ratio)}); "
        "tune it (--match) to compare it"
        for r in hidden
    ]


def _frames(rows: Sequence[MethodResult]) -> bool:
    return any(r.psnr_db_per_frame for r in rows)


def detail_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the detailed table: one line per measured row."""
    rows = shown_rows(result)
    frames = _frames(rows)
    header = ["row", "setting", "FLOPs ratio", "exec ratio", "PSNR dB", "worst sample dB"]
    header += ["worst frame dB"] if frames else []
    header += ["SSIM", "adherence"]
    header += ["motion", "flicker", "worst flicker"] if frames else []
    header += ["FID", "LPIPS", "speedup loop", "peak MiB", "cache MiB"]
    lines = []
    for r in rows:
        if not r.ok:
            lines.append([r.label, "error", *([""] * (len(header) - 2))])
            continue
        cells = [
            r.label,
            _setting(r),
            _ratio(r.compute_ratio),
            _ratio(r.execution_ratio) + (f" ({r.execution_unit}s)" if r.execution_unit else ""),
            _num(r.psnr_db, ".2f"),
            _num(worst_psnr(r), ".2f"),
        ]
        if frames:
            cells.append(_num(min(r.psnr_db_per_frame), ".2f") if r.psnr_db_per_frame else "n/a")
        cells += [_num(r.ssim, ".4f"), _num(r.adherence, ".3f", "unavailable")]
        if frames:
            worst = max(r.flicker_per_sample) if r.flicker_per_sample else None
            cells += [
                _num(r.motion_accuracy, ".3f", "unavailable"),
                _num(r.flicker, ".4f"),
                _num(worst, ".4f"),
            ]
        cells += [
            _num(r.fid, ".2f", "not shown"),
            _num(r.lpips, ".4f", "unavailable"),
            _speed(r.speedup_loop),
            _num(None if r.peak_memory_bytes is None else r.peak_memory_bytes / _MiB, ".1f", "unavailable"),
            _num(None if r.cache_bytes is None else r.cache_bytes / _MiB, ".2f", "-"),
        ]
        lines.append(cells)
    return _drop_empty_columns(header, lines)


def worst_psnr(row: MethodResult) -> float | None:
    """Return the lowest per-sample PSNR of a row (users notice the worst image, not the mean)."""
    return min(row.psnr_db_per_sample) if row.psnr_db_per_sample else None


_MISSING = frozenset({"not shown", "unavailable", "not timed", "n/a", "-", ""})
_KEEP = frozenset({"row", "setting", "FLOPs ratio", "exec ratio", "PSNR dB", "worst sample dB"})


def _drop_empty_columns(header: list[str], lines: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Leave out metric columns with no value in any row (the notes say why they are missing)."""
    keep = [
        i
        for i, name in enumerate(header)
        if name in _KEEP or any(line[i] not in _MISSING for line in lines if line[1] != "error")
    ]
    return [header[i] for i in keep], [[line[i] for i in keep] for line in lines]


def unreachable_lines(result: BenchResult) -> list[str]:
    """One line per method and reason for the targets it cannot reach."""
    lines = []
    for method in (result.match or {}).get("methods", []):
        groups: dict[str, list[str]] = {}
        for cell in method.get("cells", []):
            if cell.get("status") == "cannot reach":
                groups.setdefault(cell.get("reason", ""), []).append(f"{cell['target']:g}x")
        for reason, targets in groups.items():
            lines.append(f"cannot reach: {method['label']} at {', '.join(targets)}: {reason}")
    return lines


def _cell(cell: dict[str, Any], rows: dict[str, MethodResult]) -> str:
    status = cell.get("status")
    if status == "cannot reach":
        return "cannot reach"
    if status == "error":
        return "error"
    row = rows.get(cell.get("row") or "")
    if row is None or not row.ok:
        return "error"
    off = " (off target)" if status == "off target" else ""
    worst = worst_psnr(row)
    spread = f" ({_num(worst, '.1f')} worst)" if worst is not None else ""
    return f"{_num(row.psnr_db, '.1f')} dB{spread} @{_ratio(row.compute_ratio)}{off}"


def matched_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the matched-speed table: one line per method, one column per target."""
    match = result.match or {}
    targets = match.get("targets", [])
    rows = {r.label: r for r in result.methods}
    header = ["method", "knob", *(f"{t:g}x" for t in targets)]
    lines = []
    for method in match.get("methods", []):
        cells = {c["target"]: c for c in method.get("cells", [])}
        knob = str(method.get("knob", "")).split(" in ")[0]
        lines.append(
            [method["label"], knob, *(_cell(cells[t], rows) if t in cells else "-" for t in targets)]
        )
    return header, lines


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _errors(result: BenchResult) -> list[str]:
    return [f"{r.label}: {r.error}" for r in result.methods if not r.ok]


def _title(result: BenchResult) -> str:
    w = result.workload
    steps = w.get("call_arguments", {}).get("num_inference_steps")
    tolerance = (result.match or {}).get("tolerance", 0.1)
    return (
        f"Matched-speed comparison on {w.get('model')}: {steps} steps, {w.get('samples')} samples. "
        f"Cells: PSNR against full compute (mean over samples, the worst sample in brackets) @ the "
        f"compute ratio reached (linear-layer FLOPs), each method's knob tuned to within "
        f"{tolerance:.0%} of the target"
    )


def format_table(result: BenchResult) -> str:
    """Format the console report: the matched table (if any), the rows, errors and metric notes."""
    parts = []
    if result.match:
        parts += [_title(result), _text_table(*matched_rows(result)), "", "Measured rows:"]
    parts.append(_text_table(*detail_rows(result)))
    lines = [f"error  {line}" for line in _errors(result)]
    lines += _hidden_note(result)
    lines += unreachable_lines(result)
    for key in ("fid", "speed", "quality"):
        if key in result.notes:
            lines.append(f"{key}: {result.notes[key]}")
    if not result.complete:
        lines.append("INCOMPLETE: the run was interrupted; finished rows are kept (resume with --resume DIR)")
    return "\n".join([*parts, *lines])


def decisions_text(result: BenchResult) -> str:
    """Render every row's per-step decisions, one line per row, context and batch.

    Letters: ``C`` computed, ``F`` forecast (forecache.stats); for peers, one letter per
    transformer call of each branch, ``F`` when the call ran under 95% of the baseline call's FLOPs.
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
    """Render the ``report.md`` text: tables, errors, notes, decisions, linked figures, environment.

    Args:
        result: The benchmark.
        images: Figure title -> file name (relative to the report), embedded in order.

    """
    parts = [
        f"# forecache {result.kind}",
        f"forecache {result.forecache_version}, {result.created}. Machine-readable: `results.json` "
        f"(schema documented in `forecache.eval.schema`)."
        + ("" if result.complete else " **Incomplete: interrupted; resume with `--resume` on this folder.**"),
        "## Workload",
        _kv(result.workload),
    ]
    if result.match:
        parts += ["## Matched speed", _title(result) + ".", _md_table(*matched_rows(result))]
        unreachable = unreachable_lines(result)
        if unreachable:
            parts.append("\n".join(f"- {line}" for line in unreachable))
    parts += [
        "## Rows",
        "FLOPs ratio: linear-layer FLOPs of the baseline over the row's (every row). Exec ratio: "
        "forecache's cached units without the cache over those that ran (forecache rows). "
        "PSNR/SSIM/LPIPS: against the baseline output of the same seed."
        + (
            " Videos: motion (the judge reads each object moving as asked), flicker (how much the "
            "frame-to-frame change differs from the baseline's, over the baseline's change; the worst clip "
            "beside the mean)."
            if _frames(shown_rows(result))
            else ""
        ),
        _md_table(*detail_rows(result)),
    ]
    if _errors(result):
        parts += ["## Methods that could not run", "\n".join(f"- `{line}`" for line in _errors(result))]
    if _hidden_note(result):
        parts.append("\n".join(f"- {line}" for line in _hidden_note(result)))
    parts += ["## Metric notes", _kv(result.notes)]
    decisions = [
        f"{r.label} / {context}: {per_batch[0] if per_batch else ''}"
        for r in shown_rows(result)
        for context, per_batch in r.decisions.items()
    ]
    if decisions:
        parts += [
            "## Per-step decisions (first batch; C computed, F forecast)",
            "```\n" + "\n".join(decisions) + "\n```",
        ]
    for title, name in (images or {}).items():
        parts += [f"## {title}", f"![{title}]({name})"]
    if result.log:
        parts.append(
            f"## Third-party output\n\n{len(result.log)} lines captured in `log.txt` "
            "(`--verbose` shows them)."
        )
    parts.append("## Environment\n" + _kv(result.environment))
    return "\n\n".join(parts) + "\n"
