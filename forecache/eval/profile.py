"""Speed and memory profile of full-size (or tiny) random-weight architectures: baseline, presets, peers."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval._private import graphs_compiled, raise_recompile_limit, reset_stateful_cache
from forecache.eval.arch import SIZES, Arch, load_arch
from forecache.eval.bench import DEFAULT_METHODS
from forecache.eval.files import atomic_write_json, atomic_write_text
from forecache.eval.methods import MethodRun, MethodSpec, attached, make_method, parse_method
from forecache.eval.probes import count_host_reads, count_syncs, memory_probe
from forecache.eval.workload import DTYPES

__all__ = [
    "DEFAULT_PROFILE_METHODS",
    "NOTE",
    "ProfileConfig",
    "ProfileResult",
    "ProfileRow",
    "ProfileSession",
    "format_profile",
    "profile",
]

# Not the tuner: profile runs random weights, which have no trajectory worth calibrating on.
DEFAULT_PROFILE_METHODS = ("baseline", *(name for name in DEFAULT_METHODS if name != "tuned"))
NOTE = (
    "Random weights: speed, compute and memory do not depend on the weights; "
    "quality is never reported from random weights."
)
_MiB = 2**20


@dataclass(frozen=True)
class ProfileConfig:
    """What `profile` runs.

    Attributes:
        arch: A shipped architecture name (see `forecache.eval.arch.arch_names`).
        size: ``"full"`` (the published config) or ``"tiny"`` (same class, scaled down for CPU).
        height: Pixels; None: the architecture's default for `size`.
        width: Pixels; None: the default.
        frames: Video frames (``4k + 1``); None: the default. Ignored by image models.
        steps: Denoising steps (default 28); more steps let a cache forecast more of them.
        device: Torch device the model is built on directly.
        dtype: One of `forecache.eval.workload.DTYPES`.
        methods: Method specs (``name[:key=value,...]``); the baseline is always run first.
        warmup: Untimed trajectories per method before the measured ones (default 1).
        repeats: Timed trajectories per method (default 1); rows report their median.
        seed: Seed of the random inputs.
        out: Folder for ``profile.json`` and ``profile.md`` (written atomically); None: print only.
        compile: `torch.compile` backend for diffusers' regional compilation of the blocks
            (``compile_repeated_blocks``, e.g. ``"inductor"``), applied once before all methods;
            None (default) runs eagerly. Each row then reports the graphs compiled during its
            timed trajectories: 0 means no recompilation as steps switch between compute and forecast.

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
    repeats: int = 1
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
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"`repeats` must be an int >= 1, got {self.repeats!r}")
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
        steps: Denoising steps of each trajectory.
        error: Why the method could not run (None: it ran).
        loop_s: Median wall-clock of the timed denoising loops (CUDA-synchronised at both ends).
        loop_s_all: Each timed loop's wall-clock, in order.
        step_s: `loop_s` per step.
        speedup: The baseline's `loop_s` (same steps) over this row's.
        compute_ratio: Baseline work over this method's: forecache.stats block executions for
            presets, transformer FLOPs for peers, 1.0 for the baseline.
        compute_source: How `compute_ratio` was obtained.
        flops: Linear-layer FLOPs of one trajectory (`forecache.calibrate.flops`: ``nn.Linear`` and
            convolutions that ran; attention's own matmuls and element-wise work are not counted).
        flops_ratio: The baseline's `flops` over this row's.
        peak_bytes: Peak memory of the timed loops (see `memory_method`).
        memory_method: CUDA max_memory_allocated, or why it was not measured (CPU).
        cache_bytes: Bytes held by forecache's histories (forecache.stats); None for others.
        cache_fraction: `cache_bytes` over the model's weight bytes.
        syncs_per_step: Host synchronisations per step over the whole loop, the scheduler's
            included (CUDA only; None on CPU).
        host_reads_per_step: Reads of tensor values back to the host inside transformer calls
            (hooks included) per step, on any device (`forecache.eval.probes.count_host_reads`);
            on a GPU each is a synchronisation.
        recompiles: With `ProfileConfig.compile`: graphs dynamo compiled during the timed
            trajectories (after the warm-up and counted ones); None when not compiling.
        warmup_s: Wall-clock of the untimed warm-up trajectories (with `compile`: mostly compilation).
        elapsed_s: Wall-clock of the whole measurement (attach, calibration, every trajectory).

    """

    label: str
    kind: str
    steps: int = 0
    error: str | None = None
    loop_s: float | None = None
    loop_s_all: list[float] = field(default_factory=list)
    step_s: float | None = None
    speedup: float | None = None
    compute_ratio: float | None = None
    compute_source: str = ""
    flops: int | None = None
    flops_ratio: float | None = None
    peak_bytes: int | None = None
    memory_method: str = ""
    cache_bytes: int | None = None
    cache_fraction: float | None = None
    syncs_per_step: float | None = None
    host_reads_per_step: float | None = None
    recompiles: int | None = None
    warmup_s: float | None = None
    elapsed_s: float | None = None


@dataclass
class ProfileResult:
    """A profile: the setting and one row per method.

    Attributes:
        config: The configuration run, as a dict.
        model_class: The diffusers class.
        params: Parameter count of the built model.
        weight_bytes: Bytes of the model's parameters and buffers.
        shapes: Input shapes of one call.
        device_name: The device in words.
        rows: One per method, the baseline first.
        note: The random-weights disclaimer.

    """

    config: dict[str, Any]
    model_class: str
    params: int
    weight_bytes: int
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


def _denoise(model: torch.nn.Module, arch: Arch, inputs: Any, scheduler: Any, steps: int) -> torch.Tensor:
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
    reset_stateful_cache(model)
    return latents


def _peer_setup(spec: MethodSpec, model: torch.nn.Module) -> tuple[MethodSpec, Any]:
    """Return the spec and the attach target of a method when profile drives the bare transformer.

    A method with `Method.transformer_defaults` (cache-dit) takes the transformer itself, with
    those parameters unless given; the others get an object whose `transformer` it is.
    """
    defaults = spec.method.transformer_defaults
    if defaults is not None:
        return make_method(spec.name, {**defaults, **spec.params}, label=spec.label), model
    return spec, SimpleNamespace(transformer=model)


def _eager() -> contextlib.AbstractContextManager[Any]:
    """Run compiled blocks eagerly inside the ``with`` block (the counted trajectory).

    The counters are `TorchFunctionMode`s, which compiled regions do not run through; the timed
    trajectories stay compiled. torch < 2.6 has no stance: there the counted trajectory runs as it is.
    """
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("force_eager") if stance is not None else contextlib.nullcontext()


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


class ProfileSession:
    """One built model, its inputs and scheduler: measure methods on it, at any number of steps.

    Building a full-size model (and compiling it) is the costly part; a session builds it once
    for every method and step count measured on it.
    """

    def __init__(self, config: ProfileConfig) -> None:
        """Build `config.arch` with random weights on the target device (and compile its blocks)."""
        self.config = config
        self.arch = arch = load_arch(config.arch)
        self.device = device = torch.device(config.device)
        dtype = DTYPES[config.dtype]
        self.model = model = arch.build(config.size, device, dtype)
        if config.compile:
            raise_recompile_limit()
            compile_blocks: Any = model.compile_repeated_blocks  # diffusers' ModelMixin
            compile_blocks(backend=config.compile)  # regional: the blocks, not the hooks
        model_config = arch.model_config(config.size)
        defaults = arch.sized(config.size, "defaults")
        height = config.height or int(defaults["height"])
        width = config.width or int(defaults["width"])
        frames = config.frames or int(defaults.get("frames", 1))
        generator = torch.Generator().manual_seed(config.seed)
        self.inputs = arch.make_inputs(
            model_config, config.size, height, width, frames, device=device, dtype=dtype, generator=generator
        )
        self.scheduler = _scheduler(arch)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} (CPU)"
        settings = {**dataclasses.asdict(config), "height": height, "width": width, "frames": frames}
        tensors = [*model.parameters(), *model.buffers()]
        self.result = ProfileResult(
            settings,
            arch.class_name,
            sum(p.numel() for p in model.parameters()),
            sum(t.numel() * t.element_size() for t in tensors),
            self.inputs.shapes,
            name,
        )
        self.baselines: dict[int, ProfileRow] = {}

    def run(self, steps: int) -> None:
        """One denoising trajectory of `steps` steps, without gradients."""
        with torch.no_grad():
            _denoise(self.model, self.arch, self.inputs, self.scheduler, steps)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measure(
        self,
        spec: MethodSpec,
        steps: int | None = None,
        warmup: int | None = None,
        repeats: int | None = None,
    ) -> ProfileRow:
        """Measure one method: `warmup` untimed, one counted and `repeats` timed trajectories.

        The counted trajectory gives FLOPs, forecache.stats, host reads and CUDA synchronisations;
        the timed ones (with nothing attached but the method) give the median wall-clock and peak
        memory. A method that cannot run gives a row with its `error`. Ratios are taken against
        the baseline measured earlier at the same `steps` (measure the baseline first).
        """
        config, cuda = self.config, self.device.type == "cuda"
        steps = config.steps if steps is None else steps
        warmup = config.warmup if warmup is None else warmup
        repeats = config.repeats if repeats is None else repeats
        row = ProfileRow(spec.label, spec.kind, steps)
        begin = time.perf_counter()

        def run() -> None:
            self.run(steps)

        try:
            spec, peer_target = _peer_setup(spec, self.model)
            peer_run = MethodRun(num_inference_steps=steps, run_once=run)
            with attached(spec, self.model, peer_target, peer_run, self.scheduler):
                start = time.perf_counter()
                for _ in range(warmup):
                    run()
                self._sync()
                row.warmup_s = time.perf_counter() - start
                with (
                    _eager(),
                    count_flops(self.model) as count,
                    count_syncs(self.device) as syncs,
                    count_host_reads(self.model) as reads,
                ):
                    run()
                row.flops = count.total
                if spec.kind == "forecache":
                    stats = forecache.stats(self.model)
                    row.compute_ratio, row.cache_bytes = stats.compute_ratio, stats.cache_bytes
                    row.compute_source = f"forecache.stats ({stats.unit} executions)"
                row.syncs_per_step = syncs[0] / steps if cuda else None
                row.host_reads_per_step = reads.total / steps
                graphs = graphs_compiled() if config.compile else 0
                with memory_probe(self.device) as memory:
                    for _ in range(repeats):
                        self._sync()
                        start = time.perf_counter()
                        run()
                        self._sync()
                        row.loop_s_all.append(time.perf_counter() - start)
                row.loop_s = statistics.median(row.loop_s_all)
                row.step_s = row.loop_s / steps
                row.recompiles = graphs_compiled() - graphs if config.compile else None
                row.peak_bytes, row.memory_method = memory.peak_bytes, memory.method
        except Exception as err:  # a method that cannot run is reported, not dropped
            row.error = f"{type(err).__name__}: {err}"
        base = self.baselines.get(steps)
        if spec.kind == "baseline":
            row.compute_ratio, row.compute_source = 1.0, "baseline"
            if row.error is None:
                self.baselines[steps] = base = row
        elif spec.kind == "peer" and row.error is None and base is not None:
            row.compute_ratio = _ratio(base.flops, row.flops)
            row.compute_source = "transformer FLOPs" if row.compute_ratio else ""
        if row.error is None and base is not None:
            row.flops_ratio, row.speedup = _ratio(base.flops, row.flops), _ratio(base.loop_s, row.loop_s)
        row.cache_fraction = _ratio(row.cache_bytes, self.result.weight_bytes)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        row.elapsed_s = time.perf_counter() - begin
        return row


def profile(config: ProfileConfig, on_row: Callable[[ProfileRow], None] | None = None) -> ProfileResult:
    """Build `config.arch` with random weights on the target device and profile each method.

    Every method runs `warmup` trajectories, one counted trajectory (FLOPs, forecache.stats,
    host synchronisations) and `repeats` timed trajectories (median wall-clock, peak memory).
    The baseline runs first, the methods that take the bare transformer (cache-dit) last, the
    others in the order given.

    Args:
        config: What to run.
        on_row: Called with each row as soon as it is measured (e.g. to save progress).

    Returns:
        The `ProfileResult`; also written to ``out/profile.json`` and ``out/profile.md`` when
        `config.out` is set, after each row.

    """
    session = ProfileSession(config)
    result = session.result
    specs = [spec for spec in map(parse_method, config.methods) if spec.kind != "baseline"]
    # cache-dit last: its disable_cache leaves its patched forward on the transformer, and
    # diffusers' cache hooks fail on it afterwards (cache-dit 1.5.3)
    specs.sort(key=lambda s: s.method.transformer_defaults is not None)
    for spec in [parse_method("baseline"), *specs]:
        result.rows.append(session.measure(spec))
        if on_row is not None:
            on_row(result.rows[-1])
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
    header = ["method", "loop s", "step ms", "speedup", "compute", "FLOPs", "source", "peak MiB"]
    header += ["cache MiB", "of weights", "reads/step", "syncs/step", "recompiles"]
    rows = [header]
    for r in result.rows:
        if r.error is not None:
            rows.append([r.label, "error", *([""] * (len(header) - 2))])
            continue
        rows.append(
            [
                r.label,
                _num(r.loop_s, ".3f"),
                _num(None if r.step_s is None else r.step_s * 1e3, ".1f"),
                _num(r.speedup, ".2f") + "x",
                _num(r.compute_ratio, ".2f") + "x",
                _num(r.flops_ratio, ".2f") + "x",
                r.compute_source,
                _num(None if r.peak_bytes is None else r.peak_bytes / _MiB, ".1f"),
                _num(None if r.cache_bytes is None else r.cache_bytes / _MiB, ".2f", "-"),
                _num(None if r.cache_fraction is None else r.cache_fraction * 100, ".3f", "-") + "%",
                _num(r.host_reads_per_step, ".2f"),
                "n/a (CPU)" if cpu else _num(r.syncs_per_step, ".2f"),
                _num(r.recompiles, "d", "-"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    video = len(result.shapes["latents"]) == 5
    lines = [
        f"{cfg['arch']} ({result.model_class}, {cfg['size']}, {result.params / 1e6:.1f}M params, "
        f"{result.weight_bytes / _MiB:.0f} MiB) on {result.device_name}, {cfg['dtype']}, "
        f"{cfg['height']}x{cfg['width']}"
        + (f"x{cfg['frames']} frames" if video else "")
        + f", {cfg['steps']} steps, median of {cfg['repeats']}; inputs {result.shapes}",
        *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
    lines.insert(2, "  ".join("-" * w for w in widths))
    lines += [f"error  {r.label}: {r.error}" for r in result.rows if r.error is not None]
    methods = {r.memory_method for r in result.rows if r.memory_method}
    lines += [f"peak memory: {m}" for m in sorted(methods)]
    lines.append(
        "compute: forecache.stats executions (presets) or transformer FLOPs (peers); FLOPs: linear-layer "
        "FLOPs of the baseline over the method's; reads/step: tensor values read back to the "
        "host inside the transformer calls (a GPU waits on each); syncs/step: CUDA synchronisations "
        "over the whole loop"
    )
    lines.append(NOTE)
    return "\n".join(lines)
