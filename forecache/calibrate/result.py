"""What `forecache.tune` returns: every candidate considered and the result, per transformer or expert."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import Forecaster
from forecache.accel.policies import Timeline

__all__ = ["Candidate", "TuneResult"]


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
        """Return the cache config of this candidate.

        Args:
            steps: The step count its transformer's calls see (the `Timeline`'s ``steps``): the
                pipeline's steps, less those before a second expert joins.
            target: The cache target.

        """
        return CacheConfig(
            policy=Timeline.from_steps(self.computed, steps), forecaster=self.forecaster, target=target
        )


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
        from forecache.calibrate.report import markdown_report

        return markdown_report(self)

    def plot(self) -> Any:
        """Return a PIL image: the chosen schedule over the per-step offline error (each expert's)."""
        from forecache.calibrate.report import schedule_plot

        return schedule_plot(self)
