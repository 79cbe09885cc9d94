"""Keep the terminal to the harness's own output: third-party logs and warnings go into the report.

cache-dit logs each attach at INFO level to stdout, diffusers and transformers warn about
component types, and peers print calibration data; interleaved with the progress bars and the
table they make both unreadable. `captured` diverts them for the duration of a run: every stream
handler of every logger writes into a buffer instead of the terminal, Python warnings are
recorded, ``print`` goes to the buffer too, and diffusers' and transformers' loading bars are off
(the harness shows its own, one per level). With ``verbose`` nothing is diverted.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Capture", "captured"]


@dataclass
class Capture:
    """What third-party code wrote during a run.

    Attributes:
        buffer: Log records, prints and warnings, in order.

    """

    buffer: io.StringIO = field(default_factory=io.StringIO)

    def lines(self) -> list[str]:
        """Return the captured text, one entry per non-empty line."""
        return [line for line in self.buffer.getvalue().splitlines() if line.strip()]


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    found: dict[int, logging.StreamHandler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:  # not files: FileHandler is a subclass
                found[id(handler)] = handler
    return list(found.values())


def _swap(handler: logging.StreamHandler, stream: Any) -> Any:
    """Point `handler` at `stream`; return the stream it had (also when that one is already closed)."""
    old = handler.stream
    try:
        handler.setStream(stream)
    except ValueError:  # flushing a closed stream (a test harness closed it): replace it anyway
        handler.stream = stream
    return old


def _hide_loading_bars() -> Callable[[], None]:
    """Turn off diffusers' and transformers' loading bars; the returned function turns them back on."""
    restore = []
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "is_progress_bar_enabled", lambda: False)():
            module.disable_progress_bar()
            restore.append(module.enable_progress_bar)

    def back() -> None:
        for enable in restore:
            enable()

    return back


@contextlib.contextmanager
def captured(verbose: bool = False, preload: tuple[str, ...] = ()) -> Iterator[Capture]:
    """Divert third-party logs, warnings and prints into a `Capture` while the block runs.

    Args:
        verbose: Divert nothing (everything reaches the terminal as usual). Default False.
        preload: Modules to import first, so the handlers they install at import are diverted too
            (e.g. ``"cache_dit"``); those that fail to import are skipped.

    Yields:
        The `Capture`; its lines are meant for the report's log.

    """
    capture = Capture()
    if verbose:
        yield capture
        return
    for module in preload:
        with contextlib.suppress(Exception), contextlib.redirect_stdout(capture.buffer):
            __import__(module)
    bars = _hide_loading_bars()
    handlers = _stream_handlers()
    before = [_swap(handler, capture.buffer) for handler in handlers]
    last_resort = logging.lastResort
    logging.lastResort = logging.StreamHandler(capture.buffer)
    logging.lastResort.setLevel(logging.WARNING)
    show = warnings.showwarning

    def record(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        capture.buffer.write(f"warning: {category.__name__}: {message} ({filename}:{lineno})\n")

    warnings.showwarning = record
    try:
        with contextlib.redirect_stdout(capture.buffer):
            yield capture
    finally:
        bars()
        warnings.showwarning = show
        logging.lastResort = last_resort
        for handler, stream in zip(handlers, before, strict=True):
            _swap(handler, sys.stderr if stream is None or getattr(stream, "closed", False) else stream)
