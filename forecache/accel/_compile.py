"""Mark Python-side cache decisions as outside any `torch.compile` graph, without importing dynamo early."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

# `torch.compiler.disable` imports torch._dynamo (and with it triton) when the decorator is applied;
# `torch._disable_dynamo` defers that to the first call, so `import forecache` stays light.
_lazy_disable: Callable[[Any], Any] = getattr(torch, "_disable_dynamo", None) or torch.compiler.disable


def compiler_disable(fn: F) -> F:
    """Return `fn` excluded from `torch.compile` tracing (a graph break), resolved at first call."""
    return _lazy_disable(fn)
