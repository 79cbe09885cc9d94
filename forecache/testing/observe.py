"""Observe a transformer's structure by running its first call with hooks: what layout inference needs.

Nothing here is guessed from attribute names alone: block lists are module lists of one class, their
order and multiplicity come from forward pre-hooks, stream roles from the token counts seen at the
call, attention and feed-forward sub-modules from their types, and "feeds the block output
additively" from re-running the block with the sub-module's output scaled by 0, 1 and 2.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from forecache.testing.blocks import SubModule, block_lists, loose_modules, residual, submodules
from forecache.testing.catalog import TinyModel, output_tensors

__all__ = ["BlockCall", "Observation", "SubModule", "describe", "observe"]


@dataclass
class BlockCall:
    """The first call of one block list (its first executed item).

    Attributes:
        list_path: Dotted path of the block list.
        cls: Block class name.
        signature: Parameter names of the block's forward.
        inputs: Bound argument name -> description (shape and stream role).
        output: Description of the return value.
        submodules: Attention and feed-forward sub-modules found by type.
        variants: Number of distinct argument-name sets over the list's calls (blocks called two ways).

    """

    list_path: str
    cls: str
    signature: list[str]
    inputs: dict[str, str]
    output: str
    submodules: list[SubModule] = field(default_factory=list)
    variants: int = 1


@dataclass
class Observation:
    """What one forward call of a transformer shows.

    Attributes:
        batch: Batch size of the call.
        img_tokens: Image-stream token count (from the patch embedding), if found.
        txt_tokens: Text-stream token count (from the text embedder), if found.
        lists: Block-list path -> (block class, length).
        nested: Module lists of one class inside blocks (experts, inner layers): path -> class.
        order: Execution order of block items, as ``(list path, index)``.
        calls: Block list path -> the first call's description.
        shared: Modules run more than once in the call: path -> (calls, distinct input shapes).
        multi_shape_sites: Blocks, attention and feed-forward modules that saw several input shapes.
        loose: Modules outside every block list that hold attention (outermost ones): a single
            middle block, a list of `ModuleDict` blocks, an attention-based embedder: path -> class.

    """

    batch: int
    img_tokens: int | None
    txt_tokens: int | None
    lists: dict[str, tuple[str, int]]
    nested: dict[str, str]
    order: list[tuple[str, int]]
    calls: dict[str, BlockCall]
    shared: dict[str, tuple[int, int]]
    multi_shape_sites: dict[str, int]
    loose: dict[str, str] = field(default_factory=dict)

    def runs(self) -> list[str]:
        """Return the execution order compressed to runs, e.g. ``["blocks[0-1]", "single_blocks[0]"]``."""
        out: list[list[Any]] = []
        for path, index in self.order:
            if out and out[-1][0] == path and index == out[-1][2] + 1:
                out[-1][2] = index
            else:
                out.append([path, index, index])
        return [f"{p}[{a}]" if a == b else f"{p}[{a}-{b}]" for p, a, b in out]


def describe(value: Any, role: str = "") -> str:
    """Describe a value compactly: tensor shapes (with a stream role), containers by structure."""
    if isinstance(value, torch.Tensor):
        text = "x".join(map(str, value.shape)) or "scalar"
        return f"T({text}){'[' + role + ']' if role else ''}"
    if value is None:
        return "None"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value[:4])
        return f"{type(value).__name__}({inner}{', ...' if len(value) > 4 else ''})"
    if isinstance(value, dict):
        return "dict{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (int, float, bool, str)):
        return repr(value)
    return type(value).__name__


_LATENT = ("hidden_states", "x", "latent_image_embeds", "bb_ca", "decoder_input_tokens", "vision_tokens")
_TEXT = re.compile(r"encoder_hidden_states|text_bth|cap_feats|prompt_embeds|encodings_and_masks|input_ids")
_AUDIO = re.compile(r"^audio_hidden_states$")


def _perturb(value: Any, generator: torch.Generator) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value + 0.01 * torch.randn(value.shape, generator=generator)
    if isinstance(value, (list, tuple)):
        return type(value)(_perturb(v, generator) for v in value)
    return value


def _roles(base: Any, perturbed: dict[str, Any]) -> list[str]:
    """Per tensor of a value: which perturbed inputs moved it (``L`` latent, ``T`` text, ``A`` audio)."""
    variants = {key: output_tensors(value) for key, value in perturbed.items()}
    out = []
    for i, b in enumerate(output_tensors(base)):
        moved = ""
        for key, tensors in variants.items():
            if i < len(tensors) and b.shape == tensors[i].shape and not torch.equal(b, tensors[i]):
                moved += key
        out.append(moved)
    return out


_ROLE = {"L": "img", "T": "txt", "A": "aud"}


def _label(value: Any, deps: str, counts: dict[str, set[int]]) -> str:
    """Stream role of a ``(batch, tokens, width)`` tensor from its dependence and its token count."""
    if not isinstance(value, torch.Tensor) or value.ndim != 3 or not value.is_floating_point() or not deps:
        return ""
    if deps in _ROLE:
        return _ROLE[deps]
    n = int(value.shape[1])
    matches = [_ROLE[k] for k in deps if n in counts.get(k, set())]
    if matches:
        return "|".join(matches)
    for size in (2, 3):
        for combo in itertools.combinations("LTA", size):
            if any(n == sum(pick) for pick in itertools.product(*(counts.get(k, set()) for k in combo))):
                return "+".join(_ROLE[k] for k in combo)
    return "mixed"


def observe(tiny: TinyModel, batch: int | None = None, step: int = 0, num_steps: int = 12) -> Observation:
    """Run call ``step`` of ``num_steps`` of `tiny` with hooks and report its structure.

    Stream roles: the call is repeated with the latent input perturbed and with the text input
    perturbed; a block argument that moves only with the latent is the image stream (``img``), only
    with the text the text stream (``txt``); one that moves with both is labelled by its token count
    (``img``, ``txt``, ``img+txt`` for a joint sequence, else ``mixed``).

    Args:
        tiny: A catalog case.
        batch: Batch size (default 2, or the case's `max_batch`).
        step: Which call of the loop to observe (its time value).
        num_steps: Steps of the loop.

    """
    model = tiny.model
    batch = batch or min(2, tiny.max_batch or 2)
    inputs = tiny.make_inputs(batch, torch.Generator().manual_seed(0))
    lists, nested = block_lists(model)
    names = {m: n for n, m in model.named_modules()}
    order: list[tuple[str, int]] = []
    arg_sets: dict[str, set[tuple[str, ...]]] = {}
    counts: Counter[str] = Counter()
    shapes: dict[str, set[tuple]] = {}

    def run(feed: dict[str, Any], full: bool) -> dict[str, list[Any]]:
        """One hooked call: each list's first (block, args, kwargs, output); counts when `full`."""
        first: dict[str, list[Any]] = {}

        def pre(path: str, index: int):  # noqa: ANN202
            def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
                if full:
                    order.append((path, index))
                    arg_sets.setdefault(path, set()).add((*kwargs, str(len(args))))
                first.setdefault(path, [module, args, kwargs, None])

            return hook

        def post(path: str):  # noqa: ANN202
            def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
                if first[path][0] is module and first[path][3] is None:
                    first[path][3] = output

            return hook

        def count(module: nn.Module, args: tuple, kwargs: dict) -> None:
            name = names[module]
            counts[name] += 1
            lead = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            shapes.setdefault(name, set()).add(tuple(lead.shape) if lead is not None else ())

        handles = []
        for path, blocks in lists.items():
            for index, block in enumerate(blocks.children()):
                handles.append(block.register_forward_pre_hook(pre(path, index), with_kwargs=True))
                handles.append(block.register_forward_hook(post(path), with_kwargs=True))
        if full:
            handles += [m.register_forward_pre_hook(count, with_kwargs=True) for m in names if m is not model]
        try:
            with torch.no_grad():
                tiny.call(feed, step, num_steps, batch)
        finally:
            for h in handles:
                h.remove()
        return first

    generator = torch.Generator().manual_seed(1)
    base = run(inputs, full=True)
    picks: dict[str, Callable[[str], object]] = {
        "L": lambda k: k in _LATENT,
        "T": _TEXT.search,
        "A": _AUDIO.search,
    }
    variants = {
        key: run({k: _perturb(v, generator) if pick(k) else v for k, v in inputs.items()}, full=False)
        for key, pick in picks.items()
        if any(pick(k) for k in inputs)
    }

    def bound(entry: list[Any]) -> dict[str, Any]:
        block, args, kwargs = entry[:3]
        try:
            return dict(inspect.signature(block.forward).bind_partial(*args, **kwargs).arguments)
        except TypeError:
            return {f"arg{i}": a for i, a in enumerate(args)} | kwargs

    deps: dict[str, dict[str, str]] = {}
    counts_by_role: dict[str, set[int]] = {"L": set(), "T": set(), "A": set()}
    for path, entry in base.items():
        values = bound(entry) | {"->": entry[3]}
        others = {k: bound(v[path]) | {"->": v[path][3]} for k, v in variants.items() if path in v}
        deps[path] = {}
        for key, value in values.items():
            roles = _roles(value, {k: o.get(key) for k, o in others.items()})
            for i, (tensor, role) in enumerate(zip(output_tensors(value), roles, strict=False)):
                deps[path][f"{key}#{i}"] = role
                if tensor.ndim == 3 and role in _ROLE:
                    counts_by_role[role].add(int(tensor.shape[1]))

    for role, given in (
        ("L", next((inputs[k] for k in _LATENT if k in inputs), None)),
        ("A", inputs.get("audio_hidden_states")),
    ):
        if not counts_by_role[role] and isinstance(given, torch.Tensor) and given.ndim == 3:
            counts_by_role[role].add(int(given.shape[1]))  # already tokens: the input's own length

    calls: dict[str, BlockCall] = {}
    for path, (block, args, kwargs, output) in base.items():
        arguments = bound(base[path])
        described = {}
        for key, value in arguments.items():
            role = _label(value, deps[path].get(f"{key}#0", ""), counts_by_role)
            described[key] = describe(value, role)
        outs = output_tensors(output)
        labels = [_label(t, deps[path].get(f"->#{i}", ""), counts_by_role) for i, t in enumerate(outs)]
        if isinstance(output, torch.Tensor):
            out_text = describe(output, labels[0])
        elif isinstance(output, (tuple, list)) and len(outs) == len(output):
            out_text = (
                f"{type(output).__name__}("
                + ", ".join(describe(t, r) for t, r in zip(outs, labels, strict=True))
                + ")"
            )
        else:
            out_text = describe(output)
        subs = submodules(block)
        modules = [block.get_submodule(sub.path) for sub in subs]
        for sub, module in zip(subs, modules, strict=True):
            sub.calls = counts.get(f"{names[block]}.{sub.path}", 0)
            sub.residual = residual(block, args, kwargs, module, [m for m in modules if m is not module])
        signature = list(inspect.signature(block.forward).parameters)
        calls[path] = BlockCall(
            path, type(block).__name__, signature, described, out_text, subs, len(arg_sets.get(path, ()))
        )

    sites = set()
    for blocks in lists.values():
        for block in blocks.children():
            sites |= {names[block]} | {f"{names[block]}.{s.path}" for s in submodules(block)}
    with_params = {n for n, m in model.named_modules() if next(m.parameters(), None) is not None}
    return Observation(
        batch=batch,
        img_tokens=min(counts_by_role["L"], default=None),
        txt_tokens=min(counts_by_role["T"], default=None),
        lists={
            p: (type(next(iter(m.children()))).__name__, len(list(m.children()))) for p, m in lists.items()
        },
        nested=nested,
        order=order,
        calls=calls,
        shared={n: (c, len(shapes[n])) for n, c in counts.items() if c > 1 and n in with_params},
        multi_shape_sites={n: len(shapes[n]) for n in sites if len(shapes.get(n, ())) > 1},
        loose=loose_modules(model, lists),
    )
