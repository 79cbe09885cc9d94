"""No import cycle among forecache's modules, and imports flow one way between its layers.

Every ``import`` statement counts: at the top of a module, behind ``TYPE_CHECKING`` and inside
functions (DESIGN.md, section 5: a module that needs a name from above it is in the wrong place).
``from a.b import c`` is an edge to ``a.b`` and, when ``c`` is a module, to ``a.b.c`` too. Importing
``a.b.c`` runs the packages ``a`` and ``a.b`` first: those are edges too, except the packages the
importing module sits in (Python is already running them; a package that re-exports its modules is
no cycle with them).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "forecache"
LAYERS = ["kernels", "accel", "layouts", "api", "calibrate", "forecache", "eval", "cli"]
"""The layers from the bottom up: a module imports only from its own layer and those below.

``forecache`` is the package root (the public names: the engine's, the tuner's, and `apply` and
the layouts' on first use), which the harness and the CLI use as users do."""
BELOW_REFERENCE = {"kernels", "accel", "layouts", "api", "calibrate"}
"""`forecache.reference` is used by `eval`, the tests and the docs, never by these."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """The forecache modules `name` imports, wherever the statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    explicit = {target for target in found if target in MODULES}
    implicit = {parent for target in explicit for parent in parents(target) if parent not in parents(name)}
    return (explicit | implicit) - {name}


def parents(name: str) -> list[str]:
    """The packages `name` sits in (``a.b.c`` -> ``a``, ``a.b``)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(name: str) -> str:
    """The layer of module `name`: its first part under forecache (the top-level files by role)."""
    parts = name.split(".")
    if len(parts) == 1:
        return "forecache"
    top = parts[1]
    return {"configfile": "api", "_caller": "api", "_atomic": "kernels", "_extras": "kernels"}.get(top, top)


def test_no_import_cycle():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_one_way(name):
    mine = layer(name)
    wrong = []
    for target in sorted(GRAPH[name]):
        theirs = layer(target)
        if theirs == "reference":
            if mine in BELOW_REFERENCE:
                wrong.append(f"{target} (reference is used by eval, the tests and the docs only)")
        elif mine != "reference" and LAYERS.index(theirs) > LAYERS.index(mine):
            wrong.append(f"{target} ({theirs} is above {mine})")
    assert not wrong, f"{name} imports from above it: {wrong}"


def test_the_checker_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "forecache" / "accel"
    source.mkdir(parents=True)
    path = source / "x.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from forecache.accel.session import CacheSession\n"
        "def f():\n    import forecache.api\n    from forecache.eval import metrics\n"
    )
    found = imports_of("forecache.accel.x", path)
    assert {"forecache.accel.session", "forecache.api", "forecache.eval", "forecache.eval.metrics"} <= found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
