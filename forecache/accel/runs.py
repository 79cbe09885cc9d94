"""Per-thread generation state: each thread driving a cached transformer has its own.

A server may run several generations at once on one transformer (one pipeline per worker thread,
all sharing the model's weights). Everything that belongs to a generation (its contexts and
histories, the step being run, the guidance-branch order, the scheduler's clock) is kept per
thread in a `Run`, so concurrent generations never see each other's state; the hooks and the
`CacheSession` reach the calling thread's `Run` through `ThreadRuns`. What is not per generation
(the config, the target, the hooks, the layout) is shared: it is never written during a call.

The clock of a `Run` follows the scheduler of the pipeline that makes the call, resolved at every
call (`CacheSession.scheduler_source`): a second pipeline sharing the transformer
(`DiffusionPipeline.from_pipe`) with its own scheduler gets its own clock, and a switch of
scheduler starts a new generation.
"""

from __future__ import annotations

import threading
from typing import Any

from forecache.accel.clock import ScheduleClock
from forecache.accel.context import ContextState
from forecache.accel.watch import StallWatch

__all__ = ["Run", "ThreadRuns"]


class Run:
    """The generation state of one thread on one cached transformer.

    Attributes:
        clock: The clock of the scheduler driving this thread's calls (None without one).
        clock_for: The scheduler `clock` follows (None for a clock set directly).
        contexts: The contexts (guidance branches) of the current or last generation.
        current: The context of the call in progress.
        last_timestep: The previous call's timestep (to tell branches and new trajectories apart).
        branch: The index of the current unnamed branch within its timestep.
        ended: Whether the last generation was released (the next call starts a new one).
        generation: The clock generation this run's contexts belong to.
        started: Whether this thread ever opened a call.
        watch: Notices generations that forecast nothing though the policy would have.

    """

    def __init__(self) -> None:
        self.clock: ScheduleClock | Any = None
        self.clock_for: Any = None
        self.contexts: dict[str, ContextState] = {}
        self.current: ContextState | None = None
        self.last_timestep: float | None = None
        self.branch = 0
        self.ended = False
        self.generation = -1
        self.started = False
        self.watch = StallWatch()

    def follow(self, scheduler: Any) -> bool:
        """Make the clock follow `scheduler`; return True when it switched (a new generation)."""
        if scheduler is None or scheduler is self.clock_for:
            return False
        self.clock = ScheduleClock(lambda: scheduler)
        self.clock_for = scheduler
        self.generation = -1
        return True


class ThreadRuns:
    """The `Run` of each thread, created on its first use, and the one that started a generation last."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.latest: Run | None = None

    def get(self) -> Run:
        """Return the calling thread's run (created on first use)."""
        run = getattr(self._local, "run", None)
        if run is None:
            run = self._local.run = Run()
        return run

    def for_stats(self) -> Run:
        """Return the calling thread's run if it ever ran, else the run that started a generation last."""
        run = getattr(self._local, "run", None)
        if (run is None or not run.started) and self.latest is not None:
            return self.latest
        return self.get()
