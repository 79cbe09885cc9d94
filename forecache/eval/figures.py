"""Plots of a run with matplotlib (the ``eval`` extra): quality against compute, the decision timeline.

Each method in its own colour and marker (`Method.style`: forecache's in blues, diffusers' in
oranges, cache-dit's in greens; no two methods share both), a legend beside the axes instead of
labels that collide, the target ratios drawn as bands, and each method's swept settings
(the matched-speed search) drawn as a thin curve beside its measured points. Without matplotlib the
functions raise `ImportError` naming the extra, and the run notes the figures as unavailable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from PIL import Image

from forecache.eval.methods import METHODS
from forecache.eval.schema import BenchResult, MethodResult

__all__ = ["method_styles", "pareto_figure", "timeline_figure"]

_UNKNOWN_MARKERS = ("h", "8", "p", "d", "H", "1", "2", "3", "4")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("figures need matplotlib: pip install 'forecache[eval]'") from err
    return plt


def method_styles(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and marker per method name: the registered method's `Style`.

    A name no method is registered under (a results file from elsewhere) gets a grey with a
    marker of its own.
    """
    style: dict[str, tuple[str, str]] = {}
    unknown = 0
    for method in methods:
        if method in style:
            continue
        registered = METHODS.get(method)
        if registered is not None:
            style[method] = (registered.style.colour, registered.style.marker)
        else:
            style[method] = ("#737373", _UNKNOWN_MARKERS[unknown % len(_UNKNOWN_MARKERS)])
            unknown += 1
    return style


def _png(fig: Any) -> Image.Image:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pareto_figure(result: BenchResult, x_key: str = "compute_ratio") -> Image.Image:
    """Quality against compute ratio (or speed-up): measured rows, swept curves and target bands.

    In a matched run the compute-ratio axis spans the targets (with a margin); rows beyond it are
    arrows at the axis's edge, listed under the figure and in the image's ``info["off_axis"]``.

    Args:
        result: The run.
        x_key: ``"compute_ratio"`` (default) or ``"speedup"`` (the denoising loop's median).

    """
    from forecache.eval.pareto import pareto_front
    from forecache.eval.report import shown_rows

    plt = _pyplot()
    rows = [r for r in shown_rows(result) if r.ok and r.kind != "baseline"]
    style = method_styles([r.method for r in rows])
    with_fid = [r for r in rows if _finite(r.fid)]
    fig, axes = plt.subplots(1, 2 if with_fid else 1, figsize=(12 if with_fid else 8.5, 5.2), squeeze=False)

    def x_of(row: MethodResult) -> float | None:
        return row.compute_ratio if x_key == "compute_ratio" else (row.speedup_loop or {}).get("median")

    match = result.match or {}
    tolerance = match.get("tolerance", 0.1)
    outliers: set[str] = set()
    for ax, (metric, title, higher) in zip(
        axes[0],
        [
            ("psnr_db", "PSNR vs full compute (dB, higher is better)", True),
            ("fid", "FID (lower is better)", False),
        ],
        strict=False,
    ):
        for target in match.get("targets", []):
            ax.axvspan(target * (1 - tolerance), target * (1 + tolerance), color="0.92", zorder=0)
            ax.axvline(target, color="0.6", lw=0.8, ls="--", zorder=1)
        if metric == "psnr_db":
            for method in match.get("methods", []):
                points = sorted(
                    (p["compute_ratio"], p["psnr_db"])
                    for p in method.get("evaluated", [])
                    if _finite(p.get("psnr_db")) and p.get("compute_ratio")
                )
                if points and method["method"] in style:
                    colour, marker = style[method["method"]]
                    ax.plot(*zip(*points, strict=True), color=colour, lw=0.9, alpha=0.55, marker=marker, ms=3)
        labelled: set[str] = set()
        plotted: list[tuple[float, float, MethodResult]] = []
        for r in rows:
            x, y = x_of(r), getattr(r, metric)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
                plotted.append((x, y, r))
        span = _x_span(match.get("targets", []), tolerance) if x_key == "compute_ratio" else None
        if span is not None:
            ax.set_xlim(*span)
            for x, y, r in plotted:
                if not span[0] <= x <= span[1]:
                    outliers.add(f"{r.label} at {x:.2f}x ({y:.1f})")
                    edge = span[1] if x > span[1] else span[0]
                    ax.annotate(
                        "",
                        xy=(edge, y),
                        xytext=(edge - 0.04 * (span[1] - span[0]) * (1 if x > edge else -1), y),
                        arrowprops={"arrowstyle": "->", "color": style[r.method][0]},
                    )
        for x, y, r in plotted:
            colour, marker = style[r.method]
            name = r.label.split(" @")[0] if result.match else r.label
            legend = name if name not in labelled else None
            labelled.add(name)
            ax.scatter(
                [x], [y], color=colour, marker=marker, s=55, edgecolor="black", lw=0.5, label=legend, zorder=3
            )
        front = pareto_front([(x, y) for x, y, _ in plotted], higher)
        if len(front) > 1:
            ax.plot(
                [plotted[i][0] for i in front],
                [plotted[i][1] for i in front],
                color="crimson",
                lw=1.2,
                zorder=2,
                label="Pareto front",
            )
        ax.set_xlabel(
            "compute ratio (linear-layer FLOPs, baseline / method)"
            if x_key == "compute_ratio"
            else "speed-up of the denoising loop"
        )
        ax.set_title(title, fontsize=11)
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    if outliers:
        fig.text(
            0.01,
            -0.02,
            "off the axis (arrows at its edge): " + "; ".join(sorted(outliers)),
            fontsize=8,
            va="top",
        )
    w = result.workload
    fig.suptitle(
        f"{w.get('model')}: {w.get('call_arguments', {}).get('num_inference_steps')} steps, "
        f"{w.get('samples')} samples"
        + ("; thin lines: each method's settings tried (first batch)" if match else ""),
        fontsize=11,
    )
    image = _png(fig)
    image.info["off_axis"] = sorted(outliers)
    return image


def _x_span(targets: Sequence[float], tolerance: float) -> tuple[float, float] | None:
    """Return the compute-ratio axis of a matched run: its targets' range and a margin, or None.

    A setting far from every target (a peer's knob that jumps to 26x) would otherwise stretch the
    axis until the targets' range fills a fifth of it; such points are drawn as arrows at the edge
    and listed under the figure.
    """
    if not targets:
        return None
    return max(1.0, min(targets) * (1 - tolerance) * 0.8), max(targets) * (1 + tolerance) * 1.25


_COLOURS = {"C": (0.12, 0.30, 0.60), "F": (0.75, 0.85, 0.95)}


def timeline_figure(result: BenchResult) -> Image.Image | None:
    """Per-step decisions of each row (computed / forecast), and each gate's error against its threshold.

    Returns:
        The figure, or None when no row recorded decisions.

    """
    from forecache.eval.report import shown_rows

    plt = _pyplot()
    lines: list[tuple[str, str]] = []
    for r in shown_rows(result):
        if not r.ok or r.kind == "baseline":
            continue
        for context, per_batch in r.decisions.items():
            if per_batch:
                refused = (r.info.get("fallbacks_per_context") or {}).get(context)
                suffix = f" [{refused} refused]" if refused else ""
                lines.append((f"{r.label} / {context.split(',')[0]}{suffix}", per_batch[0]))
    if not lines:
        return None
    gates = [r for r in shown_rows(result) if r.ok and r.info.get("gate_errors")]
    steps = max(len(letters) for _, letters in lines)
    height = 0.22 * len(lines) + 1.2
    fig, axes = plt.subplots(
        2 if gates else 1,
        1,
        figsize=(11, height + (3.2 if gates else 0)),
        squeeze=False,
        gridspec_kw={"height_ratios": [height, 3.2] if gates else [height]},
    )
    ax = axes[0][0]
    image = [[_COLOURS.get(ch, (1.0, 1.0, 1.0)) for ch in letters.ljust(steps)] for _, letters in lines]
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(lines)), [label for label, _ in lines], fontsize=7)
    ax.set_xlabel("denoising step")
    ax.set_title("Per-step decisions (first batch): dark = computed, light = forecast / reused", fontsize=10)
    if gates:
        ax2 = axes[1][0]
        style = method_styles([r.method for r in gates])
        for r in gates:
            colour, _ = style[r.method]
            threshold = (r.setting or {}).get("threshold", r.params.get("threshold"))
            for context, points in r.info["gate_errors"].items():
                xs, ys = zip(*points, strict=True)
                ax2.plot(xs, ys, marker=".", lw=0.8, color=colour, label=f"{r.label} / {context}")
            if threshold is not None:
                ax2.axhline(float(threshold), color=colour, ls="--", lw=0.8)
        ax2.set_yscale("log")
        ax2.set_xlabel("denoising step")
        ax2.set_ylabel("gate error (relative L1)")
        ax2.set_title(
            "Confidence gate: probe error per step; dashed: the threshold (below it: forecast)", fontsize=10
        )
        ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
        ax2.set_xlim(-0.5, steps - 0.5)
    return _png(fig)
