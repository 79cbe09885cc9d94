"""Block lists and the attention / feed-forward sub-modules of blocks, found by type (for `observe`).

A block list is a module list (or dict) of one non-torch class whose items hold a linear layer.
Attention is recognised by diffusers' classes (`Attention`, `AttentionModuleMixin`), a `processor`
attribute, or an attention class name over linear layers; feed-forward by `FeedForward`, an MLP-like
class name over linear or convolution layers, or a `Sequential` of linear layers. `residual`
measures whether a sub-module's output is added into each block output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from forecache.testing.catalog import output_tensors

__all__ = ["SubModule", "block_lists", "loose_modules", "residual", "submodules"]

_FF_NAMES = re.compile(r"FeedForward|FFN|Mlp|MLP|SwiGLU|GeGLU|GLU|MoE|Experts|Transition|MBConv", re.I)
_ATTN_NAMES = re.compile(r"Attention|Attn", re.I)


@dataclass
class SubModule:
    """An attention or feed-forward sub-module of a block, found by type.

    Attributes:
        path: Dotted name inside the block.
        cls: Class name.
        kind: ``"attention"`` or ``"feed-forward"``.
        evidence: How it was recognised (``"Attention"``, ``"AttentionModuleMixin"``, ``"processor"``,
            ``"FeedForward"``, ``"class name"``, ``"Sequential MLP"``).
        calls: Times it ran during the block's first call.
        residual: Per block-output position, ``"linear"`` if the output moved linearly when this
            sub-module's output was scaled (0, 1, 2: it is added, possibly gated), ``"nonlinear"``,
            ``"-"`` if that output did not depend on it; ``None`` if the block could not be re-run.

    """

    path: str
    cls: str
    kind: str
    evidence: str
    calls: int = 0
    residual: list[str] | None = None


def _is_block_list(module: nn.Module) -> bool:
    items = list(module.children())
    if not isinstance(module, (nn.ModuleList, nn.ModuleDict)) or not items:
        return False
    cls = type(items[0])
    if any(type(item) is not cls for item in items) or cls.__module__.startswith("torch."):
        return False
    return any(isinstance(m, nn.Linear) for m in items[0].modules())


def block_lists(model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Return the outermost block lists (path -> list) and the lists inside blocks (path -> class)."""
    found = {name: m for name, m in model.named_modules() if name and _is_block_list(m)}
    top, nested = {}, {}
    for name, module in found.items():
        inside = any(name.startswith(f"{other}.") for other in found if other != name)
        if inside:
            nested[name] = type(next(iter(module.children()))).__name__
        else:
            top[name] = module
    return top, nested


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


def _kind(module: nn.Module) -> tuple[str, str] | None:
    from diffusers.models.attention import AttentionModuleMixin, FeedForward
    from diffusers.models.attention_processor import Attention

    name = type(module).__name__
    if isinstance(module, Attention):
        return "attention", "Attention"
    if isinstance(module, AttentionModuleMixin):
        return "attention", "AttentionModuleMixin"
    if isinstance(module, nn.MultiheadAttention):
        return "attention", "nn.MultiheadAttention"
    if hasattr(module, "processor") and _ATTN_NAMES.search(name):
        return "attention", "processor"
    if isinstance(module, FeedForward):
        return "feed-forward", "FeedForward"
    linears = sum(isinstance(m, nn.Linear) for m in module.modules())
    convs = sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in module.modules())
    if _ATTN_NAMES.search(name) and linears >= 2 and "Norm" not in name and "Processor" not in name:
        return "attention", "class name"
    if _FF_NAMES.search(name) and linears + convs >= 2:
        return "feed-forward", "class name"
    if isinstance(module, nn.Sequential) and linears >= 2:
        return "feed-forward", "Sequential MLP"
    return None


def submodules(block: nn.Module) -> list[SubModule]:
    """Return the outermost attention and feed-forward sub-modules of `block`, in module order."""
    found: list[SubModule] = []
    for path, module in block.named_modules():
        if not path or any(path.startswith(f"{s.path}.") for s in found):
            continue
        kind = _kind(module)
        if kind is not None:
            found.append(SubModule(path, type(module).__name__, *kind))
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
