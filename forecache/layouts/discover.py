"""Find a transformer's block lists and their blocks' attention and feed-forward sub-modules, by type.

No attribute name is looked up: a block list is a `torch.nn.ModuleList` whose items are all of one
(non-torch) class holding attention; attention is recognised by diffusers' classes (`Attention`,
`AttentionModuleMixin`), `torch.nn.MultiheadAttention`, a ``processor`` attribute or an attention
class name over linear layers; feed-forward by diffusers' `FeedForward`, an MLP-like class name
over linear or convolution layers, or a `Sequential` of linear layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

__all__ = ["SubModule", "block_lists", "module_kind", "submodules"]

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
        calls: Times it ran during the block's first call (filled by observers; 0 here).
        residual: Per block output, how its output reaches it (filled by observers; None here).

    """

    path: str
    cls: str
    kind: str
    evidence: str
    calls: int = 0
    residual: list[str] | None = None


def _diffusers_kinds() -> tuple[tuple[type, str, str], ...]:
    from diffusers.models.attention import FeedForward
    from diffusers.models.attention_processor import Attention

    kinds: list[tuple[type, str, str]] = [(Attention, "attention", "Attention")]
    try:  # diffusers >= 0.35
        from diffusers.models.attention import AttentionModuleMixin
    except ImportError:  # pragma: no cover - older diffusers
        pass
    else:
        kinds.append((AttentionModuleMixin, "attention", "AttentionModuleMixin"))
    kinds += [
        (nn.MultiheadAttention, "attention", "nn.MultiheadAttention"),
        (FeedForward, "feed-forward", "FeedForward"),
    ]
    return tuple(kinds)


def module_kind(module: nn.Module) -> tuple[str, str] | None:
    """Return ``(kind, evidence)`` when `module` is an attention or feed-forward module, else None."""
    for cls, kind, evidence in _diffusers_kinds():
        if isinstance(module, cls):
            return kind, evidence
    name = type(module).__name__
    if hasattr(module, "processor") and _ATTN_NAMES.search(name):
        return "attention", "processor"
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
        kind = module_kind(module)
        if kind is not None:
            found.append(SubModule(path, type(module).__name__, *kind))
    return found


def _is_block_list(module: nn.Module) -> bool:
    items = list(module.children())
    if not isinstance(module, (nn.ModuleList, nn.ModuleDict)) or not items:
        return False
    cls = type(items[0])
    if any(type(item) is not cls for item in items) or cls.__module__.startswith("torch."):
        return False
    return any(isinstance(m, nn.Linear) for m in items[0].modules())


def block_lists(model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Return the outermost block lists (path -> list) and the lists inside blocks (path -> class).

    A block list is a `ModuleList` or `ModuleDict` of one non-torch class whose items hold a linear
    layer (attention is not required here; `forecache.layouts.infer` requires it of what it caches).
    """
    found = {name: m for name, m in model.named_modules() if name and _is_block_list(m)}
    top, nested = {}, {}
    for name, module in found.items():
        inside = any(name.startswith(f"{other}.") for other in found if other != name)
        if inside:
            nested[name] = type(next(iter(module.children()))).__name__
        else:
            top[name] = module
    return top, nested
