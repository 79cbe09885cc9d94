"""Block lists and the attention / feed-forward sub-modules of blocks, found by type (for `observe`).

A block list is a module list (or dict) of one non-torch class whose items hold a linear layer.
Attention is recognised by diffusers' classes (`Attention`, `AttentionModuleMixin`), a `processor`
attribute, or an attention class name over linear layers; feed-forward by `FeedForward`, an MLP-like
class name over linear or convolution layers, or a `Sequential` of linear layers. `residual`
measures whether a sub-module's output is added into each block output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from forecache.layouts.discover import SubModule, block_lists, submodules
from forecache.layouts.discover import module_kind as _kind
from forecache.testing.catalog import output_tensors

__all__ = ["SubModule", "block_lists", "loose_modules", "residual", "submodules"]


def loose_modules(model: nn.Module, lists: dict[str, nn.Module]) -> dict[str, str]:
    """Outermost modules holding attention that are neither inside nor holding a block list."""
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        if not name or any(name == p or name.startswith(f"{p}.") or p.startswith(f"{name}.") for p in lists):
            continue
        if any(name.startswith(f"{f}.") for f in found) or (_kind(module) or ("",))[0] == "attention":
            continue
        if any((_kind(m) or ("",))[0] == "attention" for m in module.modules()):
            found[name] = type(module).__name__
    return found


def residual(
    block: nn.Module, args: tuple, kwargs: dict, sub: nn.Module, others: list[nn.Module]
) -> list[str] | None:
    """Which block outputs `sub`'s output reaches additively, the other sub-modules held fixed.

    The block is re-run with `sub`'s output scaled by 0, 1 and 2 while every other attention and
    feed-forward sub-module replays its output of the unscaled run: an output that moves linearly
    with the scale has `sub`'s output added (possibly gated or projected) into it.
    """
    scale = {"s": 1.0}
    recorded: dict[nn.Module, list[Any]] = {m: [] for m in others}
    replay: dict[nn.Module, int] = {}

    def scaled(module: nn.Module, inp: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return output * scale["s"]
        if isinstance(output, tuple):
            return tuple(o * scale["s"] if isinstance(o, torch.Tensor) else o for o in output)
        return output

    def fixed(module: nn.Module, inp: Any, output: Any) -> Any:
        if scale["s"] == 1.0:
            recorded[module].append(output)
            return output
        index = replay.get(module, 0)
        replay[module] = index + 1
        return recorded[module][index]

    handles = [sub.register_forward_hook(scaled)] + [m.register_forward_hook(fixed) for m in others]
    outs = []
    try:
        with torch.no_grad():
            for s in (1.0, 0.0, 2.0):
                scale["s"], replay = s, {}
                outs.append([t.double() for t in output_tensors(block(*args, **kwargs))])
    except Exception:
        return None
    finally:
        for h in handles:
            h.remove()
    result = []
    for o1, o0, o2 in zip(*outs, strict=True):
        d1, d2 = o1 - o0, o2 - o1
        size = float(d1.abs().max()) if d1.numel() else 0.0
        if size <= 1e-7 * (1 + float(o1.abs().max())):
            result.append("-")
        else:
            result.append("linear" if float((d2 - d1).abs().max()) <= 1e-4 * size else "nonlinear")
    return result
