"""The policy axis: when the cached part of the transformer really runs. Its Protocol and registry.

A policy is a frozen spec with a pure decision function, registered by name
(`register_policy`). A policy that decides before the step starts has ``probe_blocks == 0``; one
that runs its first blocks and decides from what they produce says how many (``probe_blocks >
0``), answers `Decision.PROBE` from `decide`, and settles the step in `judge`, from the error of
the probe's forecast, which the engine measures once at the first block after the probes. A
policy that judges the stack's own input (what the embeddings hand the first block, at no block's
cost) keeps ``probe_blocks == 0`` and sets ``observes_stack``. Policies read plain values and
return their decision; they never see the engine's state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from forecache.accel.registry import Registry

__all__ = ["POLICIES", "Decision", "Policy", "in_cooldown", "register_policy"]


def register_policy(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Register a policy spec class under `name` (a class decorator; optional members get their defaults)."""
    return POLICIES.register(name, replace=replace)


class Decision(enum.Enum):
    """What one transformer call does with the cached part."""

    COMPUTE = "compute"
    FORECAST = "forecast"
    PROBE = "probe"


def in_cooldown(step: int, num_steps: int | None, cooldown: int) -> bool:
    """Whether `step` is one of the last `cooldown` of `num_steps` (never when the count is unknown)."""
    return num_steps is not None and step >= num_steps - cooldown


class Policy(Protocol):
    """A policy spec: frozen, validated on construction, registered under a name.

    `decide` is required; the members given a value here are optional: a registered class without
    one gets this default.
    """

    @property
    def probe_blocks(self) -> int:
        """Blocks that run at every step to feed `judge`; 0 (default): the decision comes before the step."""
        return 0

    @property
    def observes_stack(self) -> bool:
        """With ``probe_blocks == 0``: `judge` each step by the forecast of the stack input. Default False."""
        return False

    def partial_span(self, stack: int) -> tuple[int, int]:
        """Return the blocks ``(first, end)`` a partial step forecasts, of a cached stack of `stack` blocks.

        A partial step is a computed step that runs every block of the stack but those, whose
        residual is forecast (the ``"blocks"`` target; see `is_partial`). Default (0, 0): none.
        """
        return (0, 0)

    def is_partial(self, step: int, num_steps: int | None) -> bool:
        """Whether computed step `step` of `num_steps` is partial (asked only with a `partial_span`).

        Default False.
        """
        return False

    @property
    def reduce_across_ranks(self) -> bool:
        """Reduce the probe error over every rank of the default `torch.distributed` group. Default False.

        For a sequence sharded by other means than diffusers' context parallelism (whose ranks are
        reduced over anyway).
        """
        return False

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step` (0-based) of `num_steps` (None if unknown).

        Args:
            step: The context's step index.
            num_steps: The steps this context will see, when known.
            run_length: Forecast steps in a row so far.

        Returns:
            COMPUTE, FORECAST, or PROBE (only with ``probe_blocks > 0`` or ``observes_stack``:
            settled by `judge`).

        """

    def decide_on(self, step: int, levels: tuple[float, ...], run_length: int) -> Decision:
        """Decide step `step` knowing where each of its steps sits on the noise scale (default: `decide`).

        The engine calls this instead of `decide` whenever the scheduler's schedule is known (see
        `forecache.accel.clock.ScheduleClock.levels`); a policy that places steps by step index
        alone keeps the default.

        Args:
            step: The context's step index.
            levels: One per step of the context: its timestep over the first one's (1.0 first,
                strictly decreasing; a shifted flow-matching schedule falls slowly at first).
            run_length: Forecast steps in a row so far.

        """
        return self.decide(step, len(levels), run_length)

    def judge(self, error: float, run: Sequence[float]) -> Decision:
        """Settle a PROBE decision: FORECAST or COMPUTE. Default: COMPUTE.

        Args:
            error: The relative L1 error ``sum|forecast - actual| / sum|actual|`` of this step's
                probe (the probe blocks' output, or the stack's input), the largest over the
                batch, reduced over the ranks that hold shards of the sequence; NaN when not finite.
            run: The errors of the steps forecast in the current run, oldest first.

        """
        return Decision.COMPUTE


POLICIES: Registry[type] = Registry(
    "policy",
    Policy,
    optional=(
        "probe_blocks",
        "observes_stack",
        "partial_span",
        "is_partial",
        "reduce_across_ranks",
        "decide_on",
        "judge",
    ),
)
