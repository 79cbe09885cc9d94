"""No private name of torch, diffusers or cache-dit outside the two modules that hold them all.

`forecache/accel/_private.py` (the engine) and `forecache/eval/_private.py` (the harness) each
name what they read and the versions it was checked on, and are tested per version
(`tests/accel/test_private.py`, `tests/eval/test_private.py`). Docstrings and comments may mention
a private name; code may not.
"""

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "forecache"
HOLDERS = {"accel/_private.py", "eval/_private.py"}

PRIVATE = re.compile(
    r"""
    \btorch\._[A-Za-z]                              # torch._dynamo, torch._C, torch._disable_dynamo ...
    | \bdiffusers(\.\w+)*\._[A-Za-z]                # diffusers.hooks._common, ._helpers ...
    | \b(StateManager|BaseState)\b                  # diffusers.hooks.hooks, not exported
    | \b_is_stateful\b | \b_is_patched\b | \b_current_context\b | \b_compiled_call_impl\b
    | \b_reset_stateful_cache\b | \b_keep_in_fp32_modules\b | \b_fn_refs\b
    | \.original_forward\s*=(?!=)                   # replacing the forward a diffusers hook wraps
    | \b[A-Z]\w*(Pipeline|Model|Mixin)\w*\._[A-Za-z]   # a class's private helper (FluxPipeline._pack_latents)
    | \b__dict__\b | \._modules\b | \._forward_(pre_)?hooks\b | \._parameters\b | \._buffers\b
    | (getattr|hasattr|setattr|delattr)\([^)]*["']_(?!forecache)\w+["']   # another object's private attribute
    """,
    re.VERBOSE,
)


def _code_lines(path: Path) -> dict[int, str]:
    """Each line's code without comments and docstrings."""
    source = path.read_text("utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE) or token.start[0] in docstrings:
            continue
        lines[token.start[0]] = lines.get(token.start[0], "") + " " + token.string
    return lines


def test_private_names_live_only_in_the_private_modules():
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(PACKAGE)) not in HOLDERS
        for number, line in _code_lines(path).items()
        if PRIVATE.search(line.replace(" . ", ".").replace(" .", ".").replace(". ", "."))
    ]
    assert not found, "\n".join(found)


def test_the_pattern_finds_what_it_is_for():
    for code in (
        "from torch._dynamo import config",
        "from diffusers.hooks._common import X",
        "from diffusers.hooks.hooks import BaseState, StateManager",
        "class Hook: _is_stateful = True",
        "hook.fn_ref.original_forward = wrapped",
        "module.__dict__['forward']",
        "module._modules.clear()",
        "getattr(model, '_reset_stateful_cache', None)",
    ):
        assert PRIVATE.search(code), code
    for code in (
        "self.fn_ref.original_forward(*args)",
        "getattr(module, '_forecache_session', None)",
        "torch.__version__",
    ):
        assert not PRIVATE.search(code), code
