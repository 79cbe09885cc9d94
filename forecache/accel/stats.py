"""Per-generation statistics of a cache: what was computed, what was forecast, what it held."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CacheStats", "ContextStats"]


@dataclass
class ContextStats:
    """Counters of one cache context (one classifier-free-guidance branch) in one generation.

    Attributes:
        name: The context name (``"cond"``/``"uncond"`` from the pipeline, or ``"branch0"``...).
        decisions: One letter per step: ``"C"`` computed, ``"P"`` partial (every block computed but
            a span, whose residual is forecast), ``"F"`` forecast.
        executed_units: Cached units (blocks, or modules for the ``"modules"`` target) that ran.
        total_units: Units that would have run without the cache.
        gate_errors: ``(step, relative L1 error)`` of every probe the gate evaluated.
        cache_bytes: Peak bytes held by the forecast histories.
        fallbacks: Forecast steps with a forecast element that was not finite or left the range of
            the computed steps' outputs by more than the configured margin; such elements took
            their last computed values (``fallback="reuse"``) or the step was computed instead
            (``"recompute"``).

    """

    name: str
    decisions: list[str] = field(default_factory=list)
    executed_units: int = 0
    total_units: int = 0
    gate_errors: list[tuple[int, float]] = field(default_factory=list)
    cache_bytes: int = 0
    fallbacks: int = 0

    @property
    def computed_steps(self) -> int:
        """Steps whose cached part ran (partial steps not counted)."""
        return self.decisions.count("C")

    @property
    def partial_steps(self) -> int:
        """Steps that ran every block of the stack but a span, whose residual they forecast."""
        return self.decisions.count("P")

    @property
    def forecast_steps(self) -> int:
        """Steps whose cached part was forecast."""
        return self.decisions.count("F")

    @property
    def compute_ratio(self) -> float:
        """Units without the cache divided by units that ran (1.0 when nothing ran yet)."""
        return self.total_units / self.executed_units if self.executed_units else 1.0


@dataclass(frozen=True)
class CacheStats:
    """Statistics of the last generation, per context and in total.

    Attributes:
        unit: ``"block"`` or ``"module"``: what `executed_units` counts.
        contexts: Per-context counters, in first-call order.

    """

    unit: str
    contexts: dict[str, ContextStats]

    @property
    def executed_units(self) -> int:
        """Units that ran, over all contexts."""
        return sum(c.executed_units for c in self.contexts.values())

    @property
    def total_units(self) -> int:
        """Units that would have run without the cache, over all contexts."""
        return sum(c.total_units for c in self.contexts.values())

    @property
    def compute_ratio(self) -> float:
        """Units without the cache over units that ran, over all contexts."""
        return self.total_units / self.executed_units if self.executed_units else 1.0

    @property
    def computed_steps(self) -> int:
        """Computed steps summed over contexts."""
        return sum(c.computed_steps for c in self.contexts.values())

    @property
    def forecast_steps(self) -> int:
        """Forecast steps summed over contexts."""
        return sum(c.forecast_steps for c in self.contexts.values())

    @property
    def cache_bytes(self) -> int:
        """Peak bytes held, summed over contexts."""
        return sum(c.cache_bytes for c in self.contexts.values())

    @property
    def fallbacks(self) -> int:
        """Forecast steps in which the guard refused something, over all contexts (see `ContextStats`)."""
        return sum(c.fallbacks for c in self.contexts.values())

    def summary(self) -> str:
        """One line per context: decisions, compute ratio and cache memory."""
        lines = [f"forecache: compute ratio {self.compute_ratio:.2f}x ({self.unit} executions)"]
        for c in self.contexts.values():
            lines.append(
                f"  {c.name}: {c.computed_steps} computed / {c.forecast_steps} forecast steps, "
                f"{c.compute_ratio:.2f}x, {c.fallbacks} fallbacks, cache {c.cache_bytes / 2**20:.1f} MiB, "
                f"{''.join(c.decisions)}"
            )
        return "\n".join(lines)
