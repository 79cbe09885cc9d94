"""Infer where to hook a diffusers transformer from the model itself, and explain the decision.

`infer_layout` lays out a transformer no registration describes, before any call (a dry analysis):

1. Block lists: the model's `ModuleList` children whose items are all of one class holding
   attention (`forecache.layouts.discover`, by type, never by attribute name).
2. Their order: the loops of the model's ``forward`` source over them (`forecache.layouts.source`).
   Left alone (never hooked, always run): lists run in no loop of the forward, lists that feed the
   text stream only (the variable their blocks are fed names it: ``encoder_hidden_states``,
   ``cap_feats``, ``text_embed``...; text refiners are cheap and do not see the latent), and the
   second list of two run interleaved (spatial / temporal blocks in one loop).
3. Streams: a block's first parameter is its stream; what it returns comes from diffusers' block
   metadata when it has some, else from the block's ``return`` statements and the variables the
   model's loop assigns (``encoder_hidden_states, hidden_states = block(...)``).
4. Cached sub-modules (``"modules"`` target): the block's attention and feed-forward sub-modules,
   found by type, that its forward calls unconditionally.
5. Time: the forward's time argument by name (`TIME_NAMES` first, then any ``*time*``/``sigma``
   parameter); its direction from `RISING_TIME`.

Two layouts come out. Targets that keep blocks running or forecast the whole output (``"modules"``,
``"output"``) take every list kept above. Targets that chain the blocks (``Target.chains_blocks``:
``"blocks"``, the tuner's ``"record"``) forecast the
residual from the stack's input to its output and pass the input through the blocks in between,
so they need a chain: consecutive lists whose blocks hand their streams to the next block untouched
(no concatenation of text and image, no reshape, no injection between them). They take the longest
such chain (the last on a tie: single-stream stacks are the longer ones in real checkpoints).

Whatever cannot be laid out is refused with the reason. What the source cannot show (a branch
taken at run time, a sub-module that does not run) is checked at the first call
(`forecache.layouts.first_call`).
"""

from __future__ import annotations

import inspect
import itertools
import re
from dataclasses import dataclass, field

import torch

from forecache.accel._private import block_return_indices
from forecache.accel.layout import BlockListLayout, ModelLayout, TimeArgument
from forecache.layouts.block_source import block_returns, submodule_use
from forecache.layouts.discover import block_lists, submodules
from forecache.layouts.source import ForwardScan, scan_forward

__all__ = ["RISING_TIME", "TIME_NAMES", "Inference", "ListFinding", "infer_layout"]

#: Time argument names tried first, in this order; then any parameter named like a time.
TIME_NAMES = ("timestep", "timesteps", "t", "sigma", "sigmas", "time", "noise_level")
_TIME_LIKE = re.compile(r"time|sigma")
_NOT_TIME = re.compile(r"kwargs|return_dict|_cond$|_ids$|indices|embed")
_TEXT_VAR = re.compile(r"encoder|text|txt|cap_|caption|context|prompt")

#: Classes whose pipelines pass a time that rises over a generation (0 = noise), with the evidence.
RISING_TIME: dict[str, str] = {
    "Lumina2Transformer2DModel": "Lumina2Pipeline passes 1 - t / 1000",
    "LuminaNextDiT2DModel": "LuminaPipeline passes 1 - t / 1000",
    "ZImageTransformer2DModel": "ZImagePipeline passes (1000 - t) / 1000",
    "Ideogram4Transformer2DModel": "the Ideogram 4 pipelines pass 1 - sigma",
    "MiniMaxMusic3Transformer1DModel": "MiniMaxMusic3Pipeline passes 1 - sigma",
    "RFD4ProteinaTransformer": "the Proteina sampler integrates time from 0 (noise) to 1",
}


@dataclass(frozen=True)
class ListFinding:
    """What inference decided about one block list.

    Attributes:
        attr: The attribute holding it.
        block_class: Its blocks' class name.
        length: Its number of blocks.
        cached: Whether the layouts of non-chained targets hook it.
        chained: Whether the chained targets' layout hooks it.
        note: Why it is left alone, or what limits it (e.g. the glue before it).
        layout: Its block-list layout (streams, sub-modules), when hooked.

    """

    attr: str
    block_class: str
    length: int
    cached: bool
    chained: bool
    note: str = ""
    layout: BlockListLayout | None = None


@dataclass(frozen=True)
class Inference:
    """An inferred layout with its explanation.

    Attributes:
        model: The transformer's class name.
        layout: For targets that keep the blocks running or forecast the output; None when refused.
        chain: For targets that chain the blocks (``Target.chains_blocks``); None when refused.
        refusal: Why nothing can be laid out ('' when `layout` is set).
        chain_refusal: Why no chain can be laid out ('' when `chain` is set).
        lists: Every block list found, in execution order (then the ones run in no loop).
        time: The time argument and its direction.
        time_note: How the time argument was found.

    """

    model: str
    layout: ModelLayout | None
    chain: ModelLayout | None
    refusal: str = ""
    chain_refusal: str = ""
    lists: tuple[ListFinding, ...] = ()
    time: TimeArgument | None = None
    time_note: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def for_target(self, chained: bool) -> tuple[ModelLayout | None, str]:
        """Return the layout for a target that chains the blocks or not and, when it is None, why."""
        if chained:
            return self.chain, self.chain_refusal
        return self.layout, self.refusal


def _params(function: object) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]  # type: ignore[arg-type]


def find_time(model: torch.nn.Module) -> tuple[TimeArgument | None, str]:
    """Return the time argument of `model`'s forward (by name) and its direction, and how it was found."""
    params = [
        name
        for name, p in inspect.signature(type(model).forward).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    name = next((n for n in TIME_NAMES if n in params), None)
    how = "by name"
    if name is None:
        name = next((p for p in params if _TIME_LIKE.search(p) and not _NOT_TIME.search(p)), None)
        how = "named like a time"
    if name is None:
        return None, f"no time argument among the forward's parameters {params}"
    rising = next((why for cls, why in RISING_TIME.items() if cls in _class_names(model)), "")
    note = f"`{name}` ({how})" + (f"; rises over a generation ({rising}), read negated" if rising else "")
    return TimeArgument((name,), rises=bool(rising)), note


def _class_names(model: torch.nn.Module) -> list[str]:
    return [cls.__name__ for cls in type(model).__mro__]


def _streams(
    block: torch.nn.Module, loop_out: tuple[str, ...]
) -> tuple[int | None, int | None, str, str, str]:
    """``(hidden_index, encoder_index, hidden_arg, encoder_arg, problem)`` of a block class.

    Which output position returns which argument comes from the block's ``return`` statements, else
    from the names the model's loop assigns; which of two streams is the image one from diffusers'
    block metadata when it has some (Cosmos 3 returns ``(und_seq, gen_seq)``: the second), else the
    block's first argument.
    """
    params = _params(type(block).forward)
    meta = block_return_indices(type(block))
    is_tuple, slots = block_returns(type(block), params)
    if is_tuple and (slots is None or all(s is None for s in slots)) and loop_out:
        slots = tuple(params.index(v) if v in params else None for v in loop_out)
    if not is_tuple:
        return None, None, params[0], "encoder_hidden_states", ""
    if slots is None or all(s is None for s in slots):
        if meta is not None and meta[1] is not None and "encoder_hidden_states" in params:
            return meta[0], meta[1], params[0], "encoder_hidden_states", ""
        return (
            None,
            None,
            params[0],
            "encoder_hidden_states",
            (f"cannot tell which output of {type(block).__name__} returns which argument"),
        )
    known = [(i, s) for i, s in enumerate(slots) if s is not None]
    hidden_meta, encoder_meta = meta if meta is not None else (None, None)
    if hidden_meta is not None and encoder_meta is not None:
        hidden, encoder = hidden_meta, encoder_meta
        hidden_slot = slots[hidden] if hidden < len(slots) else None
        encoder_slot = slots[encoder] if encoder < len(slots) else None
        if hidden_slot is not None and encoder_slot is not None:
            return hidden, encoder, params[hidden_slot], params[encoder_slot], ""
    if 0 not in slots:
        return (
            None,
            None,
            params[0],
            "encoder_hidden_states",
            (f"cannot tell which output of {type(block).__name__} carries `{params[0]}`"),
        )
    hidden = slots.index(0)
    other = next(((i, s) for i, s in known if s != 0), None)
    if other is None:
        return hidden, None, params[0], "encoder_hidden_states", ""
    return hidden, other[0], params[0], params[other[1]], ""


def _modules(block: torch.nn.Module) -> tuple[tuple[str, ...], list[str]]:
    """Return the sub-modules to cache (attention and feed-forward that always run), notes on the rest."""
    found = submodules(block)
    first = _params(type(block).forward)[:1]
    use = submodule_use(type(block), {s.path for s in found}, set(first), block)
    keep, notes = [], []
    for sub in found:
        how = "always" if use is None else use[sub.path]
        if how == "always":
            keep.append(sub.path)
        else:
            why = {
                "conditional": "runs only under a condition",
                "never": "is never called by the block",
                "opened": "has a layer the block calls itself",
            }[how]
            notes.append(f"`{sub.path}` {why}: not cached")
    return tuple(keep), notes


def _findings(model: torch.nn.Module, scan: ForwardScan, lists: dict[str, torch.nn.ModuleList]) -> list[dict]:
    rows = []
    order = [loop.attr for loop in scan.loops if loop.attr in lists]
    for attr in order + [a for a in lists if a not in order]:
        blocks = lists[attr]
        loop = scan.loop(attr)
        row = {
            "attr": attr,
            "block": blocks[0],
            "length": len(blocks),
            "loop": loop,
            "note": "",
            "keep": True,
        }
        if loop is None:
            row.update(keep=False, note="run in no loop of the forward's source")
        elif loop.hidden_var is not None and _TEXT_VAR.search(loop.hidden_var):
            row.update(keep=False, note=f"text stream only (fed `{loop.hidden_var}`)")
        else:
            earlier = [w for w in loop.with_lists if w in lists and w in order[: order.index(attr)]]
            if earlier:
                row.update(keep=False, note=f"runs interleaved with `{earlier[0]}` (left alone)")
        rows.append(row)
    return rows


def infer_layout(model: torch.nn.Module) -> Inference:
    """Infer where to hook `model` (see the module docstring); never raises for an unusual model.

    Returns:
        The layouts for chained and other targets, each with the reason when it is refused.

    """
    name = type(model).__name__
    time, time_note = find_time(model)
    top, _ = block_lists(model)
    lists: dict[str, torch.nn.ModuleList] = {}
    skipped: list[ListFinding] = []
    for attr, child in model.named_children():
        if attr not in top or not isinstance(child, torch.nn.ModuleList):
            continue
        if any(s.kind == "attention" for s in submodules(child[0])):
            lists[attr] = child
        else:
            skipped.append(
                ListFinding(attr, type(child[0]).__name__, len(child), False, False, "no attention inside")
            )
    if not lists:
        nested = [p for p in top if "." in p]
        where = f" (block lists below the top level are not hooked: {nested})" if nested else ""
        return _refused(
            name,
            f"{name} has no list of transformer blocks with attention as a child{where}",
            time,
            time_note,
            skipped,
        )
    params = {attr: _params(type(blocks[0]).forward)[0] for attr, blocks in lists.items()}
    every = {attr for attr in top if "." not in attr}  # lists without attention too: they may run in between
    scan = scan_forward(type(model), every, params)
    if not scan.readable:
        return _refused(name, f"the source of {name}.forward cannot be read", time, time_note, skipped)
    if time is None:
        return _refused(name, time_note, None, time_note, skipped)
    rows = _findings(model, scan, lists)
    layouts: dict[str, BlockListLayout] = {}
    for row in rows:
        if not row["keep"]:
            continue
        loop = row["loop"]
        hidden, encoder, hidden_arg, encoder_arg, problem = _streams(row["block"], loop.out_vars)
        modules, notes = _modules(row["block"])
        row["problem"] = problem
        row["notes"] = notes
        layouts[row["attr"]] = BlockListLayout(
            row["attr"], hidden, encoder, modules, (), hidden_arg, encoder_arg
        )
    kept = [row for row in rows if row["keep"]]
    if not kept:
        reasons = "; ".join(f"`{r['attr']}`: {r['note']}" for r in rows)
        return _refused(name, f"no block list of {name} can be hooked ({reasons})", time, time_note, skipped)
    for previous, row in itertools.pairwise(kept):
        row["glue_before"] = scan.glue_between(previous["loop"], row["loop"])
    chain, chain_refusal = _chain(kept, layouts)
    findings = [
        ListFinding(
            row["attr"],
            type(row["block"]).__name__,
            row["length"],
            row["keep"],
            row["attr"] in chain,
            "; ".join(filter(None, [row["note"], *_chain_notes(row), *row.get("notes", [])])),
            layouts.get(row["attr"]),
        )
        for row in rows
    ]
    layout = ModelLayout(tuple(layouts[row["attr"]] for row in kept), time)
    chained = ModelLayout(tuple(layouts[a] for a in chain), time) if chain else None
    return Inference(name, layout, chained, "", chain_refusal, tuple(findings + skipped), time, time_note)


def _chain_notes(row: dict) -> list[str]:
    loop = row["loop"]
    if not row["keep"] or loop is None:
        return []
    notes = [f"glue inside: `{loop.glue}`" if loop.glue and not loop.glue.startswith("`") else loop.glue]
    if loop.with_lists:
        notes.append(f"runs with {list(loop.with_lists)} in its loop")
    notes.append(row.get("problem", ""))
    notes.append(f"glue before: {row['glue_before']}" if row.get("glue_before") else "")
    return [n for n in notes if n]


def _chain(kept: list[dict], layouts: dict[str, BlockListLayout]) -> tuple[list[str], str]:
    """Return the longest run of lists connected without glue (the last on a tie), or why there is none."""
    runs: list[list[dict]] = []
    reasons: list[str] = []
    for row in kept:
        loop = row["loop"]
        layout = layouts[row["attr"]]
        broken = loop.glue or (
            f"`{row['attr']}` runs interleaved with {list(loop.with_lists)}" if loop.with_lists else ""
        )
        broken = broken or row["problem"]
        if broken:
            reasons.append(
                f"`{row['attr']}`: {broken}" if not broken.startswith("`" + row["attr"]) else broken
            )
            runs.append([])
            continue
        previous = runs[-1][-1] if runs and runs[-1] else None
        streams = (layout.hidden_index is None, layout.encoder_index is None)
        if (
            previous is None
            or row.get("glue_before")
            or streams
            != (
                layouts[previous["attr"]].hidden_index is None,
                layouts[previous["attr"]].encoder_index is None,
            )
        ):
            if previous is not None:
                reasons.append(
                    row.get("glue_before")
                    or f"`{previous['attr']}` and `{row['attr']}` carry different streams"
                )
            runs.append([row])
        else:
            runs[-1].append(row)
    best: list[dict] = []
    for run in runs:
        if run and sum(r["length"] for r in run) >= sum(r["length"] for r in best):
            best = run
    if not best:
        return [], "no chain of blocks whose streams pass from one block to the next untouched: " + "; ".join(
            reasons
        )
    return [r["attr"] for r in best], ""


def _refused(
    name: str, reason: str, time: TimeArgument | None, time_note: str, lists: list[ListFinding]
) -> Inference:
    return Inference(name, None, None, reason, reason, tuple(lists), time, time_note)
