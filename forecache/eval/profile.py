"""Speed and memory profile of full-size (or tiny) random-weight architectures: baseline, presets, peers."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

import forecache
from forecache.eval.bench import DEFAULT_METHODS
from forecache.eval.files import atomic_write_json, atomic_write_text
from forecache.eval.methods import MethodSpec, attached, parse_method
from forecache.eval.peers import PeerRun
from forecache.eval.probes import count_compute, count_host_reads, memory_probe
from forecache.eval.workload import DTYPES
from forecache.testing.arch import SIZES, Arch, LatentInputs, load_arch

__all__ = [
    "DEFAULT_PROFILE_METHODS",
    "NOTE",
    "ProfileConfig",
    "ProfileResult",
    "ProfileRow",
    "format_profile",
    "profile",
]

# bench's methods but cache-dit, whose enable_cache takes a whole pipeline (profile drives a bare
# transformer)
DEFAULT_PROFILE_METHODS = ("baseline", *(m for m in DEFAULT_METHODS if not m.startswith("cachedit.")))
NOTE = (
    "Random weights: speed, compute and memory do not depend on the weights; "
    "quality is never reported from random weights."
)
_MiB = 2**20


@dataclass(frozen=True)
class ProfileConfig:
    """What `profile` runs.

    Attributes:
        arch: A shipped architecture name (see `forecache.testing.arch.arch_names`).
        size: ``"full"`` (the published config) or ``"tiny"`` (same class, scaled down for CPU).
        height: Pixels; None: the architecture's default for `size`.
        width: Pixels; None: the default.
        frames: Video frames (``4k + 1``); None: the default. Ignored by image models.
        steps: Denoising steps (default 28); more steps let a cache forecast more of them.
        device: Torch device the model is built on directly.
        dtype: One of `forecache.eval.workload.DTYPES`.
        methods: Method specs (``name[:key=value,...]``); the baseline is always run first.
        warmup: Untimed trajectories per method before the measured ones (default 1).
        seed: Seed of the random inputs.
        out: Folder for ``profile.json`` and ``profile.md`` (written atomically); None: print only.
        compile: `torch.compile` backend for diffusers' regional compilation of the blocks
            (``compile_repeated_blocks``, e.g. ``"inductor"``), applied once before all methods;
            None (default) runs eagerly. Each row then reports the graphs compiled during its
            timed trajectory: 0 means no recompilation as steps switch between compute and forecast.

    """

    arch: str
    size: str = "full"
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    steps: int = 28
    device: str = "cpu"
    dtype: str = "bfloat16"
    methods: tuple[str, ...] = DEFAULT_PROFILE_METHODS
    warmup: int = 1
    seed: int = 0
    out: str | None = None
    compile: str | None = None

    def __post_init__(self) -> None:
        if self.compile is not None and (not isinstance(self.compile, str) or not self.compile):
            raise ValueError(f"`compile` must be a torch.compile backend name or None, got {self.compile!r}")
        load_arch(self.arch)
        if self.size not in SIZES:
            raise ValueError(f"`size` must be one of {list(SIZES)}, got {self.size!r}")
        for key in ("height", "width", "frames"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{key}` must be an int >= 1 or None, got {value!r}")
        if not isinstance(self.steps, int) or self.steps < 2:
            raise ValueError(f"`steps` must be an int >= 2, got {self.steps!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"`warmup` must be an int >= 0, got {self.warmup!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"`dtype` must be one of {list(DTYPES)}, got {self.dtype!r}")
        for spec in self.methods:
            parse_method(spec)


@dataclass
class ProfileRow:
    """One method's measurements.

    Attributes:
        label: The method spec.
        kind: ``baseline``, ``forecache`` or ``peer``.
        error: Why the method could not run (None: it ran).
        loop_s: Wall-clock of the measured denoising loop (CUDA-synchronised at both ends).
        step_s: `loop_s` per step.
        compute_ratio: Baseline work over this method's: forecache.stats block executions for
            presets, transformer FLOPs for peers, 1.0 for the baseline.
        compute_source: How `compute_ratio` was obtained.
        flops: Transformer FLOPs of one trajectory (matmuls and attention).
        peak_bytes: Peak memory of the measured loop (see `memory_method`).
        memory_method: CUDA max_memory_allocated or CPU peak RSS increase.
        cache_bytes: Bytes held by forecache's histories (forecache.stats); None for others.
        syncs_per_step: Host synchronisations per step over the whole loop, the scheduler's
            included (CUDA only; None on CPU).
        host_reads_per_step: Reads of tensor values back to the host inside transformer calls
            (hooks included) per step, on any device (`forecache.eval.probes.count_host_reads`);
            on a GPU each is a synchronisation.
        recompiles: With `ProfileConfig.compile`: graphs dynamo compiled during the timed
            trajectory (after the warm-up and counted ones); None when not compiling.

    """

    label: str
    kind: str
    error: str | None = None
    loop_s: float | None = None
    step_s: float | None = None
    compute_ratio: float | None = None
    compute_source: str = ""
    flops: int | None = None
    peak_bytes: int | None = None
    memory_method: str = ""
    cache_bytes: int | None = None
    syncs_per_step: float | None = None
    host_reads_per_step: float | None = None
    recompiles: int | None = None


def _graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class ProfileResult:
    """A profile: the setting and one row per method.

    Attributes:
        config: The configuration run, as a dict.
        model_class: The diffusers class.
        params: Parameter count of the built model.
        shapes: Input shapes of one call.
        device_name: The device in words.
        rows: One per method, the baseline first.
        note: The random-weights disclaimer.

    """

    config: dict[str, Any]
    model_class: str
    params: int
    shapes: dict[str, list[int]]
    device_name: str
    rows: list[ProfileRow] = field(default_factory=list)
    note: str = NOTE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def _scheduler(arch: Arch) -> Any:
    """Build the architecture's scheduler: flow-matching Euler (with its shift), or DDIM for DiT."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    if arch.scheduler["type"] == "flow":
        return FlowMatchEulerDiscreteScheduler(shift=float(arch.scheduler.get("shift", 1.0)))
    return DDIMScheduler(beta_schedule="linear", clip_sample=False)


def _denoise(
    model: torch.nn.Module, arch: Arch, inputs: LatentInputs, scheduler: Any, steps: int
) -> torch.Tensor:
    """One trajectory: the transformer called directly, as the pipeline calls it, then the scheduler step."""
    scheduler.set_timesteps(steps, device=inputs.latents.device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)  # as diffusers' pipelines do; spares a timestep lookup
    latents = inputs.latents
    channels = latents.shape[1]
    context = getattr(model, "cache_context", None)
    for t in scheduler.timesteps:
        timestep = (t * arch.timestep_scale).expand(latents.shape[0])
        if arch.inputs != "dit":
            timestep = timestep.to(latents.dtype)
        with context("cond") if context is not None else contextlib.nullcontext():
            out = model(hidden_states=latents, timestep=timestep, **inputs.kwargs, return_dict=False)[0]
        if arch.inputs == "dit":  # learned sigma: the first `in_channels` channels are the noise
            out = out[:, :channels]
        latents = scheduler.step(out, t, latents, return_dict=False)[0]
    reset = getattr(model, "_reset_stateful_cache", None)
    if reset is not None:
        reset()
    return latents


@contextlib.contextmanager
def _count_syncs(device: torch.device) -> Iterator[list[int]]:
    """Count host synchronisations with ``torch.cuda.set_sync_debug_mode("warn")`` (CUDA only)."""
    count = [0]
    if device.type != "cuda":
        yield count
        return
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield count
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    count[0] = sum("synchroniz" in str(w.message) for w in caught)


def _measure(
    model: torch.nn.Module,
    spec: MethodSpec,
    config: ProfileConfig,
    run: Any,
    scheduler: Any,
    baseline: ProfileRow | None,
) -> ProfileRow:
    device = torch.device(config.device)
    cuda = device.type == "cuda"
    row = ProfileRow(spec.label, spec.kind)
    try:
        peer_run = PeerRun(num_inference_steps=run.steps, run_once=run)
        with attached(spec, model, SimpleNamespace(transformer=model), peer_run, scheduler):
            for _ in range(config.warmup):
                run()
            with count_compute(model) as count, _count_syncs(device) as syncs, count_host_reads(model) as rd:
                run()
            row.flops = count.total
            if spec.kind == "forecache":
                stats = forecache.stats(model)
                row.compute_ratio, row.cache_bytes = stats.compute_ratio, stats.cache_bytes
                row.compute_source = f"forecache.stats ({stats.unit} executions)"
            row.syncs_per_step = syncs[0] / config.steps if cuda else None
            row.host_reads_per_step = rd.total / config.steps
            graphs = _graphs_compiled() if config.compile else 0
            with memory_probe(model, device) as memory:
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                run()
                if cuda:
                    torch.cuda.synchronize(device)
                row.loop_s = time.perf_counter() - start
            row.step_s = row.loop_s / config.steps
            row.recompiles = _graphs_compiled() - graphs if config.compile else None
            row.peak_bytes, row.memory_method = memory.peak_bytes, memory.method
    except Exception as err:  # a method that cannot run is reported, not dropped
        row.error = f"{type(err).__name__}: {err}"
    if spec.kind == "baseline":
        row.compute_ratio, row.compute_source = 1.0, "baseline"
    elif spec.kind == "peer" and row.error is None and baseline is not None and baseline.flops and row.flops:
        row.compute_ratio, row.compute_source = baseline.flops / row.flops, "transformer FLOPs"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def profile(config: ProfileConfig) -> ProfileResult:
    """Build `config.arch` with random weights on the target device and profile each method.

    Every method runs `warmup` trajectories, one counted trajectory (FLOPs, forecache.stats,
    host synchronisations) and one timed trajectory (wall-clock and peak memory).

    Returns:
        The `ProfileResult`; also written to ``out/profile.json`` and ``out/profile.md`` when
        `config.out` is set.

    """
    arch = load_arch(config.arch)
    device = torch.device(config.device)
    dtype = DTYPES[config.dtype]
    model = arch.build(config.size, device, dtype)
    if config.compile:
        compile_blocks: Any = model.compile_repeated_blocks  # diffusers' ModelMixin
        compile_blocks(backend=config.compile)  # regional: the blocks, not the hooks
    model_config = arch.model_config(config.size)
    defaults = arch.sized(config.size, "defaults")
    height = config.height or int(defaults["height"])
    width = config.width or int(defaults["width"])
    frames = config.frames or int(defaults.get("frames", 1))
    generator = torch.Generator().manual_seed(config.seed)
    inputs = arch.make_inputs(
        model_config, config.size, height, width, frames, device=device, dtype=dtype, generator=generator
    )

    scheduler = _scheduler(arch)

    def run() -> None:
        with torch.no_grad():
            _denoise(model, arch, inputs, scheduler, config.steps)

    run.steps = config.steps  # type: ignore[attr-defined]
    specs = [parse_method(s) for s in config.methods]
    specs = [parse_method("baseline")] + [s for s in specs if s.kind != "baseline"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} (CPU)"
    settings = {**dataclasses.asdict(config), "height": height, "width": width, "frames": frames}
    result = ProfileResult(
        settings, arch.class_name, sum(p.numel() for p in model.parameters()), inputs.shapes, name
    )
    for spec in specs:
        baseline = result.rows[0] if result.rows else None
        result.rows.append(_measure(model, spec, config, run, scheduler, baseline))
    if config.out:
        out = Path(config.out)
        atomic_write_json(out / "profile.json", result.to_dict())
        atomic_write_text(out / "profile.md", format_profile(result) + "\n")
    return result


def _num(value: float | None, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def format_profile(result: ProfileResult) -> str:
    """Format the table: one row per method, then errors, the memory method and `NOTE`."""
    cfg = result.config
    cpu = not str(cfg["device"]).startswith("cuda")
    header = ["method", "loop s", "step ms", "compute", "source", "peak MiB", "cache MiB"]
    header += ["reads/step", "syncs/step", "recompiles"]
    rows = [header]
    for r in result.rows:
        if r.error is not None:
            rows.append([r.label, "error", *([""] * 8)])
            continue
        rows.append(
            [
                r.label,
                _num(r.loop_s, ".3f"),
                _num(None if r.step_s is None else r.step_s * 1e3, ".1f"),
                _num(r.compute_ratio, ".2f") + "x",
                r.compute_source,
                _num(None if r.peak_bytes is None else r.peak_bytes / _MiB, ".1f"),
                _num(None if r.cache_bytes is None else r.cache_bytes / _MiB, ".2f", "-"),
                _num(r.host_reads_per_step, ".2f"),
                "n/a (CPU)" if cpu else _num(r.syncs_per_step, ".2f"),
                _num(r.recompiles, "d", "-"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        f"{cfg['arch']} ({result.model_class}, {cfg['size']}, {result.params / 1e6:.1f}M params) on "
        f"{result.device_name}, {cfg['dtype']}, {cfg['height']}x{cfg['width']}"
        + (f"x{cfg['frames']} frames" if result.shapes["latents"].__len__() == 5 else "")
        + f", {cfg['steps']} steps; inputs {result.shapes}",
        *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
    lines.insert(2, "  ".join("-" * w for w in widths))
    lines += [f"error  {r.label}: {r.error}" for r in result.rows if r.error is not None]
    methods = {r.memory_method for r in result.rows if r.memory_method}
    lines += [f"peak memory: {m}" for m in sorted(methods)]
    lines.append(
        "reads/step: tensor values read back to the host inside the transformer calls (a GPU waits on each); "
        "syncs/step: CUDA synchronisations over the whole loop"
    )
    lines.append(NOTE)
    return "\n".join(lines)
