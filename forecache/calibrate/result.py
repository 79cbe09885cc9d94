"""What `forecache.tune` returns: every candidate considered and the result, per transformer or expert.

With its markdown report and its plot (the chosen schedule over the per-step error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import Forecaster
from forecache.accel.policies import Timeline
from forecache.calibrate.validate import Validation

__all__ = ["Candidate", "TuneResult", "markdown_report", "schedule_plot"]


@dataclass
class Candidate:
    """One schedule and forecaster the tuner considered.

    Attributes:
        computed: The computed step indices (at the tuned step count).
        forecaster: The forecaster.
        source: How the schedule was found (``"dp:<forecaster>/<weighting>"``).
        offline_cost: Its exact offline error: the relative squared forecast error summed over the
            forecast steps with the ``"sensitivity"`` weights (see `step_weights`).
        ratio: Its compute ratio (linear-layer FLOPs of full compute over its own).
        psnr_db: Verified paired PSNR against full compute; None if not run.
        partial: Step indices of partial steps (none of them in `computed`), see `Timeline`.
        span: The blocks ``(first, end)`` of the stack a partial step forecasts; (0, 0) without.

    """

    computed: list[int]
    forecaster: Forecaster
    source: str
    offline_cost: float
    ratio: float
    psnr_db: float | None = None
    partial: list[int] = field(default_factory=list)
    span: tuple[int, int] = (0, 0)

    def config(self, steps: int, target: str) -> CacheConfig:
        """Return the cache config of this candidate.

        Args:
            steps: The step count its transformer's calls see (the `Timeline`'s ``steps``): the
                pipeline's steps, less those before a second expert joins.
            target: The cache target.

        """
        policy = Timeline.from_steps(self.computed, steps, self.partial, self.span)
        return CacheConfig(policy=policy, forecaster=self.forecaster, target=target)

    @property
    def fed(self) -> list[int]:
        """Every step that feeds the forecast histories, in order: the computed and the partial ones."""
        return sorted(self.computed + self.partial)

    @property
    def described(self) -> str:
        """The steps it computes: ``"5 computed"``, or ``"4 computed + 1 partial (blocks 4-8 forecast)"``."""
        text = f"{len(self.computed)} computed"
        if self.partial:
            text += f" + {len(self.partial)} partial (blocks {self.span[0]}-{self.span[1] - 1} forecast)"
        return text


@dataclass
class TuneResult:
    """What `tune` found.

    Attributes:
        config: The chosen config (a `Timeline` schedule, the chosen forecaster, the target); for a
            pipeline with two experts, the first (high-noise) expert's.
        steps: The step count it was tuned at (the expert's own steps, for an expert).
        chosen: The chosen candidate (its verified PSNR and ratio); the first expert's for two.
        candidates: Every candidate scored, best offline first; verified ones carry their PSNR.
        step_errors: The per-step offline error of the chosen schedule (0 at computed steps).
        full_flops: Linear-layer FLOPs of one full-compute transformer call.
        skip_flops: FLOPs of a call whose blocks are all forecast (stem and head).
        calls: The number of calibration calls.
        goal: What was asked, in words.
        notes: What the reader should know (a ratio not reachable, no schedule within a budget).
        experts: Pipelines with two denoising experts (Wan 2.2's `transformer` and
            `transformer_2`): each expert's own result by component, its schedule tuned with the
            other expert at full compute. Empty for one transformer.
        psnr_db: The verified PSNR of the pipeline as tuned (every expert cached at once).
        ratio: The compute ratio of the pipeline as tuned.
        validation: With ``tune(validate=N)``: the chosen config scored on new seeds of the
            calibration calls (pooled and worst sample), what new prompts should expect; None
            without.

    """

    config: CacheConfig
    steps: int
    chosen: Candidate
    candidates: list[Candidate]
    step_errors: list[float]
    full_flops: float
    skip_flops: float
    calls: int
    goal: str = ""
    notes: list[str] = field(default_factory=list)
    experts: dict[str, TuneResult] = field(default_factory=dict)
    psnr_db: float | None = None
    ratio: float | None = None
    validation: Validation | None = None

    def __post_init__(self) -> None:
        if self.psnr_db is None:
            self.psnr_db = self.chosen.psnr_db
        if self.ratio is None:
            self.ratio = self.chosen.ratio

    @property
    def configs(self) -> dict[str, CacheConfig]:
        """The config of each transformer component: ``{"transformer": config}``, or one per expert."""
        if not self.experts:
            return {"transformer": self.config}
        return {component: result.config for component, result in self.experts.items()}

    def apply(self, pipe: Any) -> None:
        """Apply the tuned configs to `pipe` (each expert its own); `forecache.remove(pipe)` undoes it."""
        from forecache.api import apply

        if not self.experts:
            apply(pipe, self.config)
            return
        for component, config in self.configs.items():
            apply(getattr(pipe, component), config)

    def save(self, path: Any, label: str | None = None) -> Any:
        """Write the chosen config as a config file (see `forecache.configfile`); returns the path.

        With two experts the second expert's config goes beside it, as ``<stem>.<component><suffix>``
        (``tuned.transformer_2.json``), for ``forecache.apply(pipe.transformer_2, that_path)``.
        """
        from forecache.configfile import save_config

        written = save_config(self.config, path, label or f"tuned {self.chosen.ratio:.2f}x")
        for component, result in list(self.experts.items())[1:]:
            where = Path(path)
            beside = where.with_name(f"{where.stem}.{component}{where.suffix}")
            save_config(result.config, beside, f"{component}: tuned {result.chosen.ratio:.2f}x")
        return written

    def report(self) -> str:
        """Return a markdown report of the goal, the chosen config and every candidate tried."""
        return markdown_report(self)

    def plot(self) -> Any:
        """Return a PIL image: the chosen schedule over the per-step offline error (each expert's)."""
        return schedule_plot(self)


def _schedule_text(candidate: Candidate, steps: int) -> str:
    """``C`` computed, ``P`` partial, ``F`` forecast, per step."""
    return "".join(
        "C" if i in candidate.computed else "P" if i in candidate.partial else "F" for i in range(steps)
    )


def _validated(result: TuneResult) -> list[str]:
    """Return the report's line on the validation and a blank line; none without a validation."""
    check = result.validation
    if check is None:
        return []
    seeds = f"{check.seeds[0]}-{check.seeds[-1]}" if len(check.seeds) > 1 else f"{check.seeds[0]}"
    return [
        f"Validated on {check.samples} new sample(s) of the calibration calls (seeds {seeds}), which no "
        f"choice was made on: {check.psnr_db:.2f} dB against full compute (90 % bootstrap interval "
        f"{check.interval_db[0]:.2f}-{check.interval_db[1]:.2f} dB), worst sample {check.worst_db:.2f} dB. "
        "Expect this on new prompts rather than the verified figure; more validation samples narrow it.",
        "",
    ]


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
            *_validated(result),
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
        f"Chosen: {chosen.forecaster!r} on {chosen.described} steps "
        f"({chosen.ratio:.2f}x), verified {chosen.psnr_db:.2f} dB against full compute.",
        "",
        *_validated(result),
        f"Schedule: `{_schedule_text(chosen, result.steps)}` (computed steps {chosen.computed}"
        + (f", partial {chosen.partial})" if chosen.partial else ")"),
        "",
        *[f"Note: {note}" for note in result.notes],
        "",
        "| rank | forecaster | schedule source | computed | ratio | offline error | verified PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, c in enumerate(result.candidates, 1):
        psnr = "-" if c.psnr_db is None else f"{c.psnr_db:.2f} dB"
        lines.append(
            f"| {rank} | `{c.forecaster!r}` | {c.source} | {c.described} | {c.ratio:.2f}x | "
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
        elif i in result.chosen.partial:
            draw.rectangle([x0 + 1, base + 8, x0 + slot - 1, base + 20], fill=(140, 180, 240))
    draw.line([margin, base, width - margin, base], fill="black")
    draw.text(
        (margin, 10),
        f"per-step forecast error (peak {peak:.3g}), computed steps (blue), partial (light blue)",
        fill="black",
    )
    draw.text(
        (margin, base + 28),
        f"step 0 .. {steps - 1}: {result.chosen.forecaster!r}, {result.chosen.ratio:.2f}x",
        fill="black",
    )
    return image
