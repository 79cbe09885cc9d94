"""Read a transformer's forward source: the order its block lists run in and what connects them.

A dry analysis (nothing runs): the abstract syntax tree of the model's ``forward`` (and of the
methods of the model it calls) is walked in statement order. Each ``for`` loop over a block list
(``for block in self.blocks``, through ``enumerate``, ``zip`` or a slice) is recorded with the
variable it feeds the blocks and the variables it assigns from them; a loop over two lists
(``zip``), or a list indexed inside another's loop, marks them interleaved. "Glue" is code that
reassigns the stream variables between two blocks outside the block calls: unconditionally in
the loop body (a reshape between spatial and temporal blocks), or anywhere between two lists'
loops (the concatenation of the text and image streams before single-stream blocks). Code under
an ``if`` that holds no block call (a ControlNet residual) is taken as not run; the first call
checks it (`forecache.layouts.first_call`).

`forecache.layouts.block_source` reads the blocks' own forward sources.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ForwardScan", "ListLoop", "parse_function", "scan_forward"]

_CHECKPOINT = re.compile(r"checkpoint")
_TRAINING = re.compile(r"gradient_checkpointing|is_grad_enabled")
_MAX_DEPTH = 3


@dataclass
class ListLoop:
    """One ``for`` loop over a block list in the model's forward.

    Attributes:
        attr: The block list iterated.
        position: Order of the loop among all recorded events.
        with_lists: Other block lists iterated or indexed in the same loop (interleaved).
        hidden_var: Variable passed as the blocks' first argument (None: not a plain name).
        out_vars: Variables assigned from the block calls.
        glue: Reason the loop body reassigns a stream variable outside the block call ('' if not).

    """

    attr: str
    position: int
    with_lists: tuple[str, ...] = ()
    hidden_var: str | None = None
    out_vars: tuple[str, ...] = ()
    glue: str = ""


@dataclass
class ForwardScan:
    """What the forward's source says about the block lists.

    Attributes:
        loops: Loops over block lists, in source order (a list appears once: its first loop).
        readable: Whether a source was found and parsed.
        assignments: ``(position, variable, line)`` of every assignment outside list loops.

    """

    loops: list[ListLoop] = field(default_factory=list)
    readable: bool = True
    assignments: list[tuple[int, str, str]] = field(default_factory=list)

    def loop(self, attr: str) -> ListLoop | None:
        """Return the loop over `attr`, or None when the forward runs it in no loop."""
        return next((loop for loop in self.loops if loop.attr == attr), None)

    def glue_between(self, before: ListLoop, after: ListLoop) -> str:
        """Why the stream `after`'s blocks are fed is not what `before`'s blocks returned ('' if it is)."""
        if after.hidden_var is None or after.hidden_var not in before.out_vars:
            return (
                f"`{after.attr}` is fed `{after.hidden_var}`, not an output of `{before.attr}` "
                f"({', '.join(before.out_vars) or 'none'})"
            )
        for position, name, line in self.assignments:
            if before.position < position < after.position and name == after.hidden_var:
                return f"`{line}` between `{before.attr}` and `{after.attr}`"
        return ""


def parse_function(function: Any) -> ast.FunctionDef | None:
    """Return the syntax tree of a function's definition (decorators unwrapped), None without a source."""
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(function)))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None  # type: ignore[return-value]


def _names(target: ast.AST) -> tuple[str, ...]:
    if isinstance(target, ast.Name):
        return (target.id,)
    if isinstance(target, (ast.Tuple, ast.List)):
        return tuple(name for elt in target.elts for name in _names(elt))
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return ()


def _bind(
    target: ast.AST, iterator: ast.AST, lists: set[str], out: dict[str, str], aliases: dict[str, str]
) -> None:
    """Map loop variables to the block lists they iterate (through enumerate, zip, slices, aliases)."""
    if isinstance(iterator, ast.Subscript):
        iterator = iterator.value
    if isinstance(iterator, ast.Name) and iterator.id in aliases and isinstance(target, ast.Name):
        out[target.id] = aliases[iterator.id]
        return
    if isinstance(iterator, ast.Attribute) and isinstance(iterator.value, ast.Name):
        if iterator.value.id == "self" and iterator.attr in lists and isinstance(target, ast.Name):
            out[target.id] = iterator.attr
        return
    if isinstance(iterator, ast.Call) and isinstance(iterator.func, ast.Name) and iterator.args:
        elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else None
        if iterator.func.id == "enumerate" and elts and len(elts) == 2:
            _bind(elts[1], iterator.args[0], lists, out, aliases)
        elif iterator.func.id == "zip" and elts and len(elts) == len(iterator.args):
            for elt, arg in zip(elts, iterator.args, strict=True):
                _bind(elt, arg, lists, out, aliases)
        elif iterator.func.id in ("reversed", "list", "iter"):
            _bind(target, iterator.args[0], lists, out, aliases)


def _callee(call: ast.Call, blocks: dict[str, str]) -> str | None:
    """Return the loop variable a call runs: ``block(...)``, ``block.__call__(...)`` or a checkpoint of it."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("__call__", "forward"):
        func = func.value
    if isinstance(func, ast.Name) and func.id in blocks:
        return func.id
    if _CHECKPOINT.search(ast.unparse(call.func)) and call.args:
        first = call.args[0]
        if isinstance(first, ast.Attribute) and first.attr in ("__call__", "forward"):
            first = first.value
        if isinstance(first, ast.Name) and first.id in blocks:
            return first.id
    return None


def _block_call(value: ast.AST | None, blocks: dict[str, str]) -> tuple[str, ast.AST | None, ast.Call] | None:
    """Return ``(list, expression passed first, call)`` if `value` runs a loop's block.

    Looks through ``call(...)[0]``, ``call(...).to(...)`` and ``a if cond else b`` (the first branch
    that runs a block).
    """
    while True:
        if isinstance(value, ast.Subscript):
            value = value.value
        elif (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and _callee(value, blocks) is None
            and isinstance(value.func.value, ast.Call)
        ):
            value = value.func.value
        else:
            break
    if isinstance(value, ast.IfExp):
        return _block_call(value.body, blocks) or _block_call(value.orelse, blocks)
    if not isinstance(value, ast.Call):
        return None
    name = _callee(value, blocks)
    if name is None:
        return None
    args = list(value.args)
    if name not in (a.id for a in args[:1] if isinstance(a, ast.Name)):
        first = args[0] if args else next((k.value for k in value.keywords if k.arg is not None), None)
    else:
        first = args[1] if len(args) > 1 else None  # a checkpoint: (block, first, ...)
    return blocks[name], first, value


def _hidden_expr(call: ast.Call, first: ast.AST | None, hidden_param: str | None) -> ast.AST | None:
    if hidden_param is not None:
        for keyword in call.keywords:
            if keyword.arg == hidden_param:
                return keyword.value
    return first


class _Scanner:
    def __init__(self, model_cls: type, lists: set[str], hidden_params: dict[str, str]) -> None:
        self.cls = model_cls
        self.lists = lists
        self.hidden_params = hidden_params
        self.scan = ForwardScan()
        self.position = 0
        self.seen_methods: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.alternatives: set[str] = set()
        self.inputs = set(inspect.signature(getattr(model_cls, "forward")).parameters) - {"self"}  # noqa: B009

    def tick(self) -> int:
        self.position += 1
        return self.position

    def method(self, name: str, depth: int) -> None:
        function: Any = getattr(self.cls, name, None)
        if (
            depth > _MAX_DEPTH
            or name in self.seen_methods
            or not inspect.isfunction(inspect.unwrap(function))
        ):
            return
        self.seen_methods.add(name)
        node = parse_function(function)
        if node is None:
            if depth == 0:
                self.scan.readable = False
            return
        self.body(node.body, depth)

    def body(self, statements: list[ast.stmt], depth: int) -> None:
        for i, statement in enumerate(statements):
            if (
                isinstance(statement, ast.If)
                and statement.body
                and isinstance(statement.body[-1], (ast.Return, ast.Raise))
            ):
                # ``if mode: return self._forward_a(...)`` then the rest: two alternative paths
                if not statement.orelse:
                    statement = ast.If(test=statement.test, body=statement.body, orelse=statements[i + 1 :])
                    self.statement(statement, depth)
                    return
            self.statement(statement, depth)

    def statement(self, node: ast.stmt, depth: int) -> None:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            blocks: dict[str, str] = {}
            _bind(node.target, node.iter, self.lists, blocks, self.aliases)
            if blocks:
                self.list_loop(node, blocks)
                return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(node, ast.If):
            self.calls(node.test, depth)
            if _TRAINING.search(ast.unparse(node.test)):  # inference runs with no gradient: the else path
                self.body(node.orelse or node.body, depth)
                return
            before = {loop.attr for loop in self.scan.loops}
            self.body(node.body, depth)
            saved = self.alternatives
            self.alternatives = saved | ({loop.attr for loop in self.scan.loops} - before)
            self.body(node.orelse, depth)
            self.alternatives = saved
            return
        children = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.stmt):
                self.calls(child, depth)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            line = ast.unparse(node).splitlines()[0][:120]
            value = node.value
            if (
                isinstance(node, ast.Assign)
                and isinstance(value, ast.Attribute)
                and isinstance(value.value, ast.Name)
                and value.value.id == "self"
                and value.attr in self.lists
            ):
                for name in _names(node.targets[0]):
                    self.aliases[name] = value.attr
            for target in targets:
                for name in _names(target):
                    self.scan.assignments.append((self.tick(), name, line))
        for child in children:
            self.statement(child, depth)

    def calls(self, node: ast.AST, depth: int) -> None:
        """Scan the methods of the model that an expression calls (``self.method(...)``), in order."""
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                value = call.func.value
                if isinstance(value, ast.Name) and value.id == "self":
                    self.method(call.func.attr, depth + 1)

    def list_loop(self, node: ast.For | ast.AsyncFor, blocks: dict[str, str]) -> None:
        iterated = list(dict.fromkeys(blocks.values()))
        indexed = [
            n.value.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Subscript)
            and isinstance(n.value, ast.Attribute)
            and isinstance(n.value.value, ast.Name)
            and n.value.value.id == "self"
            and n.value.attr in self.lists
            and n.value.attr not in iterated
        ]
        primary = iterated[0]
        calls: list[tuple[ast.stmt, str, ast.AST | None, ast.Call]] = []
        packed: dict[str, ast.AST] = {}  # ``args = (x, y, ...)`` then ``block(*args)``
        for statement in ast.walk(node):
            if isinstance(statement, ast.Assign) and isinstance(statement.value, (ast.Tuple, ast.List)):
                for name in _names(statement.targets[0])[:1]:
                    if statement.value.elts:
                        packed[name] = statement.value.elts[0]
            if isinstance(statement, (ast.Assign, ast.Expr)):
                found = _block_call(statement.value, blocks)
                if found is not None:
                    calls.append((statement, *found))
        out_vars: list[str] = []
        hidden_var: str | None = None
        for statement, attr, first, call in calls:
            if attr != primary:
                continue
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    out_vars += _names(target)
            expr = _hidden_expr(call, first, self.hidden_params.get(attr))
            if isinstance(expr, ast.Starred) and isinstance(expr.value, ast.Name):
                expr = packed.get(expr.value.id)
            if hidden_var is None and isinstance(expr, ast.Name):
                hidden_var = expr.id
        call_statements = {id(statement) for statement, *_ in calls}
        glue = self._glue(node.body, set(out_vars), call_statements, blocks)
        position = self.tick()
        for attr in iterated:
            known = self.scan.loop(attr)
            if known is not None and attr in self.alternatives:
                continue  # the other branch of an ``if`` that runs the list its own way
            if known is not None:
                known.glue = known.glue or f"`{attr}` is run by two loops"
            else:
                self.scan.loops.append(
                    ListLoop(
                        attr,
                        position,
                        tuple(a for a in [*iterated, *indexed] if a != attr),
                        hidden_var if attr == primary else None,
                        tuple(dict.fromkeys(out_vars)) if attr == primary else (),
                        glue,
                    )
                )

    def _optional_input(self, test: ast.AST) -> bool:
        """Whether an ``if`` tests that an optional input of the model was passed (ControlNet residuals)."""
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            return any(self._optional_input(value) for value in test.values)
        name = test.left if isinstance(test, ast.Compare) and len(test.ops) == 1 else test
        if isinstance(test, ast.Compare) and not (
            isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
        ):
            return False
        return isinstance(name, ast.Name) and name.id in self.inputs

    def _glue(
        self, statements: list[ast.stmt], streams: set[str], calls: set[int], blocks: dict[str, str]
    ) -> str:
        """Return the first unconditional reassignment of a stream variable outside a block call, or ''."""
        for statement in statements:
            if id(statement) in calls:
                continue
            if isinstance(statement, ast.If):
                structural = any(
                    _block_call(getattr(n, "value", None), blocks) is not None for n in ast.walk(statement)
                )
                if structural or not self._optional_input(statement.test):
                    found = self._glue(statement.body + statement.orelse, streams, calls, blocks)
                    if found:
                        return found
                continue
            if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                if any(name in streams for t in targets for name in _names(t)):
                    return ast.unparse(statement).splitlines()[0][:120]
        return ""


def scan_forward(
    model_cls: type, lists: set[str], hidden_params: dict[str, str] | None = None
) -> ForwardScan:
    """Scan `model_cls.forward` (and the methods it calls) for loops over the block lists `lists`.

    Args:
        model_cls: The transformer class.
        lists: Names of its block-list attributes.
        hidden_params: Per list, the name of its blocks' first (stream) parameter, to find the
            variable fed to them when it is passed by keyword.

    Returns:
        The loops in source order (`ForwardScan.glue_between` tells what connects two of them).

    """
    scanner = _Scanner(model_cls, lists, hidden_params or {})
    scanner.method("forward", 0)
    scanner.scan.loops.sort(key=lambda loop: loop.position)
    return scanner.scan
