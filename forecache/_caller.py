"""Which pipeline is calling a transformer: the nearest one up the call stack that holds it.

Pipelines share transformers (`DiffusionPipeline.from_pipe` hands the second pipeline the first
one's modules), each with its own scheduler, and a server may run them in several threads at
once. The scheduler that places a call in time must be the one of the pipeline making the call:
every diffusers pipeline calls its transformer from its own methods, so the nearest frame up the
stack whose ``self`` is a `DiffusionPipeline` holding the transformer names it. Read-only: no
class is patched and no pipeline is wrapped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import unwrap_module

__all__ = ["calling_pipeline", "calling_scheduler"]


def _holds(pipe: DiffusionPipeline, module: torch.nn.Module, components: tuple[str, ...]) -> bool:
    for name in components:
        held = getattr(pipe, name, None)
        if isinstance(held, torch.nn.Module) and unwrap_module(held) is module:
            return True
    return False


def calling_pipeline(module: torch.nn.Module, components: tuple[str, ...]) -> DiffusionPipeline | None:
    """Return the nearest pipeline up the calling thread's stack that holds `module`, or None.

    Args:
        module: The (unwrapped) transformer being called.
        components: The pipeline attributes that may hold it (``"transformer"``, ``"transformer_2"``).

    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":
            owner = frame.f_locals.get("self")
            if isinstance(owner, DiffusionPipeline) and _holds(owner, module, components):
                return owner
        frame = frame.f_back  # type: ignore[assignment]
    return None


def calling_scheduler(
    default: DiffusionPipeline, module: torch.nn.Module, components: tuple[str, ...]
) -> Callable[[], Any]:
    """Return a function giving the scheduler of the pipeline calling `module` (else `default`'s).

    Args:
        default: The pipeline forecache was applied to; its scheduler serves calls made from
            outside any pipeline (a loop of the user's own around ``pipe.transformer``).
        module: The (unwrapped) transformer.
        components: The pipeline attributes that may hold it.

    """

    def source() -> Any:
        caller = calling_pipeline(module, components)
        return getattr(default if caller is None else caller, "scheduler", None)

    return source
