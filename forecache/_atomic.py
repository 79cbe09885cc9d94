"""Atomic file writes: a file is written whole or not at all, so an interrupted run leaves no half-file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "create_exclusive", "sync_folder"]

#: Create a new file only: fail if the name exists, and never through a symbolic link.
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def create_exclusive(path: str | os.PathLike[str]) -> int:
    """Create `path` as a new file and return its descriptor (mode ``0o666`` less the user's umask).

    Raises:
        FileExistsError: If anything is at `path` already, a symbolic link included (not followed).

    """
    return os.open(path, _EXCLUSIVE, 0o666)


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries to disk (a rename in it survives a power loss); a no-op where unsupported."""
    directory = getattr(os, "O_DIRECTORY", None)
    if directory is None:  # Windows: folders cannot be opened, NTFS journals the rename
        return
    fd = os.open(folder, os.O_RDONLY | directory)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` through a new temporary file in the same folder and `os.replace`.

    The temporary file is created exclusively (never through a link), at the user's umask like
    any file the user creates, flushed and fsynced before the rename, and removed if anything
    fails; the folder is synced after the rename. So `path` either keeps its previous content (or
    stays absent) or holds all of `data`, also after a crash.

    Args:
        path: Destination file; its folder is created if missing.
        data: The full content.

    Returns:
        The destination path.

    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = create_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` atomically (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
