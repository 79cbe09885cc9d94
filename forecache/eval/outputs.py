"""The report files of a run: results.json, report.md, the grid, the heat maps, the plots, the decisions.

Written (atomically, each file whole or not at all) at the end of a run, also after Ctrl-C or a
failure, from the rows finished so far. ``results.json`` comes last, so its presence means the
rest is there. Without matplotlib the two plots are skipped and the report says so.
"""

from __future__ import annotations

from pathlib import Path

from forecache.eval.files import atomic_write_image, atomic_write_json, atomic_write_text
from forecache.eval.plots import difference_maps, image_grid
from forecache.eval.report import decisions_text, markdown_report, shown_rows
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.store import RunFolder
from forecache.eval.temporal import worst_clip

__all__ = ["grid_rows", "write_outputs"]


def grid_rows(result: BenchResult) -> list[MethodResult]:
    """Rows drawn in the grid: the baseline, then per method the row at each target (or as given)."""
    rows = [r for r in shown_rows(result) if r.ok and (r.images_file is not None or r.images is not None)]
    targets = sorted({r.target for r in rows if r.target is not None})
    if not targets:
        return rows
    return [r for r in rows if r.target is None] + [r for t in targets for r in rows if r.target == t]


def write_outputs(result: BenchResult, folder: RunFolder | Path | str) -> dict[str, Path]:
    """Write the report files of `result` into the folder.

    Returns:
        File role -> path.

    """
    out = folder.path if isinstance(folder, RunFolder) else Path(folder)
    files: dict[str, Path] = {}
    figures: dict[str, str] = {}
    loaded = [(r, r.images) for r in grid_rows(result)]  # each read from disk once
    pictures = [(r.label, images, r.kind) for r, images in loaded if images is not None]
    if pictures and result.workload.get("output") != "latent":
        seeds = result.workload["seeds"]
        base = pictures[0][1] if pictures[0][2] == "baseline" else None
        others = [
            (label, images)
            for label, images, kind in pictures[1:]
            if base is not None and images.shape == base.shape
        ]
        clip = worst_clip(others, base) if base is not None and base.ndim == 5 else 0
        grid = image_grid([(label, images) for label, images, _ in pictures], seeds, clip=clip)
        files["grid"] = atomic_write_image(out / "grid.png", grid)
        title = "Outputs (baseline first; same seed per column; last column: 1:1 crop)"
        if pictures[0][1].ndim == 5:
            title = (
                f"Frames of the worst clip (seed {seeds[clip]}: the lowest PSNR of any row; "
                "last column: 1:1 crop)"
            )
        figures[title] = "grid.png"
        if base is not None and others:
            maps = difference_maps(base, others, seeds, clip=clip)
            files["heatmaps"] = atomic_write_image(out / "heatmaps.png", maps)
            figures["Difference from the baseline (same scale for every row)"] = "heatmaps.png"
    try:
        from forecache.eval.figures import pareto_figure, timeline_figure

        files["pareto"] = atomic_write_image(out / "pareto.png", pareto_figure(result))
        figures["Quality against compute"] = "pareto.png"
        timeline = timeline_figure(result)
        if timeline is not None:
            files["timeline"] = atomic_write_image(out / "timeline.png", timeline)
            figures["Per-step decisions"] = "timeline.png"
    except ImportError as err:
        result.notes["figures"] = f"unavailable: {err}"
    files["decisions"] = atomic_write_text(out / "decisions.txt", decisions_text(result))
    if result.log:
        files["log"] = atomic_write_text(out / "log.txt", "".join(f"{line}\n" for line in result.log))
    files["report"] = atomic_write_text(out / "report.md", markdown_report(result, figures))
    files["results"] = atomic_write_json(out / "results.json", result.to_dict())
    return files
