"""Place each transformer call in time on the host, without reading the timestep off the device.

The root hook needs every call's timestep as a Python float: to tell guidance branches and new
trajectories apart, and as the forecasters' ``"timestep"`` coordinate. Reading a GPU tensor's
value (``float(t)``, ``t.item()``) blocks the host until the device has finished all queued work,
so the host would stop queueing kernels ahead of the device once per call. `host_timestep` avoids
that:

- a Python number is used as it is;
- with a scheduler (a pipeline's, or the one given to `forecache.apply`), its
  ``timesteps[step_index]`` is used, from a host copy of its schedule taken when the schedule is
  set (one transfer per generation). diffusers' pipelines pass the transformer the scheduler's
  timestep or a rescaled one (FLUX and QwenImage divide it by 1000); divided differences and
  Lagrange weights do not change under such affine maps, so the forecasts are the same. This is
  done on every device, so a CPU run makes exactly the reads a GPU run makes. A scheduler that
  tracks no step index (DDIM, DDPM, PNDM) is indexed by the calls counted since its schedule was
  set, right for one call per step (DiT and CogVideoX batch their guidance);
- otherwise (no scheduler) the tensor is read, one host synchronisation per call on a GPU.

The clock is checked at its second call and then whenever a generation ends: the timesteps the
calls really received are read back (one transfer) and must be one increasing affine map of the
clock's. A loop the clock does not follow (two calls per step with a counted index, or a
scheduler that is not the loop's) fails the check; forecache then restarts its state and reads
each call's timestep from then on, with a warning where the scheduler's own step index was wrong.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ScheduleClock", "host_timestep"]


class ScheduleClock:
    """A scheduler's current timestep and step count, read from a host copy of its schedule.

    Args:
        scheduler: Returns the scheduler now in use (a pipeline's scheduler may be swapped after
            `forecache.apply`).

    """

    def __init__(self, scheduler: Callable[[], Any]) -> None:
        self._scheduler = scheduler
        self._source: torch.Tensor | None = None
        self._host: list[float] | None = []
        self._witnesses: list[tuple[torch.Tensor, float]] = []
        self._calls = 0  # calls placed since the schedule was set (schedulers without step_index)
        self._current: int | None = None
        self._checked = False
        self.trusted = True
        self.lost_trust = False
        self.generation = 0  # counts the schedules set: each starts a generation
        self._levels: tuple[Any, tuple[float, ...] | None] = (None, None)  # (key, levels) of `levels`

    def num_steps(self) -> int | None:
        """Length of the scheduler's current schedule, or None before `set_timesteps`."""
        timesteps = getattr(self._scheduler(), "timesteps", None)
        return None if timesteps is None else len(timesteps)

    def timestep(self) -> float | None:
        """Return the timestep of the call being placed, or None when the clock cannot say.

        The index is the scheduler's ``step_index`` (``begin_index`` or 0 before the first
        ``scheduler.step``, as diffusers' schedulers do when a pipeline starts mid-schedule with
        ``set_begin_index``); for a scheduler that tracks none (DDIM, DDPM, PNDM), the number of
        calls placed since its schedule was set, which holds for one call per step (batched
        guidance, as DiT and CogVideoX do) and is caught by `verify` otherwise.
        """
        scheduler = self._scheduler()
        timesteps = getattr(scheduler, "timesteps", None)
        if not isinstance(timesteps, torch.Tensor):
            return None
        self._follow(timesteps)
        if self._host is None:
            self._host = timesteps.detach().reshape(-1).to("cpu", torch.float64).tolist()
        if not hasattr(type(scheduler), "step_index"):
            self._current, self._calls = self._calls, self._calls + 1
        index = self.index()
        return self._host[index] if index is not None and 0 <= index < len(self._host) else None

    def levels(self, first: int, count: int) -> tuple[float, ...] | None:
        """Return where each of `count` steps from step `first` sits on the noise scale, from the host copy.

        Each step's timestep over that of step `first` (1.0 first). None when the clock cannot say:
        no host copy yet (before the generation's first placed call), distrusted, a schedule
        shorter than asked, or timesteps that do not fall strictly from a positive first one.
        """
        host = self._host
        if not self.trusted or not host or first < 0 or count < 1 or first + count > len(host):
            return None
        key = (first, count)  # reset with the host copy each generation: computed once per context
        if self._levels[0] != key:
            part = host[first : first + count]
            falls = part[0] > 0 and all(b < a for a, b in itertools.pairwise(part))
            self._levels = (key, tuple(t / part[0] for t in part) if falls else None)
        return self._levels[1]

    @property
    def schedule(self) -> torch.Tensor | None:
        """The scheduler's timesteps tensor of the current generation (its identity marks the generation)."""
        return self._source

    def follow(self) -> None:
        """Notice a schedule set since the last call (a new generation), trusted or not."""
        timesteps = getattr(self._scheduler(), "timesteps", None)
        if isinstance(timesteps, torch.Tensor):
            self._follow(timesteps)

    def _follow(self, timesteps: torch.Tensor) -> None:
        """Take a host copy of a newly set schedule (a new generation); check the last one's calls first."""
        if timesteps is self._source:  # `set_timesteps` assigns a new tensor
            return
        self.verify()
        self._host = None  # copied to the host when first needed (never while distrusted)
        self._levels = (None, None)
        self._source = timesteps
        self._calls = 0
        self.generation += 1

    def index(self) -> int | None:
        """Return the step index of the call being placed (None when the scheduler has no schedule)."""
        scheduler = self._scheduler()
        timesteps = getattr(scheduler, "timesteps", None)
        if not isinstance(timesteps, torch.Tensor):
            return None
        if not hasattr(type(scheduler), "step_index"):  # counted calls (see `timestep`)
            return self._current if timesteps is self._source else None
        index = scheduler.step_index
        return (getattr(scheduler, "begin_index", None) or 0) if index is None else int(index)

    def place(self, value: torch.Tensor) -> float | None:
        """Return the clock's timestep for a call that received `value`, keeping `value` to verify.

        The first check runs at the clock's second call, as soon as two calls can disagree; after
        that, at the end of every generation. None when the clock cannot say or is distrusted.
        """
        if not self.trusted:
            return None
        known = self.timestep()
        if known is None:
            return None
        self._witnesses.append((value.detach(), known))  # reduced in `verify`, not per call
        if (len(self._witnesses) == 2 and not self._checked) or len(self._witnesses) >= _MAX_WITNESSES:
            self._checked = True
            if not self.verify():
                return None
        return known

    def verify(self) -> bool:
        """Check the calls placed since the last check (one read of their timesteps); distrust on failure.

        Their real timesteps must be ``a * clock + b`` with ``a > 0``, to 1e-3 of their range.
        On failure `lost_trust` is set, for the session to restart its state.

        Returns:
            Whether the clock is still trusted.

        """
        if not self._witnesses:
            return self.trusted
        device = self._witnesses[0][0].device
        maxima = [w.amax().to(device, torch.float64, non_blocking=True) for w, _ in self._witnesses]
        real = torch.stack(maxima).tolist()  # one transfer
        placed = [known for _, known in self._witnesses]
        self._witnesses = []
        low, high = placed.index(min(placed)), placed.index(max(placed))
        if placed[high] == placed[low]:
            consistent = max(real) == min(real)
        else:
            scale = (real[high] - real[low]) / (placed[high] - placed[low])
            tolerance = 1e-3 * abs(real[high] - real[low])
            fitted = [real[low] + scale * (p - placed[low]) for p in placed]
            consistent = scale > 0 and all(abs(f - r) <= tolerance for f, r in zip(fitted, real, strict=True))
        if not consistent:
            self.trusted = False
            self.lost_trust = True
            if not hasattr(type(self._scheduler()), "step_index"):
                return False  # counted calls (two per step): the per-call read is expected, no warning
            warnings.warn(
                "forecache: the scheduler's step index does not follow this transformer's calls; "
                "reading each call's timestep instead (one host synchronisation per call on a GPU)",
                stacklevel=2,
            )
        return self.trusted


_MAX_WITNESSES = 4096


def host_timestep(value: Any, clock: ScheduleClock | None) -> float:
    """Return the timestep of a transformer call as a float, reading the device only as a last resort.

    Args:
        value: The call's ``timestep`` argument: a number, or a tensor of shape ``()``, ``(batch,)``
            or ``(batch, tokens)``; a tensor is read as its largest value.
        clock: The scheduler's clock, when the pipeline (or the caller of `forecache.apply`) gave one.

    Raises:
        ValueError: If the call passed no timestep.

    """
    if value is None:
        raise ValueError("forecache: the transformer was called without a `timestep`; cannot place the step")
    if not isinstance(value, torch.Tensor):
        return float(value)
    if clock is not None:
        known = clock.place(value)
        if known is not None:
            return known
    return float(value.amax())  # per-token timesteps (Wan 2.2 TI2V): the noisiest
