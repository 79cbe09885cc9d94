"""The tuner's report (markdown) and its plot: the chosen schedule over the per-step error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forecache.calibrate.result import TuneResult

__all__ = ["markdown_report", "schedule_plot"]


def _schedule_text(computed: list[int], steps: int) -> str:
    return "".join("C" if i in computed else "F" for i in range(steps))


def markdown_report(result: TuneResult) -> str:
    """Return the goal, the choice and every candidate tried, as markdown (per expert for two)."""
    if result.experts:
        lines = [
            "# forecache tune",
            "",
            f"Goal: {result.goal}; {result.calls} calibration call(s). Every expert tuned with the "
            "others at full compute, then verified together: "
            f"{result.ratio:.2f}x, {result.psnr_db:.2f} dB against full compute.",
            "",
            *[f"Note: {note}" for note in result.notes],
        ]
        for component, expert in result.experts.items():
            body = _one(expert).split("\n", 2)[2]  # without its title
            lines += ["", f"## {component}", "", body]
        return "\n".join(lines) + "\n"
    return _one(result)


def _one(result: TuneResult) -> str:
    chosen = result.chosen
    lines = [
        "# forecache tune",
        "",
        f"Goal: {result.goal}; {result.steps} steps, {result.calls} calibration call(s); "
        f"FLOPs per call {result.full_flops / 1e9:.3g} G (full), "
        f"{result.skip_flops / 1e9:.3g} G (blocks forecast).",
        "",
        f"Chosen: {chosen.forecaster!r} on {len(chosen.computed)} computed steps "
        f"({chosen.ratio:.2f}x), verified {chosen.psnr_db:.2f} dB against full compute.",
        "",
        f"Schedule: `{_schedule_text(chosen.computed, result.steps)}` (computed steps {chosen.computed})",
        "",
        *[f"Note: {note}" for note in result.notes],
        "",
        "| rank | forecaster | schedule source | computed | ratio | offline error | verified PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, c in enumerate(result.candidates, 1):
        psnr = "-" if c.psnr_db is None else f"{c.psnr_db:.2f} dB"
        lines.append(
            f"| {rank} | `{c.forecaster!r}` | {c.source} | {len(c.computed)} | {c.ratio:.2f}x | "
            f"{c.offline_cost:.4g} | {psnr} |"
        )
    return "\n".join(lines) + "\n"


def schedule_plot(result: TuneResult, width: int = 900, height: int = 300) -> Any:
    """Return a PIL image: bars of the per-step offline error, computed steps marked below (each expert's)."""
    from PIL import Image, ImageDraw

    if result.experts:
        plots = [schedule_plot(expert, width, height) for expert in result.experts.values()]
        stacked = Image.new("RGB", (width, height * len(plots)), "white")
        for i, (component, plot) in enumerate(zip(result.experts, plots, strict=True)):
            ImageDraw.Draw(plot).text((width - 200, 10), component, fill="black")
            stacked.paste(plot, (0, i * height))
        return stacked

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    margin, base = 40, height - 60
    steps = result.steps
    errors = result.step_errors
    peak = max((e for e in errors if e == e and e != float("inf")), default=1.0) or 1.0
    slot = (width - 2 * margin) / steps
    for i, error in enumerate(errors):
        x0 = margin + i * slot
        bar = 0 if error != error else min(error / peak, 1.0) * (base - margin)
        draw.rectangle([x0 + 1, base - bar, x0 + slot - 1, base], fill=(230, 120, 60))
        if i in result.chosen.computed:
            draw.rectangle([x0 + 1, base + 8, x0 + slot - 1, base + 20], fill=(40, 90, 200))
    draw.line([margin, base, width - margin, base], fill="black")
    draw.text(
        (margin, 10), f"per-step forecast error (peak {peak:.3g}) and computed steps (blue)", fill="black"
    )
    draw.text(
        (margin, base + 28),
        f"step 0 .. {steps - 1}: {result.chosen.forecaster!r}, {result.chosen.ratio:.2f}x",
        fill="black",
    )
    return image
