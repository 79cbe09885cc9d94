"""The forecast histories of one cached site (`FeatureCache`) and the zeros a skipped sub-module returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from forecache.accel.forecasters import History
from forecache.accel.tree import TreeSpec, flatten, unflatten

if TYPE_CHECKING:
    from forecache.accel.state import ContextState

__all__ = ["FeatureCache", "Placeholder"]


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
        ctx: The context the site belongs to (its forecaster, memo, guard and step).
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
            config = self._ctx.config
            slot.spec = spec
            slot.histories = [
                config.forecaster.make_history(
                    config.storage_dtype, self._ctx.memo, config.fallback_margin is not None
                )
                for _ in leaves
            ]
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
