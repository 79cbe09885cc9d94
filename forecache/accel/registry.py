"""Registries of the three axes (forecasters, policies, targets): names to classes, filled by decorators.

Each axis is open: a class registered under a name is found by `CacheConfig`'s validation, by the
config-file and CLI parsers (``cache:policy=<name>,forecaster=<name>``) and by `forecache.apply`,
with nothing else to edit. The engine never switches on a name or a class: it calls the methods of
the registered class's Protocol. A Protocol's optional members are declared there with their
defaults; a registered class that lacks one gets that default, so the engine reads every member
directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Names to classes for one axis.

    Args:
        axis: The axis name used in error messages (``"forecaster"``, ``"policy"``, ``"target"``).
        protocol: The axis's Protocol, holding the defaults of its optional members. Default None.
        optional: The names of the Protocol's optional members. Default none.

    """

    def __init__(self, axis: str, protocol: type | None = None, optional: tuple[str, ...] = ()) -> None:
        self.axis = axis
        self._classes: dict[str, T] = {}
        self._defaults: dict[str, Any] = {name: getattr(protocol, name) for name in optional}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Return a class decorator registering the class under `name`, optional members filled in.

        Args:
            name: The name users write in configs and on the command line (lower case, no spaces).
            replace: Allow `name` to move to another class. Default False: registering a second
                class under a taken name raises, so two plug-ins cannot silently shadow each other.

        Raises:
            ValueError: If `name` is not a non-empty lower-case identifier-like string, or is taken
                by another class and `replace` is False.

        """
        if not isinstance(name, str) or not name or name != name.strip().lower() or " " in name:
            raise ValueError(f"{self.axis} names must be non-empty lower-case strings, got {name!r}")

        def decorator(cls: T) -> T:
            taken = self._classes.get(name)
            if taken is not None and taken is not cls and not replace:
                raise ValueError(
                    f"{self.axis} {name!r} is already registered to {taken.__qualname__}; "
                    "pass replace=True to move it"
                )
            fields = getattr(cls, "__dataclass_fields__", {})
            for member, default in self._defaults.items():
                if member not in fields and not hasattr(cls, member):
                    setattr(cls, member, default)
            self._classes[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> T:
        """Return the class registered under `name`.

        Raises:
            ValueError: If `name` is unknown; the message lists the known names.

        """
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"`{self.axis}` must be one of {self.names()}, got {name!r}")
        return cls

    def name_of(self, obj: object) -> str:
        """Return the name the class of `obj` (an instance or the class itself) is registered under.

        Raises:
            TypeError: If its class is not registered.

        """
        cls = obj if isinstance(obj, type) else type(obj)
        for name, registered in self._classes.items():
            if registered is cls:
                return name
        raise TypeError(
            f"`{self.axis}` must be an instance of a registered {self.axis} class "
            f"({', '.join(c.__name__ for c in self._classes.values())}), got {obj!r}"
        )

    def check(self, owner: str, field: str, obj: object) -> None:
        """Raise `TypeError` naming `owner.field` unless `obj` is an instance of a registered class."""
        if not isinstance(obj, tuple(self._classes.values())):
            names = " or ".join(c.__name__ for c in self._classes.values())
            raise TypeError(
                f"{owner}: `{field}` must be a registered {self.axis} ({names}), "
                f"got {obj!r} ({type(obj).__name__})"
            )

    def names(self) -> list[str]:
        """Return the registered names, in registration order."""
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._classes  # a list or dict is no name (nor hashable)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._classes.items()))
