"""Flatten module outputs (tensors nested in tuples and lists, with Nones) into tensor leaves and back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["TreeSpec", "flatten", "unflatten"]

# A spec is "T" for a tensor leaf, None for None, or (container type, child specs).
TreeSpec = Any


def flatten(value: Any, where: str = "output") -> tuple[list[torch.Tensor], TreeSpec]:
    """Split `value` into its tensor leaves and a spec that rebuilds it.

    Args:
        value: A tensor, None, or a tuple/list of those (nested).
        where: Name used in the error message.

    Raises:
        TypeError: If `value` holds anything else (such a module cannot be forecast).

    """
    leaves: list[torch.Tensor] = []

    def walk(node: Any) -> TreeSpec:
        if isinstance(node, torch.Tensor):
            leaves.append(node)
            return "T"
        if node is None:
            return None
        if isinstance(node, (tuple, list)):
            return (type(node), tuple(walk(child) for child in node))
        raise TypeError(
            f"{where}: cannot forecast a value of type {type(node).__name__}; expected tensors in tuples"
        )

    return leaves, walk(value)


def unflatten(spec: TreeSpec, leaves: list[torch.Tensor]) -> Any:
    """Rebuild the value `flatten` split, with `leaves` in place of its tensors."""
    it: Iterator[torch.Tensor] = iter(leaves)

    def build(node: TreeSpec) -> Any:
        if node == "T":
            return next(it)
        if node is None:
            return None
        container, children = node
        return container(build(child) for child in children)

    return build(spec)
