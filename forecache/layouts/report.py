"""How `forecache.apply` lays out a transformer, without running it: ``forecache models``.

A row says whether the class is registered or inferred, which targets' plans accept it and the
probe block the confidence gate's default configuration would use; `describe_layout` prints a
layout, `compare_layouts` checks an inferred layout against a registered one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from forecache.accel.layout import BlockListLayout, ModelLayout, time_argument
from forecache.accel.presets import ConfidenceGateConfig
from forecache.accel.targets import TARGETS, Block, blocks_of
from forecache.layouts.errors import UnsupportedModelError
from forecache.layouts.infer import Inference, infer_layout
from forecache.layouts.registry import registered_layout, resolve_layout

__all__ = ["TABLE_TARGETS", "ModelRow", "compare_layouts", "describe_layout", "describe_model", "model_row"]


@dataclass(frozen=True)
class ModelRow:
    """One transformer class as `forecache.apply` would lay it out.

    Attributes:
        name: The class name.
        source: ``"registered"`` or ``"inferred"`` (``"refused"`` when no target can lay it out).
        targets: Per target of `TABLE_TARGETS`: '' when it can be applied, else the reason it is refused.
        probe: The block the default confidence gate probes ('' when the gate is refused).
        inference: What inference decided (also for registered classes, to compare).
        model: The model the row describes.

    """

    name: str
    source: str
    targets: dict[str, str] = field(default_factory=dict)
    probe: str = ""
    inference: Inference | None = None
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def available(self) -> list[str]:
        """The targets that accept this class."""
        return [target for target, reason in self.targets.items() if not reason]


def _target_check(model: torch.nn.Module, target: str, probes: int = 0) -> tuple[str, list[Block]]:
    """'' if `target` lays `model` out and plans it (with `probes` probe blocks), else the reason."""
    try:
        layout = resolve_layout(model, target).layout
    except UnsupportedModelError as err:
        return str(err).split(": ", 1)[-1].split(". Registered classes")[0], []
    blocks = blocks_of(model, layout)
    if probes >= len(blocks):
        return f"a probe block needs a second block to cache; the layout has {len(blocks)}", blocks
    try:
        TARGETS.get(target)().plan(blocks, probes, type(model).__name__)
    except ValueError as err:
        return str(err).removeprefix("forecache: "), blocks
    return "", blocks


def model_row(model: torch.nn.Module) -> ModelRow:
    """Lay `model` out for every registered target and the default gate (nothing runs)."""
    name = type(model).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets = {target: _target_check(model, target)[0] for target in TABLE_TARGETS}
        gate = ConfidenceGateConfig()
        reason, blocks = _target_check(model, gate.target, gate.policy.probe_blocks)
    probe = ", ".join(b.name for b in blocks[: gate.policy.probe_blocks]) if not reason else ""
    source = "registered" if registered_layout(model) is not None else "inferred"
    if all(targets.values()):
        source = "refused"
    return ModelRow(name, source, targets, probe, infer_layout(model), model)


#: The targets the README's table shows (forecache's own; targets registered later are left out).
TABLE_TARGETS = ("blocks", "modules", "output")


def describe_layout(layout: ModelLayout | None, indent: str = "  ") -> str:
    """Return one line per block list (streams, sub-modules), then the time argument."""
    if layout is None:
        return f"{indent}(none)"
    lines = [f"{indent}{_describe_list(b)}" for b in layout.block_lists]
    time = time_argument(layout.timestep_arg)
    lines.append(f"{indent}time: {' or '.join(time.names)}{' (rises: read negated)' if time.rises else ''}")
    return "\n".join(lines)


def _describe_list(b: BlockListLayout) -> str:
    if b.hidden_index is None and b.encoder_index is None:
        streams = f"{b.hidden_arg} -> tensor"
    else:
        slots = {b.hidden_index: b.hidden_arg, b.encoder_index: b.encoder_arg}
        size = max(i for i in slots if i is not None) + 1
        streams = (
            f"({b.hidden_arg}, {b.encoder_arg}) -> ("
            + ", ".join(slots.get(i, "_") or "_" for i in range(size))
            + ")"
        )
    skipped = f" skipped {list(b.skipped_modules)}" if b.skipped_modules else ""
    return f"{b.attr}: {streams}; modules {list(b.modules)}{skipped}"


def compare_layouts(
    registered: ModelLayout, inferred: ModelLayout | None, model: torch.nn.Module | None = None
) -> list[str]:
    """Return the differences between a registered layout and the inferred one ([] when they agree).

    Block lists, their order and stream positions must agree; cached sub-modules may differ where a
    registration caches a projection (``proj_out``) inference does not find by type. With `model`,
    sub-module names absent from its blocks (which every target ignores) are left out.
    """
    if inferred is None:
        return ["inference refuses the class"]
    out = []
    reg = [(b.attr, b.hidden_index, b.encoder_index) for b in registered.block_lists]
    inf = [(b.attr, b.hidden_index, b.encoder_index) for b in inferred.block_lists]
    if reg != inf:
        out.append(f"block lists (attr, image slot, text slot): registered {reg}, inferred {inf}")
    for r, i in zip(registered.block_lists, inferred.block_lists, strict=False):
        present = _present_in(model, r.attr)
        modules = [m for m in r.modules if present(m)]
        skipped = [m for m in r.skipped_modules if present(m)]
        if set(modules) != set(i.modules) or skipped:
            out.append(
                f"`{r.attr}` sub-modules: registered {modules}"
                + (f" skipping {skipped}" if skipped else "")
                + f", inferred {list(i.modules)}"
            )
    if time_argument(registered.timestep_arg) != time_argument(inferred.timestep_arg):
        out.append(f"time: registered {registered.timestep_arg!r}, inferred {inferred.timestep_arg!r}")
    return out


def _present_in(model: torch.nn.Module | None, attr: str) -> Any:
    blocks = getattr(model, attr, None) if model is not None else None
    if not blocks:
        return lambda name: True

    def present(name: str) -> bool:
        try:
            blocks[0].get_submodule(name)
        except AttributeError:
            return False
        return True

    return present


def describe_model(model: torch.nn.Module, component: str = "transformer") -> str:
    """Return how `forecache.apply` lays `model` out: its `model_row` and each distinct layout it uses.

    Args:
        model: A diffusers transformer (nothing runs).
        component: The pipeline component it is, for the first line. Default ``"transformer"``.

    """
    row = model_row(model)
    lines = [
        f"{row.name} ({component}): {row.source}; targets {','.join(row.available) or 'none'}; "
        f"gate probe {row.probe or '-'}"
    ]
    layouts: list[tuple[list[str], ModelLayout]] = []
    for target in row.available:
        layout = resolve_layout(model, target).layout
        same = next((targets for targets, other in layouts if other == layout), None)
        if same is None:
            layouts.append(([target], layout))
        else:
            same.append(target)
    for targets, layout in layouts:
        lines.append(f"  layout for {', '.join(targets)}:")
        lines.append(describe_layout(layout, indent="    "))
    for target, reason in row.targets.items():
        if reason:
            lines.append(f"  {target}: refused: {reason}")
    return "\n".join(lines)
