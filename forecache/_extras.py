"""Optional dependencies, declared in one place, with the install hint in the error.

The core (`forecache.apply` and the engine) needs torch, diffusers and numpy only. The benchmark
harness, its metrics, plots and the reference models' training need the ``eval`` extra.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtraError", "require_extra"]

#: Import names each extra provides (what `require_extra` looks for).
EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("torchmetrics", "sklearn", "PIL", "tqdm"),
    "triton": ("triton",),
    "yaml": ("yaml",),
    "peers": ("cache_dit",),
}


class MissingExtraError(ImportError):
    """An optional dependency of forecache is not installed; the message names the extra."""


def require_extra(extra: str, purpose: str) -> None:
    """Raise `MissingExtraError` naming `extra` unless all its packages can be imported.

    Args:
        extra: A key of `EXTRAS`.
        purpose: What needs it, for the message (e.g. ``"forecache.eval (the benchmark harness)"``).

    Raises:
        MissingExtraError: If a package of the extra is missing (checked without importing it).
        ValueError: If `extra` is not a known extra.

    """
    if extra not in EXTRAS:
        raise ValueError(f"`extra` must be one of {list(EXTRAS)}, got {extra!r}")
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{purpose} needs the '{extra}' extra (missing: {', '.join(missing)}): "
            f"pip install 'forecache[{extra}]'"
        )
