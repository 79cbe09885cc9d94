"""What the GPU run measures, what each measurement should cost, and what fits in the budget.

A *part* is what one worker process runs on one built model (or the kernel benchmark); an *entry*
is one measurement in it (one method at one step count, or one kernel size and dtype). Every
entry has a priority (lower first) and an estimated cost in seconds:

    trajectory = steps * (FLOPs per step / (peak * efficiency) + host floor per step)
    entry      = (warmup + 1 counted + repeats timed) * trajectory * work fraction + extras

The work fraction of a forecache preset is simulated from its policy (computed steps, plus a
small cost per forecast step); a gate or a peer whose decisions depend on the features counts as
computing every step (pessimistic). MagCache adds its calibration trajectory, a compiled part
its compilation. `plan` keeps entries greedily in priority order while the total (entries plus
the set-up of each part they open) fits the budget, retrying with fewer repeats until every
critical entry fits. Each kept entry gets a *reserve*: the cost of the better-priority entries
that run after it, in later parts; a worker skips an entry that would end past
``budget - reserve``, so low-priority work early in the run never eats the time of the critical
measurements after it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "FLUX_METHODS",
    "WAN_METHODS",
    "CostModel",
    "Entry",
    "Part",
    "Plan",
    "default_parts",
    "entry_cost",
    "make_plan",
    "part_dims",
    "work_fraction",
]

# Method specs, in priority order within their tier. "core" ones are the acceptance subjects.
CORE = ("baseline", "taylorseer:target=blocks", "taylorseer:target=modules")
PRESETS_REST = (
    "ab:target=blocks",
    "ab",
    "cg",
    "cg:target=modules",
    "ab:target=modules",
    "taylorseer:target=output",
    "cg:target=output",
)
PEERS = (
    "cachedit.dbcache",
    "diffusers.fbcache",
    "diffusers.taylorseer",
    "diffusers.magcache",
    "cachedit.dbcache:taylorseer_order=0",
    "cachedit.dbcache:taylorseer_order=2",
)
FLUX_METHODS = (*CORE, *PRESETS_REST, *PEERS)
# Run last in their worker whatever their priority: cache-dit's disable_cache leaves its patched
# forward on a bare transformer, after which diffusers' cache hooks fail (seen with 1.5.3).
LAST_IN_PART = ("cachedit.",)
WAN_METHODS = FLUX_METHODS
# Work fraction of peers whose skipping depends on the features (random weights: assume none).
_PEER_FRACTION = {"diffusers.taylorseer": 0.9}
_FORECAST_COST = {"modules": 0.15, "blocks": 0.03, "output": 0.02}  # of a computed step


@dataclass(frozen=True)
class CostModel:
    """Numbers behind the estimates (defaults: an H200, measured by this workplace).

    Attributes:
        peak_flops: Dense bf16 matmul rate (788 TFLOP/s measured on the H200).
        efficiency: Fraction of `peak_flops` a denoising step reaches, eager.
        compiled_efficiency: The same with regional torch.compile.
        host_floor_s: Seconds per step added for the host (launches, scheduler).
        process_s: A worker's start: Python, torch, diffusers, forecache imports.
        build_s_per_gib: Building random weights on the device, per GiB of weights.
        compile_s: Extra seconds of the first compiled trajectory of a part.
        compile_method_s: Extra seconds per further method on a compiled model (hook graphs).
        kernel_entry_s: One kernel entry (4 kernels x K values, Triton compiles, copy baseline).

    """

    peak_flops: float = 790e12
    efficiency: float = 0.5
    compiled_efficiency: float = 0.6
    host_floor_s: float = 0.02
    process_s: float = 12.0
    build_s_per_gib: float = 0.5
    compile_s: float = 90.0
    compile_method_s: float = 10.0
    kernel_entry_s: float = 10.0


@dataclass(frozen=True)
class Part:
    """One worker process: a model build (``kind="profile"``) or the kernel benchmark.

    Attributes:
        name: ``"kernels"`` or ``"<arch>/eager"`` / ``"<arch>/compile"``.
        kind: ``"profile"`` or ``"kernels"``.
        arch: Architecture name (profile parts).
        compile: torch.compile backend, or None for eager.
        dims: Candidate (height, width, frames), largest first; the plan keeps the first that fits.
        step_flops: FLOPs of one transformer call at each candidate (same order).
        weight_gib: Weights of the model, GiB.

    """

    name: str
    kind: str
    arch: str | None = None
    compile: str | None = None
    dims: tuple[tuple[int, int, int], ...] = ()
    step_flops: tuple[float, ...] = ()
    weight_gib: float = 0.0


@dataclass(frozen=True)
class Entry:
    """One measurement.

    Attributes:
        key: Unique name, e.g. ``"flux-dev/eager/50/taylorseer:target=blocks"``.
        part: The `Part` name.
        priority: Lower runs (and is kept) first.
        critical: An acceptance subject: the plan trims repeats before dropping it.
        method: Method spec (profile entries).
        steps: Denoising steps (profile entries).
        dtype: ``"bf16"``/``"fp32"`` (kernel entries).
        size_mb: MB per tensor (kernel entries).
        warmup: Untimed trajectories.
        repeats: Timed trajectories (set by the plan).
        dims: (height, width, frames) chosen by the plan.
        est_s: Estimated seconds (set by the plan).
        reserve_s: Estimated seconds of better-priority entries in later parts (set by the plan).

    """

    key: str
    part: str
    priority: int
    critical: bool = False
    method: str | None = None
    steps: int | None = None
    dtype: str | None = None
    size_mb: float | None = None
    warmup: int = 0
    repeats: int = 1
    dims: tuple[int, int, int] | None = None
    est_s: float = 0.0
    reserve_s: float = 0.0


@dataclass
class Plan:
    """Kept entries (in execution order), dropped ones, and the totals.

    Attributes:
        entries: Kept entries, grouped by part in part order, by priority within a part.
        dropped: Entries left out (budget or `only`), priority order.
        reasons: Why each dropped entry was left out, by key.
        parts: The parts with at least one kept entry, with their chosen dims first.
        setup_s: Estimated set-up seconds per kept part.
        budget_s: The budget planned for.
        total_s: Estimated seconds of everything kept.
        repeats: Timed trajectories per profile entry.
        notes: What the plan had to give up (fewer repeats).

    """

    entries: list[Entry]
    dropped: list[Entry]
    reasons: dict[str, str]
    parts: list[Part]
    setup_s: dict[str, float]
    budget_s: float
    total_s: float
    repeats: int
    notes: list[str] = field(default_factory=list)


def work_fraction(method: str, steps: int) -> float:
    """Fraction of a baseline trajectory's device work a method does (1.0 when unknown).

    forecache presets: their policy's decisions simulated over `steps` (a probe counts as a
    computed step) plus `_FORECAST_COST` of a step per forecast; peers: 1.0 (or `_PEER_FRACTION`).
    """
    from forecache.accel.config import resolve_config
    from forecache.accel.policies import Decision
    from forecache.eval.methods import parse_method

    spec = parse_method(method)
    if spec.kind != "forecache":
        return _PEER_FRACTION.get(spec.name, 1.0)
    config = resolve_config(spec.config)
    computed, run = 0, 0
    for step in range(steps):
        decision = config.policy.decide(step, steps, run)
        forecast = decision == Decision.FORECAST
        computed += not forecast
        run = run + 1 if forecast else 0
    return (computed + (steps - computed) * _FORECAST_COST[config.target]) / steps


def entry_cost(entry: Entry, part: Part, dims_index: int, cost: CostModel, first_in_part: bool) -> float:
    """Estimated seconds of one entry (see the module docstring)."""
    if part.kind == "kernels":
        scale = max(1.0, (entry.size_mb or 0) / 256)  # 1 GB tensors take a few times longer
        return cost.kernel_entry_s * (1.0 + 0.25 * (scale - 1.0))
    assert entry.method is not None and entry.steps is not None
    eff = cost.compiled_efficiency if part.compile else cost.efficiency
    step_s = part.step_flops[dims_index] / (cost.peak_flops * eff) + cost.host_floor_s
    trajectory = entry.steps * step_s
    name = entry.method.partition(":")[0]
    trajectories = (entry.warmup + 1 + entry.repeats) * work_fraction(entry.method, entry.steps)
    trajectories += 1.0 if name == "diffusers.magcache" else 0.0  # calibration run
    extra = (cost.compile_s if first_in_part else cost.compile_method_s) if part.compile else 0.0
    return trajectories * trajectory + extra


def setup_cost(part: Part, cost: CostModel) -> float:
    """Estimated seconds to start a worker and build its model."""
    return cost.process_s + cost.build_s_per_gib * part.weight_gib


def _greedy(
    entries: Sequence[Entry], parts: dict[str, Part], budget: float, repeats: int, cost: CostModel
) -> tuple[list[Entry], dict[str, str], list[Entry], dict[str, float], dict[str, int]]:
    kept: list[Entry] = []
    dropped: list[Entry] = []
    reasons: dict[str, str] = {}
    setup: dict[str, float] = {}
    dims_of: dict[str, int] = {}
    total = 0.0
    for entry in sorted(entries, key=lambda e: e.priority):
        part = parts[entry.part]
        e = dataclasses.replace(entry, repeats=repeats if part.kind == "profile" else 1)
        base_key = None if entry.method in (None, "baseline") else entry.key.rsplit("/", 1)[0] + "/baseline"
        if base_key is not None and not any(k.key == base_key for k in kept):
            dropped.append(e)  # no baseline at this step count: nothing to compare with
            reasons[e.key] = "its baseline was left out"
            continue
        opening = entry.part not in setup
        candidates = range(len(part.dims)) if opening and part.dims else [dims_of.get(entry.part, 0)]
        for index in candidates:
            est = entry_cost(e, part, index, cost, first_in_part=opening)
            extra = setup_cost(part, cost) if opening else 0.0
            e = dataclasses.replace(e, est_s=est, dims=part.dims[index] if part.dims else None)
            if total + est + extra <= budget:
                kept.append(e)
                total += est + extra
                if opening:
                    setup[entry.part], dims_of[entry.part] = extra, index
                break
        else:
            dropped.append(e)
            reasons[e.key] = f"budget: ~{e.est_s:.0f} s, {budget - total:.0f} s left when its turn came"
    return kept, reasons, dropped, setup, dims_of


def make_plan(
    entries: Sequence[Entry],
    parts: Sequence[Part],
    budget_s: float,
    cost: CostModel | None = None,
    repeats: Sequence[int] = (3, 2, 1),
    only: Sequence[str] = (),
) -> Plan:
    """Keep what fits `budget_s` (see the module docstring); `only`: fnmatch patterns over keys.

    Raises:
        ValueError: A non-positive budget or an empty `repeats`, naming the value.

    """
    if not budget_s > 0:
        raise ValueError(f"`budget_s` must be > 0, got {budget_s!r}")
    if not repeats or any(r < 1 for r in repeats):
        raise ValueError(f"`repeats` must be ints >= 1, got {list(repeats)!r}")
    cost = cost or CostModel()
    by_name = {p.name: p for p in parts}
    wanted = [e for e in entries if not only or any(fnmatch.fnmatchcase(e.key, p) for p in only)]
    unwanted = [e for e in entries if e not in wanted]
    notes: list[str] = []
    for r in repeats:
        kept, reasons, dropped, setup, dims_of = _greedy(wanted, by_name, budget_s, r, cost)
        missing = [e.key for e in dropped if e.critical]
        if not missing:
            break
        notes.append(f"repeats={r}: critical entries do not fit: {', '.join(missing)}")
    order = [p.name for p in parts]
    kept.sort(key=lambda e: (order.index(e.part), (e.method or "").startswith(LAST_IN_PART), e.priority))
    for i, e in enumerate(kept):  # reserve: better-priority work in later parts
        later = [f for f in kept[i + 1 :] if f.part != e.part and f.priority < e.priority]
        opened = {f.part for f in later} - {e.part}
        reserve = sum(f.est_s for f in later) + sum(setup[p] for p in opened)
        kept[i] = dataclasses.replace(e, reserve_s=reserve)
    chosen = [
        dataclasses.replace(by_name[n], dims=by_name[n].dims[dims_of[n] :]) if by_name[n].dims else by_name[n]
        for n in order
        if n in setup
    ]
    total = sum(e.est_s for e in kept) + sum(setup.values())
    reasons.update({e.key: "not selected by --only" for e in unwanted})
    dropped = sorted(dropped + unwanted, key=lambda e: e.priority)
    return Plan(kept, dropped, reasons, chosen, setup, budget_s, total, r, notes)


def part_dims(size: str) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """Candidate (height, width, frames) per architecture, largest first (Wan: frames trimmed to fit)."""
    if size == "full":
        return {
            "flux-dev": ((1024, 1024, 1),),
            "wan2.1-1.3b": ((480, 832, 33), (480, 832, 17), (480, 832, 9)),
        }
    return {"flux-dev": ((128, 128, 1),), "wan2.1-1.3b": ((64, 64, 5),)}


def default_parts(
    size: str,
    compile_backend: str,
    step_flops: dict[tuple[str, tuple[int, int, int]], float],
    weight_gib: dict[str, float],
) -> list[Part]:
    """The parts, in execution order: kernels, FLUX eager, FLUX compiled, Wan eager, Wan compiled."""
    parts = [Part("kernels", "kernels")]
    for arch, dims in part_dims(size).items():
        flops = tuple(step_flops[(arch, d)] for d in dims)
        for mode, backend in (("eager", None), ("compile", compile_backend)):
            parts.append(Part(f"{arch}/{mode}", "profile", arch, backend, dims, flops, weight_gib[arch]))
    return parts


def default_entries(flux_steps: Sequence[int], wan_steps: int, kernel_sizes: Sequence[float]) -> list[Entry]:
    """Every measurement with its priority (see BENCHMARKS.md, "GPU figures: the one command").

    Tiers: kernels; FLUX eager at the acceptance steps (`flux_steps[0]`), core methods; the same
    compiled; the other presets; the peers; FLUX eager at the other step counts (core, then all);
    Wan eager (core, then all); the rest compiled.
    """
    entries: list[Entry] = []
    tier = 0

    def add(part: str, methods: Sequence[str], steps: int, critical: bool = False) -> None:
        nonlocal tier
        for m in methods:
            # eager: the counted loop warms up; a peer's first loop may differ from the next
            # (cache-dit's persistent context), a compiled one compiles
            warm = 1 if part.endswith("/compile") or "." in m.partition(":")[0] else 0
            entries.append(Entry(f"{part}/{steps}/{m}", part, tier, critical, m, steps, warmup=warm))
            tier += 1

    for size in kernel_sizes:
        for dtype in ("bf16", "fp32"):
            key = f"kernels/{dtype}/{size:g}MB"
            entries.append(Entry(key, "kernels", tier, size == kernel_sizes[0], dtype=dtype, size_mb=size))
            tier += 1
    main, *others = flux_steps
    add("flux-dev/eager", CORE, main, critical=True)
    add("flux-dev/compile", CORE, main, critical=True)
    add("flux-dev/eager", PRESETS_REST, main)
    add("flux-dev/eager", PEERS, main)
    for steps in others:
        add("flux-dev/eager", (*CORE, "cachedit.dbcache"), steps)
    add("wan2.1-1.3b/eager", CORE, wan_steps)
    for steps in others:
        add("flux-dev/eager", [m for m in FLUX_METHODS if m not in (*CORE, "cachedit.dbcache")], steps)
    add("wan2.1-1.3b/eager", [m for m in WAN_METHODS if m not in CORE], wan_steps)
    add("flux-dev/compile", [m for m in FLUX_METHODS if m not in CORE], main)
    for steps in others:
        add("flux-dev/compile", FLUX_METHODS, steps)
    add("wan2.1-1.3b/compile", WAN_METHODS, wan_steps)
    return entries
