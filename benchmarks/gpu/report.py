"""The GPU report: acceptance checks (issues 16 and 23) and the Markdown rendering of ``gpu-report.json``.

The JSON document (`SCHEMA_KEYS`) holds the environment, the plan, one row per planned
measurement (status ``pending``, ``ok``, ``error``, ``skipped`` or ``not-run``) and the acceptance
checks; the Markdown is rendered from it alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SCHEMA_KEYS", "SCHEMA_VERSION", "acceptance", "render_markdown"]

SCHEMA_VERSION = 1
SCHEMA_KEYS = (
    "schema_version",
    "command",
    "date",
    "environment",
    "settings",
    "plan",
    "parts",
    "rows",
    "acceptance",
    "elapsed_s",
    "complete",
)
# Issue 16's thresholds, which issue 23 extends to every ratio measured (2-10x).
SPEEDUP_OVER_COMPUTE = {"blocks": 0.95, "modules": 0.85}
BLOCKS_CACHE_OF_WEIGHTS = 0.02
KERNEL_OF_COPY = 0.85
KERNEL_VS_EAGER = 2.0
KERNEL_VS_EAGER_MIN_K = 3
_MiB, _GiB = 2**20, 2**30


def _target(method: str, steps: int) -> str | None:
    from benchmarks.gpu.methods import resolve

    spec = resolve(method, steps)
    return spec.config.target if spec.kind == "forecache" and spec.config else None


def _computed(row: dict) -> str:
    """``"5/28"``: the steps the row's schedule computes (the plan's `computed`); ``"-"`` for a
    peer, ``"run time"`` for a method whose features decide (a gate)."""
    if row.get("computed") is not None:
        return f"{row['computed']}/{row['steps']}"
    return "-" if "." in row["method"].partition(":")[0] else "run time"


def _computed_text(row: dict) -> str:
    """``"5 of 28 steps computed"``, or ``"steps decided at run time"``."""
    if row.get("computed") is None:
        return "steps decided at run time"
    return f"{row['computed']} of {row['steps']} steps computed"


def _check(
    name: str, subject: str, value: float | None, threshold: float | None, passed: bool | None, text: str
):
    status = "MISSING" if passed is None else ("PASS" if passed else "FAIL")
    return {
        "check": name,
        "subject": subject,
        "value": value,
        "threshold": threshold,
        "status": status,
        "text": text,
    }


def _profile_checks(rows: list[dict]) -> list[dict]:
    checks = []
    for r in (r for r in rows if r.get("method")):
        steps, res = r["steps"], r.get("result") or {}
        target, where = _target(r["method"], steps), f"{r['part']}/{steps} {r['method']}"
        ok = r["status"] == "ok"
        if target in SPEEDUP_OVER_COMPUTE:
            factor = SPEEDUP_OVER_COMPUTE[target]
            speed, ratio, flops = res.get("speedup"), res.get("compute_ratio"), res.get("flops_ratio")
            value, text = None, f"no measurement ({r['status']}{': ' + r['error'] if r.get('error') else ''})"
            if ok and speed and ratio:
                value = speed / ratio
                text = (
                    f"speedup {speed:.2f}x vs {factor} x compute {ratio:.2f}x = {factor * ratio:.2f}x "
                    f"(FLOPs {_fmt(flops, '.2f', suffix='x')}, {_computed_text(r)})"
                )
            passed = None if value is None else value >= factor
            checks.append(
                _check(f"speedup >= {factor} x compute ({target})", where, value, factor, passed, text)
            )
        if target == "blocks":
            fraction = res.get("cache_fraction") if ok else None
            text = "no measurement" if fraction is None else f"cache {fraction:.3%} of the weights' bytes"
            passed = None if fraction is None else fraction < BLOCKS_CACHE_OF_WEIGHTS
            checks.append(_check("blocks cache < 2% of weights", where, fraction, 0.02, passed, text))
        if r["part"].endswith("/compile"):
            recompiles = res.get("recompiles") if ok else None
            text = (
                "no measurement" if recompiles is None else f"{recompiles} graphs compiled in the timed loops"
            )
            passed = None if recompiles is None else recompiles == 0
            checks.append(_check("0 recompiles per step", where, recompiles, 0, passed, text))
    return checks


def _kernel_checks(rows: list[dict], size_mb: float) -> list[dict]:
    checks = []
    for r in rows:
        if r["part"] != "kernels" or r.get("size_mb") != size_mb:
            continue
        results = (r.get("result") or {}).get("rows", []) if r["status"] == "ok" else []
        triton = [k for k in results if k["backend"] == "triton"]
        where = f"kernels {r['dtype']} {size_mb:g} MB"
        if not triton:
            why = "no Triton timing (CPU run or Triton missing)" if r["status"] == "ok" else r["status"]
            checks.append(_check("kernels >= 85% of copy bandwidth", where, None, KERNEL_OF_COPY, None, why))
            continue
        for k in triton:
            subject = f"{where} {k['kernel']} K={k['k']}"
            frac = k["fraction_of_copy"]
            text = f"{k['gb_per_s']:.0f} GB/s = {frac:.0%} of copy {k['copy_gb_per_s']:.0f} GB/s"
            checks.append(
                _check(
                    "kernel >= 85% of copy bandwidth",
                    subject,
                    frac,
                    KERNEL_OF_COPY,
                    frac >= KERNEL_OF_COPY,
                    text,
                )
            )
            if k["k"] >= KERNEL_VS_EAGER_MIN_K:
                speed = k["speedup_vs_torch"]
                text = f"{speed:.2f}x the eager torch path"
                checks.append(
                    _check(
                        "kernel >= 2x eager (K >= 3)",
                        subject,
                        speed,
                        KERNEL_VS_EAGER,
                        speed >= KERNEL_VS_EAGER,
                        text,
                    )
                )
    return checks


def acceptance(rows: list[dict], kernel_size_mb: float) -> list[dict]:
    """The acceptance checks of issues 16 and 23 over the planned rows (MISSING where not measured).

    Every profile row of a forecache method on ``blocks`` or ``modules`` (every model, step count
    and ratio): loop speedup over compute ratio against `SPEEDUP_OVER_COMPUTE`; on ``blocks``,
    the cache against `BLOCKS_CACHE_OF_WEIGHTS`; every compiled row: 0 graphs compiled in the
    timed loops. The kernels at `kernel_size_mb`: each against `KERNEL_OF_COPY` (and
    `KERNEL_VS_EAGER` for K >= `KERNEL_VS_EAGER_MIN_K`).
    """
    return _profile_checks(rows) + _kernel_checks(rows, kernel_size_mb)


def _fmt(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    return "n/a" if value is None else format(value * scale if scale != 1.0 else value, spec) + suffix


def _table(header: list[str], lines: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def _profile_section(doc: dict, part: str, steps: int, rows: list[dict]) -> list[str]:
    info = (doc["parts"].get(part) or {}).get("info") or {}
    cfg = info.get("config", {})
    where = f"{cfg.get('height', '?')}x{cfg.get('width', '?')}"
    if len(info.get("shapes", {}).get("latents", [])) == 5:
        where += f"x{cfg.get('frames')} frames"
    weights = info.get("weight_bytes")
    head = (
        f"### {part}, {steps} steps ({info.get('model_class', '?')}, {where}, "
        f"{_fmt(weights, '.2f', 1 / _GiB, ' GiB')} of weights, {cfg.get('dtype', '?')}, "
        f"median of {rows[0].get('repeats', '?')} timed loops)"
    )
    header = ["method", "computed", "status", "loop s", "speedup", "compute", "FLOPs", "speedup/compute"]
    header += ["peak GiB"]
    header += ["cache MiB", "cache/weights", "syncs/step", "reads/step", "recompiles", "warm-up s"]
    lines = []
    for r in rows:
        res = r.get("result") or {}
        if r["status"] != "ok":
            lines.append([r["method"], _computed(r), r["status"], *([""] * (len(header) - 3))])
            continue
        speed, ratio = res.get("speedup"), res.get("compute_ratio")
        lines.append(
            [
                r["method"],
                _computed(r),
                "ok",
                _fmt(res.get("loop_s"), ".3f"),
                _fmt(speed, ".2f", suffix="x"),
                _fmt(ratio, ".2f", suffix="x"),
                _fmt(res.get("flops_ratio"), ".2f", suffix="x"),
                _fmt(speed / ratio if speed and ratio else None, ".2f"),
                _fmt(res.get("peak_bytes"), ".2f", 1 / _GiB),
                _fmt(res.get("cache_bytes"), ".1f", 1 / _MiB),
                _fmt(res.get("cache_fraction"), ".3f", 100, "%"),
                _fmt(res.get("syncs_per_step"), ".2f"),
                _fmt(res.get("host_reads_per_step"), ".2f"),
                _fmt(res.get("recompiles"), "d"),
                _fmt(res.get("warmup_s"), ".1f"),
            ]
        )
    return ["", head, "", *_table(header, lines)]


def _kernel_section(rows: list[dict]) -> list[str]:
    header = [
        "kernel",
        "dtype",
        "MB/tensor",
        "K",
        "backend",
        "ms",
        "GB/s",
        "copy GB/s",
        "of copy",
        "vs eager",
    ]
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append(["(all)", r.get("dtype") or "", f"{r.get('size_mb'):g}", "", r["status"], *[""] * 5])
            continue
        for k in r["result"]["rows"]:
            lines.append(
                [
                    k["kernel"],
                    k["dtype"],
                    f"{k['size_mb']:g}",
                    str(k["k"]),
                    k["backend"],
                    f"{k['time_ms']:.4f}",
                    f"{k['gb_per_s']:.1f}",
                    f"{k['copy_gb_per_s']:.1f}",
                    f"{k['fraction_of_copy']:.0%}",
                    f"{k['speedup_vs_torch']:.2f}x",
                ]
            )
    return ["", "### Kernels (benchmarks/kernel_bandwidth.py)", "", *_table(header, lines)]


def render_markdown(doc: dict) -> str:
    """Render the report document as Markdown."""
    env, settings, plan = doc["environment"], doc["settings"], doc["plan"]
    rows = doc["rows"]
    counts = {
        s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "skipped", "not-run", "pending")
    }
    lines = [
        "# forecache GPU figures",
        "",
        f"- device: {env.get('device')}",
        f"- date: {doc['date']}; elapsed {doc['elapsed_s']:.0f} s of a {settings['budget_s']:.0f} s budget "
        f"(plan estimated {plan['estimated_s']:.0f} s)",
        f"- command: `{doc['command']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        f"- settings: {settings['size']} size, {settings['dtype']}, device {settings['device']}, "
        f"compile backend {settings['compile_backend']}, timed repeats {plan['repeats']}",
        f"- measurements: {len(rows)} planned; "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        + ("" if doc["complete"] else " (run incomplete: this report was written while it ran)"),
        "",
        "## Acceptance (issues 16 and 23)",
        "",
    ]
    checks = doc["acceptance"]
    lines += [f"- {c['status']} {c['check']}: {c['subject']}: {c['text']}" for c in checks]
    tally = {s: sum(c["status"] == s for c in checks) for s in ("PASS", "FAIL", "MISSING")}
    lines += ["", "acceptance: " + ", ".join(f"{v} {k}" for k, v in tally.items())]
    lines += ["", "## Parts", ""]
    header = ["part", "dims", "measurements", "planned s", "measured s", "status"]
    part_lines = []
    for part in plan["parts"]:
        mine = [r for r in rows if r["part"] == part["name"]]
        state = doc["parts"].get(part["name"], {})
        measured = sum(r.get("elapsed_s") or 0.0 for r in mine) + (state.get("setup_s") or 0.0)
        dims = "x".join(map(str, part["dims"][0])) if part.get("dims") else "-"
        planned = part["setup_s"] + sum(r["est_s"] for r in mine)
        status = f"{state.get('status', '?')}, {state.get('attempts', 0)} worker(s)"
        part_lines.append([part["name"], dims, str(len(mine)), f"{planned:.0f}", f"{measured:.0f}", status])
    lines += _table(header, part_lines)
    lines += ["", "## Measurements"]
    kernels = [r for r in rows if r["part"] == "kernels"]
    if kernels:
        lines += _kernel_section(kernels)
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r.get("method"):
            groups.setdefault((r["part"], r["steps"]), []).append(r)
    for (part, steps), group in groups.items():
        lines += _profile_section(doc, part, steps, group)
    problems = [r for r in rows if r["status"] in ("error", "skipped", "not-run")]
    if problems:
        lines += ["", "## Errors and skipped measurements", ""]
        lines += [f"- {r['key']}: {r['status']}: {r.get('error') or ''}" for r in problems]
    budget = [d for d in plan["dropped"] if d["reason"].startswith("budget")]
    others: dict[str, int] = {}
    for d in plan["dropped"]:
        if d not in budget:
            others[d["reason"]] = others.get(d["reason"], 0) + 1
    if plan["dropped"]:
        lines += ["", "## Left out by the plan", ""]
        lines += [f"- {d['key']}: {d['reason']}" for d in budget]
        lines += [f"- {n} more: {reason}" for reason, n in others.items()]
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in (*plan.get("notes", []), *doc.get("notes", []))]
    return "\n".join(lines) + "\n"
