"""Survey every catalog class: observed structure, time arguments, pipelines, and what forecache does today.

`survey_class` gathers, for one diffusers transformer class of the catalog, the structure `observe`
measures at its first call, the pipelines of the installed diffusers that use the class (and the
time expression they pass), the layout forecache currently registers for it, and the outcome of the
three presets on a 12-call loop (engages, refuses with a message, crashes, or runs without skipping
anything). `benchmarks/survey_layouts.py` renders it (`forecache.testing.survey_report`).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forecache.testing.catalog import TinyModel, build_tiny, output_tensors
from forecache.testing.observe import Observation, observe

__all__ = [
    "ClassSurvey",
    "PresetOutcome",
    "pipelines_using",
    "probe_preset",
    "registered_layout",
    "survey_class",
]

STEPS = 12
PRESETS = ("TaylorSeerConfig", "AdamsBashforthConfig", "ConfidenceGateConfig")
_TIME_WORDS = re.compile(r"time|sigma|^t$|noise_level")
_CALL = re.compile(
    r"(?:self|components)\.(?:transformer|transformer_2|unet|prior|decoder)\s*\(|current_model\s*\("
)


@dataclass
class PresetOutcome:
    """What one preset did on a 12-call loop of the tiny model.

    Attributes:
        status: ``"engages"`` (fewer linear-layer FLOPs than without it), ``"refuses"`` (`apply`
            raised), ``"crashes"`` (the loop raised), or ``"no-op"`` (ran, nothing skipped).
        detail: The refusal or crash message (first line), or the decisions string.
        flops_ratio: Linear-layer FLOPs without the cache over with it (engaged runs).
        finite: The outputs stayed finite.

    """

    status: str
    detail: str = ""
    flops_ratio: float | None = None
    finite: bool = True


@dataclass
class ClassSurvey:
    """Everything the survey knows about one class."""

    name: str
    family: str
    time_arg: str
    time_kwargs: dict[str, str]
    time_convention: str
    forward_time_params: list[str]
    pipelines: dict[str, list[str]]
    registered: str
    observation: Observation | None
    error: str = ""
    presets: dict[str, PresetOutcome] = field(default_factory=dict)


def _diffusers_root() -> Path:
    import diffusers

    return Path(diffusers.__file__).parent


def _call_args(source: str, start: int) -> str:
    depth, i = 1, start
    while depth and i < len(source):
        depth += {"(": 1, ")": -1}.get(source[i], 0)
        i += 1
    return source[start : i - 1]


def pipelines_using(class_name: str) -> dict[str, list[str]]:
    """Pipeline modules (classic and modular) that name `class_name`, with the time they pass it.

    Returns:
        Module path (relative to the diffusers package) -> the distinct ``name=expression`` time
        arguments of its transformer calls (``"positional: ..."`` when passed by position).

    """
    root = _diffusers_root()
    word = re.compile(rf"\b{re.escape(class_name)}\b")
    found: dict[str, list[str]] = {}
    for folder in ("pipelines", "modular_pipelines"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "__init__.py":
                continue
            source = path.read_text(encoding="utf-8")
            if not word.search(source):
                continue
            times: list[str] = []
            for match in _CALL.finditer(source):
                args = _call_args(source, match.end())
                lead = args.lstrip()
                if lead and not re.match(r"\w+\s*=[^=]", lead) and not lead.startswith("**"):
                    parts = [p.strip() for p in re.split(r",\s*\n|,\s(?![^()\[\]]*[)\]])", lead)][:2]
                    times.append("positional: " + ", ".join(parts))
                for key, value in re.findall(r"(\b\w+)\s*=\s*([^,\n]+)", args):
                    if _TIME_WORDS.search(key) and "kwargs" not in key:
                        times.append(f"{key}={value.strip()}")
            found[str(path.relative_to(root).with_suffix(""))] = sorted(set(times))
    return found


def registered_layout(model: torch.nn.Module) -> str:
    """Return the layout forecache registers (or derives from diffusers' metadata) today, as one line."""
    try:
        from forecache.layouts import registry
    except Exception as err:
        return f"registry unavailable: {err}"
    table = getattr(registry, "_REGISTRY", {})
    names = [cls.__name__ for cls in type(model).__mro__]
    layout = next((table[n] for n in names if n in table), None)
    source = "registered"
    if layout is None:
        try:
            layout = registry.layout_for(model)
            source = "inferred"
        except Exception as err:
            return f"none ({type(err).__name__})"
    parts = []
    for block_list in getattr(layout, "block_lists", ()):
        mods = ",".join(getattr(block_list, "modules", ()))
        parts.append(f"{block_list.attr}(h={block_list.hidden_index},e={block_list.encoder_index}; {mods})")
    return f"{source}: " + " + ".join(parts)


def _time_convention(tiny: TinyModel) -> str:
    first, last = tiny.model_time(0, STEPS), tiny.model_time(STEPS - 1, STEPS)
    direction = "falls" if last < first else "rises"
    return f"{tiny.timestep_offset:g}{tiny.timestep_scale:+g}*t ({direction} {first:g}->{last:g})"


def _describe_time(tiny: TinyModel, batch: int) -> dict[str, str]:
    from forecache.testing.observe import describe

    return {k: describe(v) for k, v in tiny.time_kwargs(0, STEPS, batch).items()}


def _linear_flops(model: torch.nn.Module) -> tuple[list[int], list[Any]]:
    total = [0]

    def hook(module: torch.nn.Linear, args: tuple, output: Any) -> None:
        total[0] += args[0].numel() * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return total, handles


def _loop(tiny: TinyModel, inputs: dict[str, Any], batch: int) -> tuple[int, bool]:
    total, handles = _linear_flops(tiny.model)
    finite = True
    try:
        with torch.no_grad():
            for step in range(STEPS):
                finite &= all(
                    bool(torch.isfinite(t).all())
                    for t in output_tensors(tiny.call(inputs, step, STEPS, batch))
                )
    finally:
        for h in handles:
            h.remove()
    return total[0], finite


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:220]}"


def probe_preset(name: str, preset: str) -> PresetOutcome:
    """Apply one forecache preset to a fresh tiny model of `name` and run a 12-call loop."""
    import forecache

    tiny = build_tiny(name)
    batch = min(2, tiny.max_batch or 2)
    inputs = tiny.make_inputs(batch, torch.Generator().manual_seed(0))
    baseline, _ = _loop(tiny, inputs, batch)
    try:
        forecache.apply(tiny.model, getattr(forecache, preset)(), num_inference_steps=STEPS)
    except Exception as err:
        return PresetOutcome("refuses", _first_line(err))
    try:
        flops, finite = _loop(tiny, inputs, batch)
    except Exception as err:
        return PresetOutcome("crashes", _first_line(err))
    finally:
        try:
            stats = forecache.stats(tiny.model)
            decisions = " ".join("".join(c.decisions) for c in stats.contexts.values())
        except Exception:
            decisions = ""
        try:
            forecache.remove(tiny.model)
        except Exception:
            pass
    ratio = baseline / flops if flops else None
    status = "engages" if flops < baseline else "no-op"
    return PresetOutcome(status, decisions, ratio, finite)


def survey_class(name: str, presets: bool = True) -> ClassSurvey:
    """Survey one catalog class (observation, time, pipelines, registered layout, presets)."""
    tiny = build_tiny(name)
    batch = min(2, tiny.max_batch or 2)
    params = inspect.signature(tiny.model.forward).parameters
    record = ClassSurvey(
        name=name,
        family=tiny.family,
        time_arg=tiny.time_arg,
        time_kwargs=_describe_time(tiny, batch),
        time_convention=_time_convention(tiny),
        forward_time_params=[p for p in params if _TIME_WORDS.search(p) and p != "return_dict"],
        pipelines=pipelines_using(name),
        registered=registered_layout(tiny.model),
        observation=None,
    )
    try:
        record.observation = observe(tiny, batch=batch)
    except Exception as err:
        record.error = _first_line(err)
    if presets:
        record.presets = {preset: probe_preset(name, preset) for preset in PRESETS}
    return record


def list_execution(observation: Observation) -> dict[str, tuple[int, int, int]]:
    """Per block list: (length, items executed, most executions of one item) in the observed call."""
    counts = Counter(observation.order)
    out = {}
    for path, (_, length) in observation.lists.items():
        runs = [counts[(path, i)] for i in range(length)]
        out[path] = (length, sum(1 for r in runs if r), max(runs))
    return out


def survey_from_dict(data: dict[str, Any]) -> ClassSurvey:
    """Rebuild a `ClassSurvey` from its ``dataclasses.asdict`` JSON form (to re-render without re-running)."""
    from forecache.testing.observe import BlockCall, SubModule

    obs = data.get("observation")
    observation = None
    if obs is not None:
        calls = {
            path: BlockCall(**{**call, "submodules": [SubModule(**sub) for sub in call["submodules"]]})
            for path, call in obs["calls"].items()
        }
        observation = Observation(
            **{
                **obs,
                "calls": calls,
                "order": [tuple(item) for item in obs["order"]],
                "lists": {k: tuple(v) for k, v in obs["lists"].items()},
                "shared": {k: tuple(v) for k, v in obs["shared"].items()},
            }
        )
    presets = {k: PresetOutcome(**v) for k, v in data.get("presets", {}).items()}
    return ClassSurvey(**{**data, "observation": observation, "presets": presets})
