"""Markdown rendering of the class survey (`forecache.testing.survey`): summary, tables, per-class notes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from forecache.testing.catalog import EXCLUDED, diffusers_transformer_classes
from forecache.testing.survey import PRESETS, STEPS, ClassSurvey, list_execution

__all__ = ["render"]

_SHORT = {"TaylorSeerConfig": "TS", "AdamsBashforthConfig": "AB", "ConfidenceGateConfig": "CG"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short_error(detail: str) -> str:
    detail = detail.split("; supported models:")[0]
    return detail.replace("forecache: ", "")


def _outcome(survey: ClassSurvey, preset: str) -> str:
    outcome = survey.presets.get(preset)
    if outcome is None:
        return "-"
    if outcome.status == "engages":
        return f"engages x{outcome.flops_ratio:.2f}" + ("" if outcome.finite else " non-finite")
    return outcome.status


def _pattern(output: str) -> str:
    """Block output pattern without shapes: ``T[img]``, ``tuple(T[txt], T[img])``..."""
    return re.sub(r"T\([^)]*\)", "T", output)


def _lists(survey: ClassSurvey) -> str:
    obs = survey.observation
    if obs is None:
        return "-"
    execution = list_execution(obs)
    parts = []
    for path, (cls, length) in obs.lists.items():
        _, ran, most = execution[path]
        flag = "" if ran == length and most == 1 else f" (ran {ran}/{length}, max x{most})"
        parts.append(f"`{path}`: {cls} x{length}{flag}")
    return "<br>".join(parts)


def _subs(survey: ClassSurvey) -> str:
    obs = survey.observation
    if obs is None:
        return "-"
    parts = []
    for path, call in obs.calls.items():
        if not call.submodules:
            continue
        items = []
        for sub in call.submodules:
            res = "?" if sub.residual is None else "/".join(sub.residual)
            items.append(f"{sub.path}:{'A' if sub.kind == 'attention' else 'F'}[{res}]")
        parts.append(f"{path.split('.')[-1]}: " + " ".join(items))
    return "<br>".join(parts) or "none found"


def _summary(surveys: Sequence[ClassSurvey]) -> list[str]:
    classes = diffusers_transformer_classes()
    lines = [
        f"- diffusers transformer classes: {len(classes)} (every `ModelMixin` subclass defined in "
        "`diffusers.models.transformers`, plus `UniDiffuserModel`); catalog cases: "
        f"{len(surveys)}; excluded with a reason: {len(EXCLUDED)} ({', '.join(sorted(EXCLUDED))}).",
    ]
    header = "| preset | engages | refuses | crashes | runs, skips nothing |\n|---|---|---|---|---|"
    rows = []
    for preset in PRESETS:
        counts = Counter(s.presets[preset].status for s in surveys if preset in s.presets)
        cells = " | ".join(str(counts[k]) for k in ("engages", "refuses", "crashes", "no-op"))
        rows.append(f"| {preset} | {cells} |")
    lines += ["", f"forecache today, {STEPS}-call loop with a falling timestep:", "", header, *rows, ""]
    observed = [s for s in surveys if s.observation is not None]
    patterns: dict[str, list[str]] = {}
    for s in observed:
        assert s.observation is not None
        for path, call in s.observation.calls.items():
            if call.submodules:
                patterns.setdefault(_pattern(call.output), []).append(f"{s.name}.{path}")
    lines.append("- Block outputs (block lists with attention/feed-forward):")
    for pattern, where in sorted(patterns.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  - `{pattern}` x{len(where)}: {', '.join(where)}")
    times = Counter(s.time_arg for s in surveys)
    rising = [s.name for s in surveys if "rises" in s.time_convention]
    lines.append(
        "- Time argument of the forward: "
        + ", ".join(f"`{k}` x{n}" for k, n in times.most_common())
        + f". Time that rises over the generation (0 = noise): {', '.join(rising) or 'none'}."
    )
    others = [f"{s.name} (`{s.time_arg}`)" for s in surveys if s.time_arg != "timestep"]
    lines.append("- Time argument not named `timestep`: " + (", ".join(others) or "none") + ".")
    shaped = [
        f"{s.name} ({', '.join(f'{k}: {v}' for k, v in s.time_kwargs.items())})"
        for s in surveys
        if len(s.time_kwargs) > 1 or any(not re.fullmatch(r"T\(\d+\)", v) for v in s.time_kwargs.values())
    ]
    lines.append(
        "- Several time arguments or non-(batch,) time shapes: " + ("; ".join(shaped) or "none") + "."
    )
    nested = [
        f"{s.name}: {', '.join(p for p in s.observation.lists if '.' in p)}"
        for s in observed
        if s.observation and any("." in p for p in s.observation.lists)
    ]
    lines.append(
        "- Block lists not direct children of the transformer: " + ("; ".join(nested) or "none") + "."
    )
    odd = []
    for s in observed:
        assert s.observation is not None
        for path, (length, ran, most) in list_execution(s.observation).items():
            if ran < length or most > 1:
                odd.append(f"{s.name} `{path}` ran {ran}/{length} max x{most}")
    lines.append(
        "- Block lists not fully executed, or executed more than once per call: "
        + ("; ".join(odd) or "none")
        + "."
    )
    interleaved = [
        s.name for s in observed if s.observation and len(s.observation.runs()) > len(s.observation.lists)
    ]
    lines.append("- Block lists interleaved within a call: " + (", ".join(interleaved) or "none") + ".")
    loose = [
        f"{s.name} ({', '.join(f'{k}: {v}' for k, v in s.observation.loose.items())})"
        for s in observed
        if s.observation and s.observation.loose
    ]
    lines.append(
        "- Modules holding attention outside every block list: " + ("; ".join(loose) or "none") + "."
    )
    variants = [f"{s.name} `{p}`" for s in observed for p, c in s.observation.calls.items() if c.variants > 1]  # type: ignore[union-attr]
    lines.append(
        "- Blocks of one list called with different argument sets: " + (", ".join(variants) or "none") + "."
    )
    multi = [
        f"{s.name} ({', '.join(sorted(s.observation.multi_shape_sites))})"
        for s in observed
        if s.observation and s.observation.multi_shape_sites
    ]
    lines.append(
        "- Cache sites (blocks, attention, feed-forward) that see several input shapes in one call: "
        + ("; ".join(multi) or "none")
        + "."
    )
    shared = [s.name for s in observed if s.observation and s.observation.shared]
    lines.append(
        "- Modules with parameters run more than once per call (shared): "
        + (", ".join(shared) or "none")
        + "."
    )
    nonlinear = [
        f"{s.name} {p.split('.')[-1]}.{sub.path}"
        for s in observed
        for p, c in s.observation.calls.items()  # type: ignore[union-attr]
        for sub in c.submodules
        if sub.residual and "nonlinear" in sub.residual
    ]
    lines.append(
        "- Attention/feed-forward whose output is not added linearly to the block output "
        "(others held fixed): " + (", ".join(nonlinear) or "none") + "."
    )
    nosubs = [f"{s.name} `{p}`" for s in observed for p, c in s.observation.calls.items() if not c.submodules]  # type: ignore[union-attr]
    lines.append(
        "- Block lists with no attention/feed-forward found by type: " + (", ".join(nosubs) or "none") + "."
    )
    return lines


def _notes(s: ClassSurvey) -> list[str]:
    out = [f"### {s.name}", ""]
    out.append(
        f"- family `{s.family}`; time: `{s.time_arg}` {s.time_kwargs}, {s.time_convention}; forward's "
        f"time-like parameters {s.forward_time_params}"
    )
    exprs = sorted({e for v in s.pipelines.values() for e in v})
    mods = ", ".join(sorted(p.split("/")[-1] for p in s.pipelines)) or "none"
    out.append(f"- pipelines ({len(s.pipelines)}): {mods}; time passed: {exprs or 'n/a'}")
    out.append(f"- forecache layout today: {s.registered}")
    for preset, outcome in s.presets.items():
        detail = _short_error(outcome.detail) if outcome.status in ("refuses", "crashes") else outcome.detail
        out.append(f"- {_SHORT[preset]}: {_outcome(s, preset)}{': ' + detail if detail else ''}")
    obs = s.observation
    if obs is None:
        out.append(f"- observation failed: {s.error}")
        return [*out, ""]
    out.append(
        f"- streams: img tokens {obs.img_tokens}, txt tokens {obs.txt_tokens} (batch {obs.batch}); "
        f"order: {' -> '.join(obs.runs())}"
    )
    if obs.loose:
        out.append(f"- attention outside block lists: {obs.loose}")
    if obs.nested:
        out.append(
            f"- lists inside blocks: {', '.join(f'{k} ({v})' for k, v in list(obs.nested.items())[:4])}"
            + (" ..." if len(obs.nested) > 4 else "")
        )
    for path, call in obs.calls.items():
        args = ", ".join(f"{k}={v}" for k, v in call.inputs.items())
        out.append(f"- `{path}` {call.cls}({', '.join(call.signature)})")
        out.append(f"  - first call: {args}")
        out.append(
            f"  - returns {call.output}" + (f"; {call.variants} argument sets" if call.variants > 1 else "")
        )
        for sub in call.submodules:
            out.append(
                f"  - {sub.kind} `{sub.path}` {sub.cls} (by {sub.evidence}), ran x{sub.calls}, "
                f"output into block outputs: {sub.residual}"
            )
    if obs.shared:
        items = sorted(obs.shared.items(), key=lambda kv: -kv[1][0])
        out.append(
            "- shared (calls, distinct input shapes): "
            + ", ".join(f"`{k}` x{c}/{n}" for k, (c, n) in items[:8])
            + (" ..." if len(items) > 8 else "")
        )
    if obs.multi_shape_sites:
        out.append(f"- several input shapes: {obs.multi_shape_sites}")
    return [*out, ""]


def render(surveys: Sequence[ClassSurvey], header: str = "") -> str:
    """Render the survey as markdown: summary, structure table, time/forecache table, notes."""
    lines = ["# Survey of every diffusers transformer class, observed at its first call", ""]
    if header:
        lines += [header, ""]
    lines += ["## Findings", "", *_summary(surveys), ""]
    lines += [
        "## Structure",
        "",
        "Block lists: module lists of one block class (`ran i/n, max xk` when not every block ran once). "
        "Sub-modules: `A` attention, `F` feed-forward, found by type; `[linear]` per block output: that "
        "output moves linearly with the sub-module's output (others fixed), `-` independent, `nonlinear`.",
        "",
        "| class | block lists | execution order | block outputs | attention / feed-forward |",
        "|---|---|---|---|---|",
    ]
    for s in surveys:
        obs = s.observation
        order = " → ".join(obs.runs()) if obs else s.error
        outs = (
            "<br>".join(f"{p.split('.')[-1]}: `{_pattern(c.output)}`" for p, c in obs.calls.items())
            if obs
            else ""
        )
        lines.append(f"| {s.name} | {_lists(s)} | {_cell(order)} | {_cell(outs)} | {_cell(_subs(s))} |")
    lines += [
        "",
        "## Time, pipelines and forecache today",
        "",
        f"`TS`/`AB`/`CG`: TaylorSeerConfig / AdamsBashforthConfig / ConfidenceGateConfig defaults, "
        f"{STEPS} calls; `engages xR`: linear-layer FLOPs without over with the cache.",
        "",
        "| class | time argument | time the catalog passes | pipelines: time passed | forecache layout today "
        "| TS | AB | CG |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in surveys:
        exprs = sorted({e for v in s.pipelines.values() for e in v})
        pipes = f"{len(s.pipelines)}: " + "; ".join(exprs[:3]) + (" ..." if len(exprs) > 3 else "")
        kwargs = ", ".join(f"{k} {v}" for k, v in s.time_kwargs.items())
        registered = s.registered.split(":")[0]
        outcomes = " | ".join(_outcome(s, p) for p in PRESETS)
        lines.append(
            f"| {s.name} | `{s.time_arg}` | {_cell(kwargs)}, {_cell(s.time_convention)} | {_cell(pipes)} | "
            f"{_cell(registered)} | {outcomes} |"
        )
    lines += ["", "## Per-class notes", ""]
    for s in surveys:
        lines += _notes(s)
    lines += ["## Excluded classes", ""] + [f"- {k}: {v}" for k, v in sorted(EXCLUDED.items())]
    return "\n".join(lines) + "\n"
