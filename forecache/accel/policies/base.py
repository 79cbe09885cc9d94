"""The policy axis: when the cached part of the transformer really runs. Its Protocol and registry.

A policy is a frozen spec with a pure decision function, registered by name
(`register_policy`). A policy that decides before the step starts has ``probe_blocks == 0``; one
that runs its first blocks and decides from what they produce says how many (``probe_blocks >
0``), answers `Decision.PROBE` from `decide`, and settles the step in `observe`, which the engine
calls at the first block after the probes with their output. A policy that judges the stack's
own input (what the embeddings hand the first block, at no block's cost) keeps
``probe_blocks == 0`` and sets an ``observes_stack`` attribute to True: `observe` is then called
with that input at every step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor

from forecache.accel.registry import Registry

if TYPE_CHECKING:
    from forecache.accel.state import ContextState

__all__ = ["POLICIES", "Decision", "Policy", "in_cooldown", "register_policy"]

POLICIES: Registry[type] = Registry("policy")


def register_policy(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Register a policy spec class under `name` (a class decorator)."""
    return POLICIES.register(name, replace=replace)


class Decision(enum.Enum):
    """What one transformer call does with the cached part."""

    COMPUTE = "compute"
    FORECAST = "forecast"
    PROBE = "probe"


def in_cooldown(step: int, num_steps: int | None, cooldown: int) -> bool:
    """Whether `step` is one of the last `cooldown` of `num_steps` (never when the count is unknown)."""
    return num_steps is not None and step >= num_steps - cooldown


@runtime_checkable
class Policy(Protocol):
    """A policy spec: frozen, validated on construction, registered under a name."""

    @property
    def probe_blocks(self) -> int:
        """Blocks that run at every step to feed the decision; 0 when it is taken before the step."""

    def decide(self, step: int, num_steps: int | None, run_length: int) -> Decision:
        """Decide step `step` (0-based) of `num_steps` (None if unknown).

        Args:
            step: The context's step index.
            num_steps: The steps this context will see, when known.
            run_length: Forecast steps in a row so far.

        Returns:
            COMPUTE, FORECAST, or PROBE (only with ``probe_blocks > 0``: settled by `observe`).

        """

    def observe(self, ctx: ContextState, probe: Tensor) -> None:
        """At the first block after the probes: settle a PROBE decision in ``ctx.decision``.

        Called at every step of a policy with ``probe_blocks > 0``, with the probe blocks' output
        (the image stream), after `decide`; a computed step may record `probe` for later checks.
        """
