"""Check an inferred layout at the transformer's first call; remove forecache cleanly if it does not hold.

An inferred layout is decided before any call (`forecache.layouts.infer`), from structure and
source. What only a call shows is checked at the first one, which forecache computes in full
anyway (step 0 is never forecast, so its output is exact whatever the layout):

- the hooked blocks ran once each, in the layout's order (probe blocks first, the stack head next);
- with the ``"modules"`` target (units are sub-modules), each cached sub-module ran;
- with a chained target (``"blocks"``), each block received the streams the previous one returned,
  untouched, so that the stack's residual is what passing its input through adds back;
- the call did not raise inside forecache's hooks: when it raised, the call is run again without
  them (the hooks pass through with no step open); if that run succeeds, the layout was at fault.

On a failure forecache is removed from the transformer (the model computes exactly what it
computed before `apply`) and `UnsupportedModelError` names the block list, the output or the
sub-module, and what was seen. On success the check removes itself: later calls pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel._private import invalidate_child_registries
from forecache.accel.layout import ModelLayout
from forecache.accel.session import session_of
from forecache.accel.streams import StreamIO
from forecache.accel.targets import blocks_of
from forecache.layouts.errors import UnsupportedModelError

__all__ = ["FIRST_CALL_HOOK", "FirstCallCheck", "arm_first_call_check", "disarm"]

FIRST_CALL_HOOK = "forecache_first_call"


class _Observer:
    """Torch hooks on the layout's blocks (and cached sub-modules) recording one call."""

    def __init__(
        self, model: torch.nn.Module, layout: ModelLayout, chained: bool, modules: bool, probes: int
    ) -> None:
        self.blocks = [
            (b.name, b.module, StreamIO(b.layout, type(b.module).forward)) for b in blocks_of(model, layout)
        ]
        self.chained = chained
        self.modules = modules
        self.probes = probes
        self.order: list[int] = []
        self.inputs: dict[int, list[Any]] = {}
        self.outputs: dict[int, list[Any]] = {}
        self.sub_calls: dict[str, int] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Observer:
        for index, (name, block, io) in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._pre(index, io), with_kwargs=True))
            if self.chained:
                self.handles.append(block.register_forward_hook(self._post(index, io)))
            if self.modules and index >= self.probes:
                layout = io.layout
                for sub in layout.modules:
                    try:
                        module = block.get_submodule(sub)
                    except AttributeError:
                        continue
                    key = f"{name}.{sub}"
                    self.sub_calls[key] = 0
                    self.handles.append(module.register_forward_pre_hook(self._count(key)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _pre(self, index: int, io: StreamIO) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.order.append(index)
            if self.chained and index not in self.inputs:
                self.inputs[index] = io.inputs(args, kwargs)

        return hook

    def _post(self, index: int, io: StreamIO) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if index not in self.outputs:
                self.outputs[index] = io.outputs(output)

        return hook

    def _count(self, key: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self.sub_calls[key] += 1

        return hook

    def problem(self) -> str:
        """Return what the call showed against the layout ('' when it holds)."""
        names = [name for name, _, _ in self.blocks]
        expected = list(range(len(self.blocks)))
        if self.order != expected:
            seen = [names[i] for i in self.order[:12]]
            more = " ..." if len(self.order) > 12 else ""
            return f"the hooked blocks ran as {seen}{more}, not once each in the order {names[:12]}"
        silent = [key for key, calls in self.sub_calls.items() if calls == 0]
        if silent:
            return f"cached sub-module `{silent[0]}` did not run (its skipped work would be counted)"
        if self.chained:
            for i in range(len(self.blocks) - 1):
                for k, (out, nxt) in enumerate(
                    zip(self.outputs.get(i, []), self.inputs.get(i + 1, []), strict=False)
                ):
                    if out is None or nxt is None or out is nxt:
                        continue
                    same = isinstance(out, torch.Tensor) and isinstance(nxt, torch.Tensor)
                    if not (same and out.shape == nxt.shape and torch.equal(out, nxt)):
                        stream = "an image" if k == 0 else "a second"
                        return (
                            f"`{names[i + 1]}` received {stream} stream other than the one `{names[i]}` "
                            "returned (something runs in between): the block stack's residual is not defined"
                        )
        return ""


class FirstCallCheck(ModelHook):
    """Observes the first call of a transformer laid out by inference; removes forecache if it fails.

    Args:
        layout: The inferred layout forecache was attached with.
        chained: Whether the target needs the blocks chained (see `forecache.layouts.infer`).
        hint: What to try instead, appended to a failure.

    """

    def __init__(self, layout: ModelLayout, chained: bool, hint: str) -> None:
        super().__init__()
        self.layout = layout
        self.chained = chained
        self.hint = hint

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run the call with observers; on a failed check, remove forecache and raise."""
        session = session_of(module)
        if session is None:  # removed since: nothing to check
            disarm(module)
            return self.fn_ref.original_forward(*args, **kwargs)
        observer = _Observer(
            module, self.layout, self.chained, session.unit == "module", session.probe_blocks
        )
        try:
            with observer:
                output = self.fn_ref.original_forward(*args, **kwargs)
        except Exception as err:
            try:
                type(module).forward(module, *args, **kwargs)  # no step open: forecache's hooks pass through
            except Exception:
                raise err from None  # the call itself is wrong; forecache stays, the check stays armed
            self._fail(module, f"the call raised inside forecache's hooks: {type(err).__name__}: {err}", err)
        problem = observer.problem()
        if problem:
            self._fail(module, problem, None)
        disarm(module)
        return output

    def _fail(self, module: torch.nn.Module, problem: str, cause: BaseException | None) -> None:
        name = type(module).__name__
        session = session_of(module)
        disarm(module)
        if session is not None:
            session.close()
        raise UnsupportedModelError(
            f"forecache: the layout inferred for {name} does not hold at its first call: {problem}. "
            f"forecache removed itself; {name} computes as it did before `apply`.{self.hint}"
        ) from cause


def arm_first_call_check(model: torch.nn.Module, layout: ModelLayout, chained: bool, hint: str = "") -> None:
    """Register the first-call check on `model` (after forecache's own hooks, so it wraps them)."""
    registry = HookRegistry.check_if_exists_or_initialize(model)
    registry.register_hook(FirstCallCheck(layout, chained, hint), FIRST_CALL_HOOK)
    invalidate_child_registries(registry)


def disarm(model: torch.nn.Module) -> None:
    """Remove the first-call check from `model` if it is there."""
    registry = HookRegistry.check_if_exists_or_initialize(model)
    if registry.get_hook(FIRST_CALL_HOOK) is not None:
        registry.remove_hook(FIRST_CALL_HOOK, recurse=False)
        invalidate_child_registries(registry)
