"""The state of one guidance branch in one generation: its step, decision, histories and counters.

A `ContextState` holds what one branch of one generation keeps: the step it is at, what the
current call does, a `FeatureCache` per cached site (the forecast histories of its output) and the
`Placeholder` zeros of skipped sub-modules. It is built from plain values (its forecaster, the
storage dtype, the guard's margin, the target's per-branch state), so the targets that read and
write it need nothing else of the engine.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.accel.forecasters import Forecaster, Guard, History, Memo
from forecache.accel.policies import Decision
from forecache.accel.stats import ContextStats
from forecache.accel.tree import TreeSpec, flatten, unflatten

__all__ = ["ContextState", "FeatureCache", "Placeholder"]


class ContextState:
    """State of one guidance branch within one generation.

    Args:
        name: The context's name (``"cond"``, ``"branch0"``...).
        forecaster: Makes the histories of its sites.
        storage_dtype: Their storage dtype (None: the features' own).
        margin: The divergence guard's margin (`CacheConfig.fallback_margin`); None for no guard.
        num_steps: The steps of the generation when known (the guard's counters are sized by it).
        target_state: What the target keeps per branch (`Target.new_context_state`).
        group: The process group of the ranks holding shards of this sequence (diffusers' context
            parallelism), over which the probe error and the ``"recompute"`` fallback reduce so
            every rank decides alike; None without one.

    Attributes:
        stats: The branch's counters.
        step: The branch's step index (0-based; -1 before its first call).
        timestep: The current call's timestep on the host.
        decision: What the current call does.
        partial: Whether the current computed call is a partial step (every block of the stack
            runs but the policy's `partial_blocks`, whose residual is forecast).
        run_length: Forecast steps in a row so far.
        sites: The forecast histories by site name.
        placeholders: Zero outputs of skipped sub-modules by name.
        memo: Weights memoised for the current step, shared by every site.
        guard: The divergence guard (None when ``fallback_margin`` is None).
        target_state: What the target keeps per branch (e.g. the block stack's input).
        first_index: Where this context joined the loop (a second expert, an img2img start).
        group: See the argument.

    """

    def __init__(
        self,
        name: str,
        forecaster: Forecaster,
        storage_dtype: torch.dtype | None,
        margin: float | None,
        num_steps: int | None,
        target_state: Any,
        group: Any,
    ) -> None:
        self.stats = ContextStats(name)
        self.step = -1
        self.timestep = 0.0
        self.decision = Decision.COMPUTE
        self.partial = False
        self.run_length = 0
        self.sites: dict[str, FeatureCache] = {}
        self.placeholders: dict[str, Placeholder] = {}
        self.memo: Memo = {}
        self.guard = None if margin is None else Guard(margin, num_steps or 64)
        self.target_state = target_state
        self.first_index = 0
        self.group = group
        self._forecaster = forecaster
        self._storage = (storage_dtype, margin is not None)
        self._step_coordinate = forecaster.coordinate == "step"

    @property
    def x(self) -> float:
        """The forecaster's time coordinate of the current step."""
        return float(self.step) if self._step_coordinate else self.timestep

    def new_history(self) -> History:
        """Return a new history of the context's forecaster (sharing its memo and guard's peak tracking)."""
        dtype, track_peak = self._storage
        return self._forecaster.make_history(dtype, self.memo, track_peak)

    def site(self, key: str) -> FeatureCache:
        """Return the history of site `key`, created on first use."""
        cache = self.sites.get(key)
        if cache is None:
            cache = self.sites[key] = FeatureCache(self, key)
        return cache

    def settle(self) -> None:
        """Read the device-side refusal counters into `stats.fallbacks` (one host read)."""
        if self.guard is not None:
            refused = self.guard.refused_steps()
            if refused is not None:
                self.stats.fallbacks = int(refused)

    def release(self) -> None:
        """Drop every tensor held (histories, placeholders, target state); keep the counters."""
        self.settle()
        self.sites.clear()
        self.placeholders.clear()
        self.memo.clear()
        self.guard = None
        self.target_state = None


class _Slot:
    """The histories of one occurrence of a site within a call (one `History` per tensor leaf)."""

    def __init__(self) -> None:
        self.spec: TreeSpec = None
        self.histories: list[History] = []


class FeatureCache:
    """The forecast history of one cached site: one `History` per tensor of its output.

    A site may run more than once per call (a feed-forward module a block applies to its image and
    then to its text tokens, as CogView 4 and GLM-Image do; a module shared by several blocks). Its
    histories are kept per occurrence within the step: the k-th update of a step feeds the k-th
    slot and the k-th forecast of a step reads it, so each occurrence has its own shape and its own
    history. Updates and forecasts count their occurrences separately (a probe site is forecast,
    then updated, in one step).

    Args:
        ctx: The context the site belongs to (its histories' factory, guard and step).
        where: The site's name, for errors.

    """

    def __init__(self, ctx: ContextState, where: str) -> None:
        self._ctx = ctx
        self._where = where
        self._slots: list[_Slot] = []
        self._counts = {"update": [-1, 0], "predict": [-1, 0]}  # per kind: [step, occurrences]

    def _occurrence(self, kind: str) -> int:
        count = self._counts[kind]
        if count[0] != self._ctx.step:
            count[0], count[1] = self._ctx.step, 0
        count[1] += 1
        return count[1] - 1

    def update(self, value: Any, x: float) -> None:
        """Record the site's output `value` (tensors nested in tuples) computed at coordinate `x`."""
        occurrence = self._occurrence("update")
        while len(self._slots) <= occurrence:
            self._slots.append(_Slot())
        slot = self._slots[occurrence]
        where = self._where if occurrence == 0 else f"{self._where} (call {occurrence + 1} of the step)"
        leaves, spec = flatten(value, where)
        if spec != slot.spec or len(leaves) != len(slot.histories):
            slot.spec = spec
            slot.histories = [self._ctx.new_history() for _ in leaves]
        for history, leaf in zip(slot.histories, leaves, strict=True):
            history.update(leaf.detach(), x)

    def predict(self, x: float, guarded: bool = True, addend: torch.Tensor | None = None) -> Any:
        """Return the forecast of the site's output at coordinate `x`, structured like the output.

        Args:
            x: The coordinate of the step.
            guarded: Apply the context's divergence guard (see `Guard`), fused into the forecast:
                an element that is not finite or exceeds the margin times the largest magnitude
                the site had at the computed steps takes its last computed value and is counted
                on the device. False for measurements (the gate's probe).
            addend: Added to a single-tensor forecast in the same pass (a forecast residual onto
                the block stack's input).

        Raises:
            RuntimeError: If the site is called more often in this step than at its computed steps.

        """
        occurrence = self._occurrence("predict")
        if occurrence >= len(self._slots):
            raise RuntimeError(
                f"forecache: `{self._where}` ran {occurrence + 1} times in this step but at most "
                f"{len(self._slots)} at the computed ones; it has no history to forecast from"
            )
        slot = self._slots[occurrence]
        guard = self._ctx.guard if guarded else None
        if addend is not None:
            (history,) = slot.histories
            return history.predict(x, guard, addend)
        return unflatten(slot.spec, [history.predict(x, guard) for history in slot.histories])

    @property
    def nbytes(self) -> int:
        """Bytes held by this site's histories."""
        return sum(history.nbytes for slot in self._slots for history in slot.histories)


class Placeholder:
    """Zeros shaped like a skipped module's last output: expanded scalars, built once per shape."""

    def __init__(self, value: Any, where: str) -> None:
        self._where = where
        self._key: Any = None
        self._value: Any = None
        self.record(value)

    def record(self, value: Any) -> None:
        """Follow the shapes of the module's latest computed output (rebuilt only when they change)."""
        leaves, spec = flatten(value, self._where)
        key = (spec, tuple((leaf.shape, leaf.dtype, leaf.device) for leaf in leaves))
        if key != self._key:
            self._key = key
            zeros = [
                torch.zeros((), dtype=leaf.dtype, device=leaf.device).expand(leaf.shape) for leaf in leaves
            ]
            self._value = unflatten(spec, zeros)

    def build(self) -> Any:
        """Return the zero placeholder."""
        return self._value
