"""What the GPU run measures, what each measurement should cost, and what fits in the budget.

A *part* is what one worker process runs on one built model (or the kernel benchmark); an *entry*
is one measurement in it (one method at one step count, or one kernel size and dtype). Every
entry has a priority (lower first) and an estimated cost in seconds:

    trajectory = steps * (FLOPs per step / (peak * efficiency) * work fraction + host floor per step)
    entry      = (warmup + 1 counted + repeats timed) * trajectory + extras

The work fraction of a forecache method is simulated from its policy (computed steps, plus a
small cost per forecast step; the host's per-step cost is paid at every step, forecast or not);
a gate or a peer whose decisions depend on the features counts as computing every step
(pessimistic). MagCache adds its calibration trajectory, a compiled part its compilation.
`plan` keeps entries greedily in priority order while the total (entries plus the set-up of each
part they open) fits the budget, retrying with fewer repeats until every critical entry fits
(keeping the most repeats if fewer fit no more of them); a baseline left with nothing to compare
with at its step count is left out too. The kept parts run in the order of their best priority.
Each kept entry gets a *reserve*: the cost of the better-priority entries that run after it, in
later parts; a worker skips an entry that would end past ``budget - reserve``, so low-priority
work early in the run never eats the time of the critical measurements after it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FLUX_METHODS",
    "WAN_METHODS",
    "CostModel",
    "Entry",
    "Part",
    "Plan",
    "computed_steps",
    "default_parts",
    "entry_cost",
    "make_plan",
    "part_dims",
    "work_fraction",
]

# Method specs (see `benchmarks.gpu.methods`), in priority order within their tier.
# The case forecache makes past 5x: TimelineConfig's default 5x, fixed Timelines at 8x and 10x.
HIGH_RATIO = ("timeline", "fixed-timeline:ratio=8", "fixed-timeline:ratio=10")
# The presets' 2-3x on the two targets with an acceptance threshold.
PRESETS_CORE = ("taylorseer:target=blocks", "taylorseer:target=modules")
CORE = ("baseline", *HIGH_RATIO, *PRESETS_CORE)
# What the compiled parts measure first: 0 recompiles as steps switch between compute and forecast.
COMPILE_CORE = ("baseline", "timeline", "fixed-timeline:ratio=10")
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
        key: Unique name, e.g. ``"flux-dev/eager/28/fixed-timeline:ratio=8"``.
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
        computed: Steps the method's schedule computes out of `steps` (set by the plan, see
            `computed_steps`; None where the features decide at run time, and for kernels).
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
    computed: int | None = None
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


@functools.cache
def _schedule(method: str, steps: int) -> tuple[int | None, float]:
    """(computed steps or None, work fraction) of `method` at `steps` steps (see `work_fraction`)."""
    from benchmarks.gpu.methods import resolve
    from forecache.accel.policies import Decision

    spec = resolve(method, steps)
    if spec.kind == "baseline":
        return steps, 1.0
    if spec.kind != "forecache" or spec.config is None:  # a peer, or the tuner (no schedule yet)
        return None, _PEER_FRACTION.get(spec.name, 1.0)
    config = spec.config
    computed, run, probed = 0, 0, False
    for step in range(steps):
        decision = config.policy.decide(step, steps, run)
        forecast = decision == Decision.FORECAST
        probed |= decision == Decision.PROBE
        computed += not forecast
        run = run + 1 if forecast else 0
    fraction = (computed + (steps - computed) * _FORECAST_COST[config.target]) / steps
    return (None if probed else computed), fraction


def work_fraction(method: str, steps: int) -> float:
    """Fraction of a baseline trajectory's device work a method does (1.0 when unknown).

    forecache methods: their policy's decisions simulated over `steps` (a probe counts as a
    computed step) plus `_FORECAST_COST` of a step per forecast; peers: 1.0 (or `_PEER_FRACTION`).
    """
    return _schedule(method, steps)[1]


def computed_steps(method: str, steps: int) -> int | None:
    """Steps `method` computes out of `steps`: all for the baseline, its schedule's for a forecache
    method that decides before the step starts; None for a gate (decided at run time) or a peer."""
    return _schedule(method, steps)[0]


def entry_cost(entry: Entry, part: Part, dims_index: int, cost: CostModel, first_in_part: bool) -> float:
    """Estimated seconds of one entry (see the module docstring)."""
    if part.kind == "kernels":
        scale = max(1.0, (entry.size_mb or 0) / 256)  # 1 GB tensors take a few times longer
        return cost.kernel_entry_s * (1.0 + 0.25 * (scale - 1.0))
    assert entry.method is not None and entry.steps is not None
    steps = entry.steps
    eff = cost.compiled_efficiency if part.compile else cost.efficiency
    device_s = part.step_flops[dims_index] / (cost.peak_flops * eff)

    def trajectory(fraction: float) -> float:
        return steps * (device_s * fraction + cost.host_floor_s)

    total = (entry.warmup + 1 + entry.repeats) * trajectory(work_fraction(entry.method, steps))
    if entry.method.partition(":")[0] == "diffusers.magcache":
        total += trajectory(1.0)  # its calibration run
    extra = (cost.compile_s if first_in_part else cost.compile_method_s) if part.compile else 0.0
    return total + extra


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
        if entry.method is not None and entry.steps is not None:
            e = dataclasses.replace(e, computed=computed_steps(entry.method, entry.steps))
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
            need = f"~{e.est_s:.0f} s" + (f" + {extra:.0f} s to set up its part" if extra else "")
            reasons[e.key] = f"budget: {need}, {budget - total:.0f} s left when its turn came"
    return kept, reasons, dropped, setup, dims_of


def _lonely_baselines(kept: Sequence[Entry]) -> list[Entry]:
    """Kept baselines with no other kept measurement at their part and step count."""
    group = [e.key.rsplit("/", 1)[0] for e in kept]
    return [e for e in kept if e.method == "baseline" and group.count(e.key.rsplit("/", 1)[0]) == 1]


def _fit(
    wanted: Sequence[Entry], parts: dict[str, Part], budget: float, repeats: int, cost: CostModel
) -> tuple[list[Entry], dict[str, str], list[Entry], dict[str, float], dict[str, int]]:
    """`_greedy`, then again without the baselines it kept alone, until none is alone."""
    alone: dict[str, Entry] = {}
    while True:
        todo = [e for e in wanted if e.key not in alone]
        kept, reasons, dropped, setup, dims_of = _greedy(todo, parts, budget, repeats, cost)
        lonely = _lonely_baselines(kept)
        if not lonely:
            break
        alone.update({e.key: e for e in lonely})
    reasons.update({key: "nothing else at its step count fits" for key in alone})
    return kept, reasons, [*dropped, *alone.values()], setup, dims_of


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
    tries: list[tuple[int, int, tuple[Any, ...]]] = []
    for r in repeats:
        kept, reasons, dropped, setup, dims_of = _fit(wanted, by_name, budget_s, r, cost)
        missing = [e.key for e in dropped if e.critical]
        tries.append((len(missing), r, (kept, reasons, dropped, setup, dims_of)))
        if not missing:
            break
        notes.append(f"repeats={r}: critical entries do not fit: {', '.join(missing)}")
    # the try that misses the fewest critical entries, the first (most repeats) among equals
    _, r, (kept, reasons, dropped, setup, dims_of) = min(tries, key=lambda t: t[0])
    if len(tries) > 1 and tries[-1][0]:
        notes.append(f"repeats={r}: fewer repeats would not fit more critical entries")
    best: dict[str, int] = {}  # parts run in the order of their best-priority entry
    for e in kept:
        best[e.part] = min(best.get(e.part, e.priority), e.priority)
    order = sorted(best, key=best.__getitem__)
    kept.sort(key=lambda e: (order.index(e.part), (e.method or "").startswith(LAST_IN_PART), e.priority))
    for i, e in enumerate(kept):  # reserve: better-priority work in later parts
        later = [f for f in kept[i + 1 :] if f.part != e.part and f.priority < e.priority]
        opened = {f.part for f in later} - {e.part}
        reserve = sum(f.est_s for f in later) + sum(setup[p] for p in opened)
        kept[i] = dataclasses.replace(e, reserve_s=reserve)
    chosen = [
        dataclasses.replace(by_name[n], dims=by_name[n].dims[dims_of[n] :]) if by_name[n].dims else by_name[n]
        for n in order
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
    """The parts: kernels, then per architecture eager and compiled (`make_plan` orders them)."""
    parts = [Part("kernels", "kernels")]
    for arch, dims in part_dims(size).items():
        flops = tuple(step_flops[(arch, d)] for d in dims)
        for mode, backend in (("eager", None), ("compile", compile_backend)):
            parts.append(Part(f"{arch}/{mode}", "profile", arch, backend, dims, flops, weight_gib[arch]))
    return parts


def default_entries(flux_steps: Sequence[int], wan_steps: int, kernel_sizes: Sequence[float]) -> list[Entry]:
    """Every measurement with its priority (see BENCHMARKS.md, "GPU figures: the one command").

    Tiers, most important first (critical: the plan trims repeats before it drops one):
    FLUX eager at `flux_steps[0]`: the baseline and the high ratios (`HIGH_RATIO`), critical;
    the presets on blocks and modules, critical; the kernels at `kernel_sizes[0]`, critical;
    FLUX compiled at `flux_steps[0]` (`COMPILE_CORE`), critical; Wan eager (`CORE`: another
    model, video); FLUX eager at the other step counts (`CORE`); the kernels at the other sizes;
    FLUX eager at `flux_steps[0]`: the other presets, then the peers; the rest of `CORE`
    compiled; everything else eager at the other step counts, then on Wan; the rest compiled.
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

    def kernels(sizes: Sequence[float], critical: bool) -> None:
        nonlocal tier
        for size in sizes:
            for dtype in ("bf16", "fp32"):
                key = f"kernels/{dtype}/{size:g}MB"
                entries.append(Entry(key, "kernels", tier, critical, dtype=dtype, size_mb=size))
                tier += 1

    def rest(methods: Sequence[str], done: Sequence[str]) -> list[str]:
        return [m for m in methods if m not in done]

    main, *others = flux_steps
    add("flux-dev/eager", ("baseline", *HIGH_RATIO), main, critical=True)
    add("flux-dev/eager", PRESETS_CORE, main, critical=True)
    kernels(kernel_sizes[:1], critical=True)
    add("flux-dev/compile", COMPILE_CORE, main, critical=True)
    add("wan2.1-1.3b/eager", CORE, wan_steps)
    for steps in others:
        add("flux-dev/eager", CORE, steps)
    kernels(kernel_sizes[1:], critical=False)
    add("flux-dev/eager", PRESETS_REST, main)
    add("flux-dev/eager", PEERS, main)
    add("flux-dev/compile", rest(CORE, COMPILE_CORE), main)
    for steps in others:
        add("flux-dev/eager", rest(FLUX_METHODS, CORE), steps)
    add("wan2.1-1.3b/eager", rest(WAN_METHODS, CORE), wan_steps)
    add("flux-dev/compile", rest(FLUX_METHODS, CORE), main)
    for steps in others:
        add("flux-dev/compile", FLUX_METHODS, steps)
    add("wan2.1-1.3b/compile", WAN_METHODS, wan_steps)
    return entries
