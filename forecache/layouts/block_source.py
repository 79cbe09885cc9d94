"""Read a block's forward source: which arguments it returns where, and which sub-modules it always runs.

A dry analysis of the abstract syntax tree of the block class's ``forward`` (and of the block's
methods it calls): ``return`` statements give the output structure; the ``if`` statements around
each use of an attention or feed-forward sub-module say whether it runs on every path. Tests on
the block's own flags (``if not self.context_pre_only``) are evaluated on the block, and
``if stream is not None`` on its always-given stream counts as taken.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

import torch

from forecache.layouts.source import parse_function

__all__ = ["block_returns", "submodule_use"]


def block_returns(block_cls: type, params: list[str]) -> tuple[bool, tuple[int | None, ...] | None]:
    """Read which arguments a block returns, from its forward's ``return`` statements.

    Args:
        block_cls: The block class.
        params: Its forward's parameter names (without ``self``).

    Returns:
        ``(is_tuple, slots)``: whether it returns a tuple, and for a tuple, per position the index
        in `params` of the argument returned there (None for anything else). ``(False, None)`` for a
        single value; ``(True, None)`` when the returns disagree or cannot be read.

    """
    node = parse_function(getattr(block_cls, "forward", None))
    if node is None:
        return True, None
    found: list[tuple[int | None, ...] | None] = []
    single = False
    for ret in ast.walk(node):
        if not isinstance(ret, ast.Return) or ret.value is None:
            continue
        if isinstance(ret.value, ast.Tuple):
            slots = tuple(
                params.index(e.id) if isinstance(e, ast.Name) and e.id in params else None
                for e in ret.value.elts
            )
            found.append(slots)
        else:
            single = True
    if not found:
        return False, None
    if single or any(slots != found[0] for slots in found):
        tuples = [slots for slots in found if slots is not None]
        if single and tuples and all(s == tuples[0] for s in tuples):
            return True, tuples[0]  # a tuple or the first stream alone (a flag picks): slots hold
        return True, None
    return True, found[0]


def _given(test: ast.AST, given: set[str]) -> bool:
    """Whether an ``if`` test only checks that an always-given argument was passed (``x is not None``)."""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id in given
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.IsNot)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def _static(test: ast.AST, instance: Any) -> bool | None:
    """Evaluate an ``if`` test on a block's own flags (``self.context_pre_only``), else return None."""
    if instance is None:
        return None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _static(test.operand, instance)
        return None if inner is None else not inner
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant):
        left = _static_value(test.left, instance)
        if left is _UNKNOWN or test.comparators[0].value is not None:
            return None
        if isinstance(test.ops[0], ast.Is):
            return left is None
        if isinstance(test.ops[0], ast.IsNot):
            return left is not None
        return None
    value = _static_value(test, instance)
    if value is _UNKNOWN or not isinstance(value, (bool, int, float, str, type(None))):
        return None if value is _UNKNOWN else value is not None
    return bool(value)


_UNKNOWN = object()


def _static_value(node: ast.AST, instance: Any) -> Any:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return getattr(instance, node.attr, _UNKNOWN)
    return _UNKNOWN


def _dotted(node: ast.AST) -> str | None:
    """``"a.b.c"`` for ``self.a.b[0].c`` (subscripts skipped), else None."""
    parts: list[str] = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "self" and parts:
        return ".".join(reversed(parts))
    return None


def _is_module(instance: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        instance = getattr(instance, part, None)
        if instance is None:
            return False
    return isinstance(instance, torch.nn.Module)


def submodule_use(
    block_cls: type, paths: set[str], given: set[str] | None = None, instance: Any = None
) -> dict[str, str] | None:
    """How a block's forward uses its sub-modules `attrs` (first components of their dotted names).

    Args:
        block_cls: The block class.
        paths: Dotted names of its sub-modules (``"attn"``, ``"video_dec_block.self_attention"``).
        given: Arguments always passed (the stream): ``if stream is not None`` counts as taken.
        instance: A block; tests of its own flags (``if not self.context_pre_only``) are evaluated.

    Returns:
        Per path (judged by its first attribute): ``"always"`` (used on every path: outside any
        ``if``, or in both branches of one), ``"conditional"`` (only on some paths: an optional
        input's branch, e.g. inpainting conditioning), ``"never"`` (not named in the forward nor
        in the block's methods it calls: weights kept for another mode), or ``"opened"`` (the
        block calls one of its layers itself, e.g. ``self.attn2.to_out[0](...)``: forecasting the
        module's output would not skip that layer). None when the source cannot be read.

    """
    given = given or set()
    attrs = {path.split(".")[0] for path in paths}
    seen: set[str] = {"forward"}

    def uses(nodes: list[ast.AST]) -> tuple[set[str], set[str]]:
        """Return (used on every path, used anywhere) over a sequence of nodes."""
        always: set[str] = set()
        anywhere: set[str] = set()
        for node in nodes:
            a, b = use(node)
            always |= a
            anywhere |= b
        return always, anywhere

    def use(node: ast.AST) -> tuple[set[str], set[str]]:
        if isinstance(node, (ast.If, ast.IfExp)):
            test_always, test_any = use(node.test)
            body: list[ast.AST] = list(node.body) if isinstance(node.body, list) else [node.body]
            orelse: list[ast.AST] = list(node.orelse) if isinstance(node.orelse, list) else [node.orelse]
            body_always, body_any = uses(body)
            else_always, else_any = uses(orelse)
            static = _static(node.test, instance)
            if static is not None:
                return (
                    (test_always | body_always, test_any | body_any)
                    if static
                    else (
                        test_always | else_always,
                        test_any | else_any,
                    )
                )
            if _given(node.test, given):
                return test_always | body_always, test_any | body_any | else_any
            return test_always | (body_always & else_always), test_any | body_any | else_any
        found: set[str] = set()
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            for path in paths:
                if dotted is not None and dotted.startswith(f"{path}.") and _is_module(instance, dotted):
                    opened.add(path)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            if node.attr in attrs:
                found.add(node.attr)
            function = getattr(block_cls, node.attr, None)
            if node.attr not in seen and inspect.isfunction(function):
                seen.add(node.attr)
                parsed = parse_function(function)
                if parsed is not None:
                    a, b = uses(list(parsed.body))
                    return found | a, found | b
        always, anywhere = uses(list(ast.iter_child_nodes(node)))
        return found | always, found | anywhere

    opened: set[str] = set()
    forward = parse_function(getattr(block_cls, "forward", None))
    if forward is None:
        return None
    always, anywhere = uses(list(forward.body))

    def status(path: str) -> str:
        attr = path.split(".")[0]
        if path in opened:
            return "opened"
        return "always" if attr in always else "conditional" if attr in anywhere else "never"

    return {path: status(path) for path in paths}
