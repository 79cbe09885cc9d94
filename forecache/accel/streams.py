"""Read a block's image and text streams from its call and output, and rebuild an output from streams."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from forecache.accel.layout import BlockListLayout

__all__ = ["ArgReader", "StreamIO"]

Streams = list[torch.Tensor | None]


class ArgReader:
    """Reads named arguments of a forward call, whether passed by keyword or by position."""

    def __init__(self, forward: Any) -> None:
        params = list(inspect.signature(forward).parameters)
        self._positions = {name: i for i, name in enumerate(params) if name != "self"}
        if params and params[0] == "self":
            self._positions = {name: i - 1 for name, i in self._positions.items()}

    def get(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Return argument `name`, or None when it was not passed."""
        if name in kwargs:
            return kwargs[name]
        index = self._positions.get(name)
        return args[index] if index is not None and index < len(args) else None


class StreamIO:
    """The streams of one block class as its block list's layout describes them.

    Args:
        layout: The block list's layout (argument names, output positions).
        forward: The block's forward function (its signature locates positional arguments).

    """

    def __init__(self, layout: BlockListLayout, forward: Any) -> None:
        self.layout = layout
        self._args = ArgReader(forward)
        self._hidden = layout.hidden_index if layout.hidden_index is not None else 0
        self._template: tuple[int | None, ...] | None = None
        self._template_length = -1

    def inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Streams:
        """Return the block's input streams ``[hidden, encoder?]``."""
        streams = [self._args.get(self.layout.hidden_arg, args, kwargs)]
        if self.layout.encoder_index is not None:
            streams.append(self._args.get(self.layout.encoder_arg, args, kwargs))
        return streams

    def outputs(self, output: Any) -> Streams:
        """Return the block's output streams ``[hidden, encoder?]`` (a lone tensor is the image stream)."""
        if not isinstance(output, tuple):
            return [output]
        streams = [output[self._hidden]]
        if self.layout.encoder_index is not None:
            streams.append(output[self.layout.encoder_index])
        return streams

    def learn(self, output: Any) -> None:
        """Learn the output's shape (which tuple slot holds which stream) from a computed call, once."""
        length = len(output) if isinstance(output, tuple) else 0
        if length == self._template_length:
            return
        self._template_length = length
        if not isinstance(output, tuple):
            self._template = None
            return
        slots: list[int | None] = [None] * length
        for stream, position in enumerate((self.layout.hidden_index, self.layout.encoder_index)):
            if position is not None and output[position] is not None:
                slots[position] = stream
        self._template = tuple(slots)

    def rebuild(self, streams: Streams) -> Any:
        """Return an output shaped like the learnt one, holding `streams` (what a skipped block passes on)."""
        if self._template is None:
            return streams[0]
        return tuple(None if slot is None else streams[slot] for slot in self._template)
