"""Run one part of the GPU plan (one model build, or the kernel benchmark) and stream its events.

    python -m benchmarks.gpu.worker SPEC.json

SPEC holds the part, its entries and the clock (see `run_part`). Events are appended to
``SPEC["events"]`` as JSON lines, each flushed as it happens, so the parent (and the report) keep
every finished measurement even if this process is killed or crashes later:

- ``{"event": "ready", "setup_s": s, "info": {...}}`` once the model is built;
- ``{"event": "start", "key": k, "time": t}`` before each entry;
- ``{"event": "row", "key": k, "status": "ok"|"error"|"skipped", ...}`` after each entry;
- ``{"event": "done"}`` at the end.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["run_part", "skip_reason", "update_scale"]

SCALE_LIMITS = (0.25, 4.0)


def skip_reason(entry: dict, elapsed: float, budget: float, scale: float) -> str | None:
    """Why an entry must be skipped now, or None: it would end after ``budget - reserve``.

    Args:
        entry: The entry (``est_s``, ``reserve_s``).
        elapsed: Seconds since the run started.
        budget: The run's budget in seconds.
        scale: Measured over estimated seconds so far (1.0: estimates hold).

    """
    est, reserve = entry["est_s"] * scale, entry["reserve_s"] * scale
    if elapsed + est <= budget - reserve:
        return None
    return (
        f"budget: needs ~{est:.0f} s, {max(0.0, budget - elapsed):.0f} s left of which {reserve:.0f} s "
        "are kept for better-priority measurements later"
    )


def update_scale(scale: float, est: float, elapsed: float) -> float:
    """Blend a new measured/estimated ratio into `scale`, clamped to `SCALE_LIMITS`."""
    if est <= 0 or elapsed <= 0:
        return scale
    low, high = SCALE_LIMITS
    return min(high, max(low, 0.5 * scale + 0.5 * elapsed / est))


class _Events:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def write(self, **event: Any) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()


def _kernel_entry(entry: dict, spec: dict) -> dict:
    from benchmarks import kernel_bandwidth

    argv = ["--device", spec["device"], "--sizes-mb", f"{entry['size_mb']}", "--dtype", entry["dtype"]]
    argv += [
        "--k",
        "1",
        "3",
        "5",
        "--warmup",
        str(spec["kernel_warmup"]),
        "--repeats",
        str(spec["kernel_repeats"]),
    ]
    return {"rows": kernel_bandwidth.main(argv)}


def _profile_session(part: dict, entries: list[dict], spec: dict) -> Any:
    from forecache.eval.profile import ProfileConfig, ProfileSession

    height, width, frames = part["dims"][0]
    config = ProfileConfig(
        arch=part["arch"],
        size=spec["size"],
        height=height,
        width=width,
        frames=frames,
        steps=max(max(e["steps"] for e in entries), 2),
        device=spec["device"],
        dtype=spec["dtype"],
        methods=(),
        compile=part["compile"],
    )
    return ProfileSession(config)


def _profile_entry(session: Any, entry: dict) -> tuple[dict, str | None]:
    from benchmarks.gpu.methods import resolve

    spec = resolve(entry["method"], entry["steps"])
    row = session.measure(spec, steps=entry["steps"], warmup=entry["warmup"], repeats=entry["repeats"])
    return dataclasses.asdict(row), row.error


def run_part(spec: dict) -> None:
    """Run the entries of one part in order, appending events to ``spec["events"]``.

    Args:
        spec: ``part`` (a `plan.Part` as a dict), ``entries`` (`plan.Entry` dicts, in order),
            ``t0`` (epoch seconds at which the run started), ``budget_s``, ``scale`` (measured over
            estimated so far), ``device``, ``dtype``, ``size``, ``kernel_warmup``,
            ``kernel_repeats`` and ``events`` (path of the JSON-lines file).

    """
    events = _Events(spec["events"])
    part, entries, scale = spec["part"], spec["entries"], float(spec["scale"])
    start = time.time()
    session = None
    try:
        if part["kind"] == "profile":
            session = _profile_session(part, entries, spec)
            info = {k: v for k, v in session.result.to_dict().items() if k != "rows"}
        else:
            import benchmarks.kernel_bandwidth  # noqa: F401  (torch and the kernels: the part's set-up)

            info = {"device": spec["device"]}
    except Exception as err:  # the part cannot start: every entry gets the error
        message = f"setup failed: {type(err).__name__}: {err}"
        events.write(event="setup_error", error=message, traceback=traceback.format_exc())
        for entry in entries:
            events.write(event="row", key=entry["key"], status="error", error=message)
        events.write(event="done")
        return
    events.write(event="ready", setup_s=time.time() - start, info=info)
    for entry in entries:
        reason = skip_reason(entry, time.time() - spec["t0"], spec["budget_s"], scale)
        if reason is not None:
            events.write(event="row", key=entry["key"], status="skipped", error=reason)
            continue
        began = time.time()
        events.write(event="start", key=entry["key"], time=began)
        try:
            if session is not None:
                result, error = _profile_entry(session, entry)
            else:
                result, error = _kernel_entry(entry, spec), None
        except Exception as err:
            result, error = {}, f"{type(err).__name__}: {err}"
        elapsed = time.time() - began
        status = "ok" if error is None else "error"
        events.write(
            event="row", key=entry["key"], status=status, error=error, elapsed_s=elapsed, result=result
        )
        if error is None:
            scale = update_scale(scale, entry["est_s"], elapsed)
    events.write(event="done")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.gpu.worker SPEC.json", file=sys.stderr)
        return 2
    run_part(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
