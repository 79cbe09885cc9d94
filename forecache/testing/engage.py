"""Does a forecache preset engage on a tiny diffusers transformer? Measured, not assumed.

`check_preset` applies one preset to a catalog class and runs a short denoising loop of bare
transformer calls (a falling timestep; the class's own time convention). It counts the cached
units that really execute (blocks, or the cached attention / feed-forward modules for the
``"modules"`` target: a unit executes in a call when an operation uses one of its weights) and
reports:

- ``"engages"``: fewer units executed than without the cache, exactly as many as `forecache.stats`
  says, finite outputs, outputs bitwise equal to no cache under a compute-every-step variant of the
  preset, and bitwise equal to the model's own outputs after `forecache.remove`;
- ``"refuses"``: `apply` (or the first call, for an inferred layout that does not hold) raised
  `UnsupportedModelError` or a `ValueError` naming the reason, and the model is left as it was;
- ``"declines"``: the confidence gate ran and measured every probe's forecast error above its
  threshold (``stats().gate_errors``), so it computed every step: a decision, recorded;
- ``"no-op"``: it ran and skipped nothing, without such a reason (a silent no-op: a bug);
- ``"crashes"``: anything else raised, or a check above failed (the detail says which).

`benchmarks/model_check.py` and ``forecache models --check`` tabulate it over the catalog; the
per-class tests (`tests/layouts/test_every_class.py`) assert it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from forecache.testing.catalog import TinyModel, build_tiny, output_tensors

__all__ = ["PRESETS", "STEPS", "Outcome", "UnitCounter", "check_preset", "full_compute_variant", "units_of"]

STEPS = 8
PRESETS = ("TaylorSeerConfig", "AdamsBashforthConfig", "ConfidenceGateConfig")


@dataclass
class Outcome:
    """What one preset did on one class.

    Attributes:
        status: ``"engages"``, ``"refuses"``, ``"declines"``, ``"no-op"`` or ``"crashes"``.
        detail: The refusal or failure (first line), or the decisions string.
        executed: Units that executed over the loop (counted by hooks on their layers).
        total: Units a loop without the cache executes.
        stats_executed: `forecache.stats`'s executed units.
        stats_total: `forecache.stats`'s total units.
        flops_ratio: Linear-layer FLOPs without the cache over with it.
        checks: Each check that ran: name -> passed.

    """

    status: str
    detail: str = ""
    executed: int = 0
    total: int = 0
    stats_executed: int = 0
    stats_total: int = 0
    flops_ratio: float | None = None
    checks: dict[str, bool] = field(default_factory=dict)


def full_compute_variant(config: Any) -> Any:
    """Return the preset with a policy that computes every step (same target, forecaster, probes)."""
    from forecache import ConfidenceGateConfig

    if isinstance(config, ConfidenceGateConfig):
        return dataclasses.replace(config, threshold=1e-12, max_consecutive=1)
    return dataclasses.replace(config, interval=1)


class UnitCounter(TorchFunctionMode):
    """Counts, per model call, the cached units whose own weights an operation used.

    A unit executes in a call when any torch operation receives one of its parameters: a module
    hook would not do, since forecache replaces a skipped module's forward behind its hooks.
    """

    def __init__(self, units: list[torch.nn.Module]) -> None:
        super().__init__()
        self.executed = 0
        self._ran: set[int] = set()
        self._owner = {id(p): index for index, unit in enumerate(units) for p in unit.parameters()}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        for value in (*args, *(kwargs or {}).values()):
            for tensor in value if isinstance(value, (tuple, list)) else (value,):
                index = self._owner.get(id(tensor)) if isinstance(tensor, torch.nn.Parameter) else None
                if index is not None:
                    self._ran.add(index)
        return func(*args, **(kwargs or {}))

    def end_call(self) -> None:
        """Close one model call: add the units that ran in it."""
        self.executed += len(self._ran)
        self._ran.clear()

    @contextlib.contextmanager
    def around(self, models: list[torch.nn.Module]) -> Iterator[UnitCounter]:
        """Count only inside calls of `models` (a pipeline's transformers), one model call at a time."""

        def enter(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
            self.__enter__()

        def leave(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            self.__exit__(None, None, None)
            self.end_call()

        handles = [m.register_forward_pre_hook(enter, with_kwargs=True) for m in models]
        handles += [m.register_forward_hook(leave, with_kwargs=True, always_call=True) for m in models]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def _linear_flops(model: torch.nn.Module) -> tuple[list[int], list[Any]]:
    total = [0]

    def hook(module: torch.nn.Linear, args: tuple[Any, ...], output: Any) -> None:
        total[0] += args[0].numel() * module.out_features

    return total, [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _loop(
    tiny: TinyModel, inputs: dict[str, Any], batch: int, counter: UnitCounter | None = None
) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    with torch.no_grad():
        for step in range(STEPS):
            if counter is None:
                output = tiny.call(inputs, step, STEPS, batch)
            else:
                with counter:
                    output = tiny.call(inputs, step, STEPS, batch)
                counter.end_call()
            outputs += [t.detach().clone() for t in output_tensors(output)]
    return outputs


def units_of(model: torch.nn.Module, config: Any) -> list[torch.nn.Module]:
    """Return the modules `stats` counts as units for `config` (blocks, or cached sub-modules)."""
    from forecache.accel.config import resolve_config
    from forecache.accel.targets import TARGETS
    from forecache.layouts.registry import resolve_layout

    resolved = resolve_config(config)
    layout = resolve_layout(model, resolved.target).layout
    module_units = getattr(TARGETS.get(resolved.target), "unit", "block") == "module"
    units: list[torch.nn.Module] = []
    for block_list in layout.block_lists:
        for block in getattr(model, block_list.attr):
            if not module_units:
                units.append(block)
                continue
            for name in block_list.modules:
                try:
                    units.append(block.get_submodule(name))
                except AttributeError:
                    continue
    return units


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"


def check_preset(name: str, preset: str, batch: int = 1) -> Outcome:
    """Apply `preset` (a class name of `forecache`'s presets, defaults) to the tiny `name` and judge it.

    Args:
        name: A catalog class name.
        preset: ``"TaylorSeerConfig"``, ``"AdamsBashforthConfig"`` or ``"ConfidenceGateConfig"``.
        batch: Batch size of the calls (capped by the case's ``max_batch``).

    """
    import forecache
    from forecache.layouts.errors import UnsupportedModelError

    tiny = build_tiny(name)
    batch = min(batch, tiny.max_batch or batch)
    inputs = tiny.make_inputs(batch, torch.Generator().manual_seed(0))
    flops, handles = _linear_flops(tiny.model)
    baseline = _loop(tiny, inputs, batch)
    baseline_flops = flops[0]
    config = getattr(forecache, preset)()
    try:
        forecache.apply(tiny.model, config, num_inference_steps=STEPS)
    except (UnsupportedModelError, ValueError) as err:
        for h in handles:
            h.remove()
        return Outcome("refuses", _first_line(err))
    counter = UnitCounter(units_of(tiny.model, config))
    flops[0] = 0
    try:
        cached = _loop(tiny, inputs, batch, counter)
    except UnsupportedModelError as err:  # an inferred layout that the first call disproved
        for h in handles:
            h.remove()
        after = _loop(tiny, inputs, batch)
        left = _same(after, baseline) and not hasattr(tiny.model, "_forecache_session")
        return Outcome("refuses" if left else "crashes", "at the first call: " + _first_line(err))
    except Exception as err:
        for h in handles:
            h.remove()
        return Outcome("crashes", _first_line(err))
    stats = forecache.stats(tiny.model)
    forecache.remove(tiny.model)
    cached_flops = flops[0]
    after = _loop(tiny, inputs, batch)
    for h in handles:
        h.remove()
    total = sum(c.total_units for c in stats.contexts.values())
    outcome = Outcome(
        "",
        " ".join("".join(c.decisions) for c in stats.contexts.values()),
        counter.executed,
        total,
        sum(c.executed_units for c in stats.contexts.values()),
        total,
        baseline_flops / cached_flops if cached_flops else None,
    )
    outcome.checks["counts equal stats"] = counter.executed == outcome.stats_executed
    outcome.checks["finite"] = all(bool(torch.isfinite(t).all()) for t in cached)
    outcome.checks["bitwise after remove"] = _same(after, baseline)
    outcome.checks["bitwise at full compute"] = _full_compute_matches(tiny, inputs, batch, config, baseline)
    failed = [check for check, passed in outcome.checks.items() if not passed]
    if failed:
        outcome.status = "crashes"
        counts = f"executed {counter.executed}, stats {outcome.stats_executed}"
        outcome.detail = f"failed: {', '.join(failed)} ({outcome.detail}; {counts})"
    elif counter.executed < total:
        outcome.status = "engages"
    else:
        errors = [e for c in stats.contexts.values() for _, e in c.gate_errors]
        threshold = getattr(config, "threshold", None)
        declined = threshold is not None and errors and min(errors) >= threshold
        outcome.status = "declines" if declined else "no-op"
        if declined:
            outcome.detail += f" (every probe error >= {threshold}: min {min(errors):.3f})"
    return outcome


def _full_compute_matches(
    tiny: TinyModel, inputs: dict[str, Any], batch: int, config: Any, baseline: list[torch.Tensor]
) -> bool:
    import forecache

    with forecache.cached(tiny.model, full_compute_variant(config), num_inference_steps=STEPS):
        outputs = _loop(tiny, inputs, batch)
        forecast = forecache.stats(tiny.model).forecast_steps
    return forecast == 0 and _same(outputs, baseline)
