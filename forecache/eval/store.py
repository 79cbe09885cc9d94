"""The output folder of a run, written as the run goes so that nothing finished is ever lost.

Layout (every file written atomically: whole or not at all)::

    run.json              settings, workload, environment; written before the first generation
    rows/NNN-<slug>.json  one finished row (a `MethodResult`), written the moment it finishes
    search/<slug>.json    a matched method's search: every setting tried and the choice per target
    outputs/<slug>.npz    the row's outputs as uint8 (images or frames; latents as float16)
    log.txt               what third-party code logged, printed or warned during the run
    results.json, report.md, figures   rewritten at the end (also after Ctrl-C or a failure)

`RunFolder.resume` reads the finished rows back, after checking that the settings that decide the
numbers are the same, so a run cut short (Ctrl-C, a crash, a lost machine) continues where it was.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from forecache.eval.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from forecache.eval.schema import MethodResult, jsonable

__all__ = ["RESUME_FREE", "RunFolder", "slug"]

RESUME_FREE = frozenset({"out", "resume", "progress", "verbose"})
"""Settings a resumed run may change: they do not change any number."""


def slug(label: str) -> str:
    """Return a file-name-safe form of a row label (``taylorseer @3x`` -> ``taylorseer_3x``)."""
    text = re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_")
    return text[:80] or "row"


class RunFolder:
    """A run's output folder.

    Args:
        path: The folder (created if missing).

    Raises:
        ValueError: If the folder cannot be created or written (checked by writing a probe file),
            naming the path and the reason.

    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-check"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise ValueError(f"`out` must be a writable folder, got {str(self.path)!r}: {err}") from err

    def discard(self) -> None:
        """Remove the folders this object created, if still empty (a run that never started)."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                return

    def start(self, header: Mapping[str, Any]) -> None:
        """Write ``run.json`` (settings, workload, environment) before anything runs."""
        atomic_write_json(self.path / "run.json", jsonable(dict(header)))

    def check_resumable(self, settings: Mapping[str, Any]) -> None:
        """Refuse to resume a folder whose run used other settings.

        Raises:
            ValueError: No ``run.json`` in the folder, or a differing setting (named, with both values).

        """
        run = self.path / "run.json"
        if not run.is_file():
            raise ValueError(f"`resume`: {str(self.path)!r} holds no run.json (not a forecache bench folder)")
        before = json.loads(run.read_text("utf-8")).get("settings", {})
        now = jsonable(dict(settings))
        for key in sorted(set(before) | set(now)):
            if key in RESUME_FREE:
                continue
            if before.get(key) != now.get(key):
                raise ValueError(
                    f"`resume`: setting `{key}` differs from the run in {str(self.path)!r}: it was "
                    f"{before.get(key)!r}, now {now.get(key)!r} (resume with the same settings)"
                )

    def finished(self) -> dict[str, MethodResult]:
        """Return the rows already written, by label (a row that failed counts as not finished)."""
        rows: dict[str, MethodResult] = {}
        for path in sorted((self.path / "rows").glob("*.json")):
            row = MethodResult.from_dict(json.loads(path.read_text("utf-8")), folder=self.path)
            if row.ok:
                rows[row.label] = row
        return rows

    def searches(self) -> dict[str, dict[str, Any]]:
        """Return the matched methods' searches already written, by method label."""
        out = {}
        for path in sorted((self.path / "search").glob("*.json")):
            doc = json.loads(path.read_text("utf-8"))
            out[doc["label"]] = doc
        return out

    def save_row(self, index: int, row: MethodResult) -> Path:
        """Write the row's outputs (then drop them from memory) and the row itself.

        Returns:
            The row's JSON path.

        """
        name = f"{index:03d}-{slug(row.label)}"
        images = row.images
        if images is not None:
            if row.images_file is None or row.folder != self.path:
                self.save_outputs(f"outputs/{name}.npz", images)
                row.images_file = f"outputs/{name}.npz"
            row.folder = self.path
            row.images = None
        for stale in (self.path / "rows").glob(f"*-{slug(row.label)}.json"):
            if stale.name != f"{name}.json":
                stale.unlink()
        return atomic_write_json(self.path / "rows" / f"{name}.json", row.to_dict())

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
        """Write one matched method's search record."""
        return atomic_write_json(
            self.path / "search" / f"{slug(label)}.json", jsonable({"label": label, **doc})
        )

    def save_log(self, lines: Iterable[str]) -> Path:
        """Write the captured third-party output."""
        return atomic_write_text(self.path / "log.txt", "".join(f"{line}\n" for line in lines))
