"""Validation helpers that raise errors naming the field, the allowed values and the value given."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_int(owner: str, field: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Raise unless `value` is an int in ``[minimum, maximum]`` (bools are refused).

    Raises:
        TypeError: If `value` is not an int.
        ValueError: If `value` is out of range.

    """
    allowed = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: `{field}` must be {allowed}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{owner}: `{field}` must be {allowed}, got {value!r}")


def check_float(owner: str, field: str, value: Any, low: float, high: float = math.inf) -> None:
    """Raise unless `value` is a finite real number with ``low < value <= high``.

    Raises:
        TypeError: If `value` is not a real number.
        ValueError: If `value` is out of range or not finite.

    """
    allowed = f"a float > {low}" if math.isinf(high) else f"a float in ({low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: `{field}` must be {allowed}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or not (low < value <= high):
        raise ValueError(f"{owner}: `{field}` must be {allowed}, got {value!r}")


def check_choice(owner: str, field: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise unless `value` is one of `choices`.

    Raises:
        ValueError: If `value` is not one of `choices`.

    """
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{owner}: `{field}` must be one of {list(options)}, got {value!r}")


def check_instance(owner: str, field: str, value: Any, types: tuple[type, ...]) -> None:
    """Raise unless `value` is an instance of one of `types`.

    Raises:
        TypeError: If `value` has another type.

    """
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise TypeError(f"{owner}: `{field}` must be a {names}, got {value!r} ({type(value).__name__})")
