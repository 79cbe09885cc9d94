"""Every GPU figure of forecache in one command, fitted to a time budget, saved as it goes.

On the device (from the repository root, with the wheel folder carried)::

    bash benchmarks/gpu/run.sh --out "$OUT"            # = python3 -m benchmarks.gpu.run --out "$OUT"

Installs the wheels of ``--wheels`` (diffusers, cache-dit...) into ``--site``, counts the FLOPs of
one step of each model on the meta device, plans the measurements to fit ``--budget-s``
(`benchmarks.gpu.plan`), runs each part in its own worker process (`benchmarks.gpu.worker`;
a crash or a hang loses only the measurement in flight, the rest of the part is retried in a new
process), and rewrites ``gpu-report.json`` and ``gpu-report.md`` (`benchmarks.gpu.report`) after
every measurement; ``gpu-run.log`` gets the workers' output. ``--dry-run`` runs the same code at
tiny size on the CPU (the test suite does, so the script cannot rot while no GPU is lent).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.gpu import plan as planning  # noqa: E402
from benchmarks.gpu import report, worker  # noqa: E402

GRACE_S = 15.0  # past a deadline before the worker is killed
SETUP_SLACK_S = 120.0  # a worker's set-up may take 3x its estimate plus this
ENTRY_SLACK_S = 60.0  # a measurement may take 3x its estimate plus this
MAX_ATTEMPTS = 3
DRY = {  # --dry-run: tiny models on the CPU, everything small
    "size": "tiny", "device": "cpu", "dtype": "float32", "compile_backend": "eager", "wheels": "",
    "flux_steps": [28, 6], "wan_steps": 28, "kernel_sizes_mb": [0.25, 1.0], "budget_s": 900.0,
    "kernel_warmup": 1, "kernel_repeats": 2,
}  # fmt: skip
CPU_COST = planning.CostModel(
    peak_flops=2e9, host_floor_s=0.1, process_s=10.0, build_s_per_gib=0.0, compile_s=15.0,
    compile_method_s=3.0, kernel_entry_s=2.0,
)  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/gpu/run.sh", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu-report.md, gpu-report.json, gpu-run.log")
    p.add_argument("--budget-s", type=float, default=420.0, help="seconds the whole run may take (420)")
    p.add_argument("--wheels", default=".whl", help="folder of wheels to install first ('' for none)")
    p.add_argument("--site", default="/tmp/forecache-site", help="where the wheels are installed")
    p.add_argument("--size", choices=("full", "tiny"), default="full")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend of the compiled parts"
    )
    p.add_argument(
        "--flux-steps", type=int, nargs="+", default=[28, 50], help="first: the step count measured first"
    )
    p.add_argument("--wan-steps", type=int, default=28)
    p.add_argument(
        "--kernel-sizes-mb", type=float, nargs="+", default=[64.0, 1024.0], help="first: acceptance"
    )
    p.add_argument("--kernel-warmup", type=int, default=5)
    p.add_argument("--kernel-repeats", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="timed loops per method at most (trimmed to fit)")
    p.add_argument(
        "--only", nargs="+", default=[], metavar="GLOB", help="keep only entries whose key matches"
    )
    p.add_argument(
        "--isolate", choices=("process", "none"), default="process", help="a worker process per part"
    )
    p.add_argument("--plan-only", action="store_true", help="write the plan as a report and measure nothing")
    p.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: " + json.dumps(DRY))
    args = p.parse_args(argv)
    if args.dry_run:
        given = {
            a.split("=")[0].lstrip("-").replace("-", "_")
            for a in (argv or sys.argv[1:])
            if a.startswith("--")
        }
        for key, value in DRY.items():
            if key not in given:
                setattr(args, key, value)
    return args


def install_wheels(folder: str, site: str) -> dict[str, Any]:
    """pip-install the wheels of `folder` into `site` (no index, no deps); put `site` first on the path."""
    wheels = sorted(str(w) for w in Path(folder).glob("*.whl")) if folder else []
    info: dict[str, Any] = {"folder": folder, "site": site, "wheels": [Path(w).name for w in wheels]}
    if not wheels:
        info["note"] = "no wheels installed"
        return info
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    cmd += ["--no-cache-dir", "--upgrade", "--target", site, *wheels]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        info["error"] = f"pip exited {done.returncode}: {done.stderr[-2000:]}"
        return info
    sys.path.insert(0, site)
    importlib.invalidate_caches()
    return info


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def environment(device: str) -> dict[str, Any]:
    """Device, versions and provenance for the report."""
    import torch

    env: dict[str, Any] = {"host": platform.node(), "platform": platform.platform()}
    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("triton", "diffusers", "cache-dit", "transformers"):
        versions[name] = _version(name)
    versions["forecache"] = importlib.import_module("forecache").__version__
    env["versions"] = versions
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        env["device"] = (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        )
        try:
            smi = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
            env["nvidia_smi"] = subprocess.run(smi, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            env["nvidia_smi"] = f"unavailable: {err}"
    else:
        env["device"] = f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"
    try:
        rev = ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
        env["commit"] = (
            subprocess.run(rev, capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        env["commit"] = "unknown (no git)"
    return env


def count_step(arch_name: str, size: str, dims: tuple[int, int, int], dtype: str) -> tuple[float, float]:
    """FLOPs of one transformer call and GiB of weights, on the meta device (allocates nothing)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from forecache.eval.arch import load_arch
    from forecache.eval.workload import DTYPES

    arch, meta, torch_dtype = load_arch(arch_name), torch.device("meta"), DTYPES[dtype]
    model = arch.build(size, meta, torch_dtype)
    inputs = arch.make_inputs(
        arch.model_config(size), size, *dims, device=meta, dtype=torch_dtype, generator=torch.Generator()
    )
    timestep = torch.ones(1, device=meta, dtype=torch_dtype if arch.inputs != "dit" else torch.float32)
    with torch.no_grad(), FlopCounterMode(display=False) as mode:
        model(hidden_states=inputs.latents, timestep=timestep, **inputs.kwargs, return_dict=False)
    gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    return float(mode.get_total_flops()), gib


class Run:
    """The report document, kept up to date and rewritten as the parts run."""

    def __init__(
        self, args: argparse.Namespace, plan: planning.Plan, env: dict[str, Any], command: str, t0: float
    ) -> None:
        self.args, self.plan, self.out, self.t0 = args, plan, Path(args.out), t0
        self.log = self.out / "gpu-run.log"
        self.doc: dict[str, Any] = {
            "schema_version": report.SCHEMA_VERSION,
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "environment": env,
            "settings": {k: v for k, v in vars(args).items() if k not in ("out", "plan_only", "dry_run")},
            "plan": {
                "budget_s": plan.budget_s,
                "estimated_s": plan.total_s,
                "repeats": plan.repeats,
                "notes": plan.notes,
                "parts": [{**dataclasses.asdict(p), "setup_s": plan.setup_s[p.name]} for p in plan.parts],
                "dropped": [
                    {"key": e.key, "priority": e.priority, "est_s": e.est_s, "reason": plan.reasons[e.key]}
                    for e in plan.dropped
                ],
            },
            "parts": {p.name: {"status": "pending", "attempts": 0} for p in plan.parts},
            "rows": [{**dataclasses.asdict(e), "status": "pending", "error": None} for e in plan.entries],
            "acceptance": [],
            "elapsed_s": 0.0,
            "complete": False,
            "notes": [
                "Random weights: speed, compute and memory do not depend on the weights; no quality figure.",
                "compute: forecache.stats executions (presets) or transformer FLOPs (peers); "
                "FLOPs: linear-layer "
                "FLOPs of the baseline over the method's; speedup: baseline loop over the method's "
                "loop at the same steps, each the median of the timed loops (CUDA-synchronised).",
            ],
        }
        self.index = {r["key"]: r for r in self.doc["rows"]}

    def write(self) -> None:
        from forecache.eval.files import atomic_write_json, atomic_write_text

        a = self.args
        self.doc["acceptance"] = report.acceptance(self.doc["rows"], a.kernel_sizes_mb[0])
        self.doc["elapsed_s"] = time.time() - self.t0
        atomic_write_json(self.out / "gpu-report.json", self.doc)
        try:
            text = report.render_markdown(self.doc)
        except Exception as err:  # a rendering bug must not stop the measurements: the JSON has them
            text = f"# forecache GPU figures\n\nrendering failed ({type(err).__name__}: {err}); "
            text += "see gpu-report.json\n"
        atomic_write_text(self.out / "gpu-report.md", text)

    def say(self, text: str) -> None:
        line = f"[{time.time() - self.t0:6.1f}s] {text}"
        print(line, flush=True)
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def scale(self) -> float:
        ratios = [
            r["elapsed_s"] / r["est_s"] for r in self.doc["rows"] if r["status"] == "ok" and r["est_s"] > 0
        ]
        low, high = worker.SCALE_LIMITS
        return min(high, max(low, statistics.median(ratios))) if ratios else 1.0

    def apply(self, part: str, event: dict[str, Any], running: dict[str, float]) -> None:
        kind, state = event["event"], self.doc["parts"][part]
        if kind == "ready":
            state.update(status="running", setup_s=event["setup_s"], info=event["info"])
        elif kind == "setup_error":
            state["error"] = event["error"]
        elif kind == "start":
            self.index[event["key"]]["status"] = "running"
            running.clear()
            running[event["key"]] = event["time"]
        elif kind == "row":
            row = self.index[event["key"]]
            row.update({k: v for k, v in event.items() if k not in ("event", "key")})
            running.pop(event["key"], None)
            self.say(f"{event['key']}: {event['status']} {row.get('error') or ''}".rstrip())
        elif kind == "done":
            state["status"] = "done"

    def run_part(self, part: planning.Part) -> None:
        state = self.doc["parts"][part.name]
        while True:
            todo = [r for r in self.doc["rows"] if r["part"] == part.name and r["status"] == "pending"]
            left = self.args.budget_s - (time.time() - self.t0)
            if not todo or state["attempts"] >= MAX_ATTEMPTS or left < self.plan.setup_s[part.name]:
                break
            state["attempts"] += 1
            self.say(
                f"part {part.name}: attempt {state['attempts']}, {len(todo)} measurements, {left:.0f} s left"
            )
            self._launch(part, todo)
        for r in self.doc["rows"]:
            if r["part"] == part.name and r["status"] in ("pending", "running"):
                r["status"] = "not-run"
                r["error"] = (
                    state.get("error") or "no time left in the budget, or the part's worker kept failing"
                )
        self.write()

    def _launch(self, part: planning.Part, todo: list[dict[str, Any]]) -> None:
        work = Path(tempfile.mkdtemp(prefix="forecache-gpu-"))
        spec = {
            "part": dataclasses.asdict(part),
            "entries": todo,
            "t0": self.t0,
            "budget_s": self.args.budget_s,
            "scale": self.scale(),
            "device": self.args.device,
            "dtype": self.args.dtype,
            "size": self.args.size,
            "kernel_warmup": self.args.kernel_warmup,
            "kernel_repeats": self.args.kernel_repeats,
            "events": str(work / "events.jsonl"),
        }
        (work / "spec.json").write_text(json.dumps(spec, default=str), encoding="utf-8")
        running: dict[str, float] = {}
        if self.args.isolate == "none":
            worker.run_part(spec)
            for event in _read_events(Path(spec["events"]), 0)[0]:
                self.apply(part.name, event, running)
            self.write()
            return
        self._watch(part, spec, work, running)

    def _watch(
        self, part: planning.Part, spec: dict[str, Any], work: Path, running: dict[str, float]
    ) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        paths = [self.args.site] if self.doc["environment"]["wheels"]["wheels"] else []
        paths += [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        cmd = [sys.executable, "-u", "-m", "benchmarks.gpu.worker", str(work / "spec.json")]
        with self.log.open("a", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        launched, offset, why = time.time(), 0, None
        est = {e["key"]: e for e in spec["entries"]}
        setup_limit = self.plan.setup_s[part.name] * 3 + SETUP_SLACK_S
        while why is None:
            rc = proc.poll()
            events, offset = _read_events(Path(spec["events"]), offset)
            for event in events:
                self.apply(part.name, event, running)
            if events:
                self.write()
            if rc is not None:
                break
            now, scale = time.time(), self.scale()
            if now > self.t0 + self.args.budget_s + GRACE_S:
                why = "the run's budget is spent"
            elif (
                not running
                and self.doc["parts"][part.name]["status"] == "pending"
                and now > launched + setup_limit
            ):
                why = f"set-up took over {setup_limit:.0f} s"
            for key, began in running.items():
                e = est[key]
                deadline = self.t0 + self.args.budget_s - e["reserve_s"] * scale
                limit = min(began + 3 * e["est_s"] * scale + ENTRY_SLACK_S, deadline)
                if now > limit + GRACE_S:
                    why = f"over its time limit ({now - began:.0f} s, estimate {e['est_s']:.0f} s)"
            time.sleep(0.5)
        if why is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.say(f"part {part.name}: worker killed: {why}")
        for key in list(running):
            row = self.index[key]
            row["status"] = "error"
            row["error"] = f"worker killed: {why}" if why else f"worker exited with code {proc.returncode}"
        self.write()


def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines of `path` after byte `offset`, and the new offset."""
    if not path.exists():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    return [json.loads(line) for line in data[:end].splitlines() if line.strip()], offset + end


def build_plan(args: argparse.Namespace, t0: float) -> planning.Plan:
    """Count each model's step FLOPs at its candidate sizes, then plan the entries to fit what is
    left of the budget (``--budget-s`` from `t0`, the counting included)."""
    flops: dict[tuple[str, tuple[int, int, int]], float] = {}
    gib: dict[str, float] = {}
    for arch, candidates in planning.part_dims(args.size).items():
        for dims in candidates:
            flops[(arch, dims)], gib[arch] = count_step(arch, args.size, dims, args.dtype)
    parts = planning.default_parts(args.size, args.compile_backend, flops, gib)
    entries = planning.default_entries(args.flux_steps, args.wan_steps, args.kernel_sizes_mb)
    cost = CPU_COST if args.device == "cpu" else planning.CostModel()
    repeats = tuple(range(args.repeats, 0, -1))
    budget_s = max(1.0, args.budget_s - (time.time() - t0))
    return planning.make_plan(entries, parts, budget_s, cost, repeats, args.only)


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()  # the budget counts from here: wheels, imports and planning included
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wheels = install_wheels(args.wheels, args.site)
    if args.dtype == "bfloat16" and args.device == "cpu" and not args.dry_run:
        print("note: bfloat16 on the CPU is slow; --dtype float32 is the usual CPU choice", file=sys.stderr)
    import torch

    if args.device.startswith("cuda") and not args.plan_only and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU (use --dry-run on a CPU machine)", file=sys.stderr)
        return 2
    entry = (
        "bash benchmarks/gpu/run.sh"
        if os.environ.get("FORECACHE_GPU_ENTRY") == "run.sh"
        else ("python -m benchmarks.gpu.run")
    )
    command = " ".join([entry, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    env = {**environment(args.device), "wheels": wheels}
    plan = build_plan(args, t0)
    run = Run(args, plan, env, command, t0)
    run.say(
        f"plan: {len(plan.entries)} measurements in {len(plan.parts)} parts, ~{plan.total_s:.0f} s of the "
        f"{plan.budget_s:.0f} s left of {args.budget_s:.0f} s; {len(plan.dropped)} left out; "
        f"repeats {plan.repeats}"
    )
    for e in plan.entries:
        steps = "" if e.computed is None else f", {e.computed} of {e.steps} steps computed"
        run.say(f"  {e.key}: ~{e.est_s:.0f} s (priority {e.priority}{steps})")
    run.write()
    if not args.plan_only:
        for part in plan.parts:
            run.run_part(part)
    run.doc["complete"] = True
    run.write()
    tally: dict[str, int] = {}
    for check in run.doc["acceptance"]:
        tally[check["status"]] = tally.get(check["status"], 0) + 1
    run.say(f"done: {out / 'gpu-report.md'}; acceptance {tally}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
