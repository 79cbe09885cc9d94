"""The output folder of a run, written as the run goes so that nothing finished is ever lost.

Layout (every file written atomically: whole or not at all)::

    run.json              the run id, settings, workload, environment; written before anything runs
    rows/NNN-<stem>.json  one finished row (a `MethodResult`), written the moment it finishes
    search/<stem>.json    a matched method's search: every setting tried and the choice per target
    outputs/NNN-<stem>.npz  the row's outputs as uint8 (images or frames; latents as float16)
    log.txt               what third-party code logged, printed or warned during the run
    results.json, report.md, figures   rewritten at the end (also after Ctrl-C or a failure)

A stem is the label's slug and a short hash of the label (`row_stem`). A new run needs a new or
empty folder; every row and search record carries the run id of ``run.json``. Resuming
(``RunFolder(path, resume=True)``) reads back the finished rows of that run only, after checking
that the settings that decide the numbers are the same (config files by content), so a run cut
short (Ctrl-C, a crash, a lost machine) continues where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from forecache._atomic import create_exclusive
from forecache.eval.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from forecache.eval.schema import MethodResult, jsonable

__all__ = ["RESUME_FREE", "RunFolder", "file_digests", "row_stem", "slug"]

RESUME_FREE = frozenset({"out", "resume", "progress", "verbose"})
"""Settings a resumed run may change: they do not change any number."""

#: Settings compared by the content of the files they name (`config_files`), not by their paths.
BY_CONTENT = frozenset({"config_files"})


def slug(label: str) -> str:
    """Return a file-name-safe form of a row label (``taylorseer @3x`` -> ``taylorseer_3x``)."""
    text = re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_")
    return text[:80] or "row"


def row_stem(label: str) -> str:
    """Return the exact file stem of a label: its slug and a short hash of the label itself.

    Slugs are lossy (``taylorseer @3x`` and ``taylorseer_3x`` share one, long labels are cut), so
    the hash keeps two labels from ever naming the same file.
    """
    return f"{slug(label)}-{hashlib.sha1(label.encode('utf-8')).hexdigest()[:8]}"


def file_digests(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Return the SHA-256 of each file's content, in order (config files are compared by content)."""
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def _entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


class RunFolder:
    """A run's output folder, tagged with a run id that every row and search record carries.

    Args:
        path: The folder. A new run needs a new (created) or empty folder; a resumed run the
            folder of the earlier run, which must exist.
        resume: Continue the run in `path` (its ``run.json`` names the run) instead of starting one.

    Raises:
        ValueError: If a new run's folder holds anything, a resumed run's folder does not exist,
            or the folder cannot be created or written (checked by creating a probe file
            exclusively, never through a link), naming the path and the reason.

    """

    def __init__(self, path: str | os.PathLike[str], resume: bool = False) -> None:
        self.path = Path(path)
        self.run_id: str | None = None
        self._created: list[Path] = []
        if resume:
            if not self.path.is_dir():
                raise ValueError(
                    f"`resume` must be the folder of an earlier run, got {str(self.path)!r}: no such folder"
                )
        else:
            if self.path.is_dir() and (entries := _entries(self.path)):
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                raise ValueError(
                    f"`out` must be a new or empty folder, got {str(self.path)!r}, which holds "
                    f"{len(entries)} entries ({shown}); continue the run there with --resume "
                    f"{self.path} (resume=...), or choose another folder"
                )
            self._created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-check-{os.getpid()}-{secrets.token_hex(4)}"
            os.close(create_exclusive(probe))
            probe.unlink()
        except OSError as err:
            name = "resume" if resume else "out"
            raise ValueError(f"`{name}` must be a writable folder, got {str(self.path)!r}: {err}") from err

    def discard(self) -> None:
        """Remove the folders this object created, if still empty (a run that never started)."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                return

    def start(self, header: Mapping[str, Any]) -> None:
        """Write ``run.json`` (a new run id, settings, workload, environment) before anything runs."""
        self.run_id = uuid.uuid4().hex[:12]
        atomic_write_json(self.path / "run.json", jsonable({"run_id": self.run_id, **header}))

    def read_run(self) -> dict[str, Any]:
        """Read ``run.json`` and take its run id.

        Raises:
            ValueError: No ``run.json``, or one that is not the JSON object a run writes (naming
                the file and what is wrong).

        """
        run = self.path / "run.json"
        if not run.is_file():
            raise ValueError(f"`resume`: {str(self.path)!r} holds no run.json (not a forecache bench folder)")
        try:
            doc = json.loads(run.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"`resume`: {str(run)!r} is not a readable run.json: {err}") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("settings", {}), dict):
            got = f"settings={doc.get('settings')!r}" if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"`resume`: {str(run)!r} must hold a JSON object with `settings`, got {got}")
        run_id = doc.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(
                f"`resume`: {str(run)!r} has no `run_id` (a folder written by an older forecache, or "
                f"not by forecache), got run_id={run_id!r}; start a new run instead"
            )
        self.run_id = run_id
        return doc

    def check_resumable(self, settings: Mapping[str, Any], digests: list[str] | None = None) -> None:
        """Refuse to resume a folder whose run used other settings.

        Args:
            settings: The run's settings (as `start` wrote them under ``settings``).
            digests: `file_digests` of the run's config files: they are compared by content.

        Raises:
            ValueError: A missing or malformed ``run.json``, or a differing setting (named, with
                both values).

        """
        doc = self.read_run()
        before = doc.get("settings", {})
        now = jsonable(dict(settings))
        for key in sorted(set(before) | set(now)):
            if key in RESUME_FREE or key in BY_CONTENT:
                continue
            if before.get(key) != now.get(key):
                raise ValueError(
                    f"`resume`: setting `{key}` differs from the run in {str(self.path)!r}: it was "
                    f"{before.get(key)!r}, now {now.get(key)!r} (resume with the same settings)"
                )
        was = doc.get("config_file_sha256", [])
        if (digests or []) != was:
            raise ValueError(
                f"`resume`: the content of `config_files` differs from the run in {str(self.path)!r}: "
                f"it was {before.get('config_files')!r} (SHA-256 {was}), now {now.get('config_files')!r} "
                f"(SHA-256 {digests or []}); resume with the same configs"
            )

    def _own(self, kind: str) -> Iterable[dict[str, Any]]:
        """Yield the JSON documents of `kind` (``rows``, ``search``) this run wrote (not others')."""
        for path in sorted((self.path / kind).glob("*.json")):
            try:
                doc = json.loads(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                continue  # not written by this run: every file of its own is written whole
            if isinstance(doc, dict) and self.run_id is not None and doc.get("run_id") == self.run_id:
                yield doc

    def finished(self) -> dict[str, MethodResult]:
        """Return the rows this run already wrote, by label (a row that failed counts as not finished)."""
        rows: dict[str, MethodResult] = {}
        for doc in self._own("rows"):
            row = MethodResult.from_dict(doc, folder=self.path)
            if row.ok:
                rows[row.label] = row
        return rows

    def searches(self) -> dict[str, dict[str, Any]]:
        """Return the matched methods' searches this run already wrote, by method label."""
        return {doc["label"]: doc for doc in self._own("search")}

    def save_row(self, index: int, row: MethodResult) -> Path:
        """Write the row's outputs (then drop them from memory) and the row itself, with the run id.

        A row of the same label written at another index (an earlier, interrupted try) is removed:
        only a file named exactly ``NNN-<slug>-<hash>.json`` of this label is, never another label's.

        Returns:
            The row's JSON path.

        """
        stem = row_stem(row.label)
        name = f"{index:03d}-{stem}"
        images = row.images
        if images is not None:
            if row.images_file is None or row.folder != self.path:
                self.save_outputs(f"outputs/{name}.npz", images)
                row.images_file = f"outputs/{name}.npz"
            row.folder = self.path
            row.images = None
        same = re.compile(rf"\d{{3}}-{re.escape(stem)}\.json")
        for stale in (self.path / "rows").glob("*.json"):
            if stale.name != f"{name}.json" and same.fullmatch(stale.name):
                stale.unlink()
        doc = {**row.to_dict(), "run_id": self.run_id}
        return atomic_write_json(self.path / "rows" / f"{name}.json", doc)

    def save_outputs(self, relative: str, outputs: np.ndarray) -> Path:
        """Store outputs compactly: images/frames in [0, 1] as uint8, anything else as float16."""
        import io

        if outputs.min(initial=0.0) >= 0.0 and outputs.max(initial=0.0) <= 1.0:
            stored = np.round(outputs * 255.0).astype(np.uint8)
        else:
            stored = outputs.astype(np.float16)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=stored)
        return atomic_write_bytes(self.path / relative, buffer.getvalue())

    def save_search(self, label: str, doc: Mapping[str, Any]) -> Path:
        """Write one matched method's search record (with the run id)."""
        return atomic_write_json(
            self.path / "search" / f"{row_stem(label)}.json",
            jsonable({"label": label, "run_id": self.run_id, **doc}),
        )

    def save_log(self, lines: Iterable[str]) -> Path:
        """Write the captured third-party output."""
        return atomic_write_text(self.path / "log.txt", "".join(f"{line}\n" for line in lines))
