"""What `forecache.tune` found: the candidates it scored, the chosen config, its report and plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import Forecaster
from forecache.accel.policies import Timeline
from forecache.configfile import save_config

__all__ = ["Candidate", "TuneResult"]


def _schedule_text(computed: list[int], steps: int) -> str:
    return "".join("C" if i in computed else "F" for i in range(steps))


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

    """

    computed: list[int]
    forecaster: Forecaster
    source: str
    offline_cost: float
    ratio: float
    psnr_db: float | None = None

    def config(self, steps: int, target: str) -> CacheConfig:
        """Return the cache config of this candidate."""
        return CacheConfig(
            policy=Timeline.from_steps(self.computed, steps), forecaster=self.forecaster, target=target
        )


@dataclass
class TuneResult:
    """What `tune` found.

    Attributes:
        config: The chosen config (a `Timeline` schedule, the chosen forecaster, the target).
        steps: The step count it was tuned at.
        chosen: The chosen candidate (its verified PSNR and ratio).
        candidates: Every candidate scored, best offline first; verified ones carry their PSNR.
        step_errors: The per-step offline error of the chosen schedule (0 at computed steps).
        full_flops: Linear-layer FLOPs of one full-compute transformer call.
        skip_flops: FLOPs of a call whose blocks are all forecast (stem and head).
        calls: The number of calibration calls.

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

    def save(self, path: Any, label: str | None = None) -> Any:
        """Write the chosen config as a config file (see `forecache.configfile`); returns the path."""
        return save_config(self.config, path, label or f"tuned {self.chosen.ratio:.2f}x")

    def report(self) -> str:
        """Return a markdown report of the goal, the chosen config and every candidate tried."""
        chosen = self.chosen
        lines = [
            "# forecache tune",
            "",
            f"Goal: {self.goal}; {self.steps} steps, {self.calls} calibration call(s); "
            f"FLOPs per call {self.full_flops / 1e9:.3g} G (full), "
            f"{self.skip_flops / 1e9:.3g} G (blocks forecast).",
            "",
            f"Chosen: {chosen.forecaster!r} on {len(chosen.computed)} computed steps "
            f"({chosen.ratio:.2f}x), verified {chosen.psnr_db:.2f} dB against full compute.",
            "",
            f"Schedule: `{_schedule_text(chosen.computed, self.steps)}` (computed steps {chosen.computed})",
            "",
            *[f"Note: {note}" for note in self.notes],
            "",
            "| rank | forecaster | schedule source | computed | ratio | offline error | verified PSNR |",
            "|---|---|---|---|---|---|---|",
        ]
        for rank, c in enumerate(self.candidates, 1):
            psnr = "-" if c.psnr_db is None else f"{c.psnr_db:.2f} dB"
            lines.append(
                f"| {rank} | `{c.forecaster!r}` | {c.source} | {len(c.computed)} | {c.ratio:.2f}x | "
                f"{c.offline_cost:.4g} | {psnr} |"
            )
        return "\n".join(lines) + "\n"

    def plot(self, width: int = 900, height: int = 300) -> Any:
        """Return a PIL image: the chosen schedule (marked below) over bars of the per-step offline error."""
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        margin, base = 40, height - 60
        steps = self.steps
        errors = self.step_errors
        peak = max((e for e in errors if e == e and e != float("inf")), default=1.0) or 1.0
        slot = (width - 2 * margin) / steps
        for i, error in enumerate(errors):
            x0 = margin + i * slot
            bar = 0 if error != error else min(error / peak, 1.0) * (base - margin)
            draw.rectangle([x0 + 1, base - bar, x0 + slot - 1, base], fill=(230, 120, 60))
            if i in self.chosen.computed:
                draw.rectangle([x0 + 1, base + 8, x0 + slot - 1, base + 20], fill=(40, 90, 200))
        draw.line([margin, base, width - margin, base], fill="black")
        draw.text(
            (margin, 10), f"per-step forecast error (peak {peak:.3g}) and computed steps (blue)", fill="black"
        )
        draw.text(
            (margin, base + 28),
            f"step 0 .. {steps - 1}: {self.chosen.forecaster!r}, {self.chosen.ratio:.2f}x",
            fill="black",
        )
        return image
