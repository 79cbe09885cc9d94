"""The validated settings of a benchmark: what to generate (`RunConfig`) and what to run (`BenchConfig`).

Every check lives here, in frozen dataclasses whose errors name the field, the allowed values and
the value given; the command line only turns strings into these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from forecache.eval.methods import (
    BASELINE,
    METHODS,
    MethodSpec,
    knob_for,
    load_methods,
    make_method,
    parse_method,
)
from forecache.eval.workload import DTYPES, OUTPUTS

__all__ = ["DEFAULT_METHODS", "DEFAULT_TARGETS", "BenchConfig", "RunConfig", "check_device"]

DEFAULT_METHODS: tuple[str, ...] = (
    "tuned",
    "timeline",
    "taylorseer",
    "ab",
    "cg",
    "diffusers.taylorseer",
    "diffusers.fbcache",
    "diffusers.magcache",
    "cachedit.dbcache",
    "cachedit.foca",
    "cachedit.dmd",
    "cachedit.scm",
)
"""forecache's tuner (calibrated on 4 samples of other seeds), its presets and every peer: diffusers'
three caches, cache-dit's DBCache with each calibrator (TaylorSeer, FoCa, DMD) and with its static
step masks."""

DEFAULT_TARGETS: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0)
"""Target compute ratios of the default matched-speed run."""


def _positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: `{name}` must be an int >= {minimum}, got {value!r}")


def check_device(owner: str, device: str) -> None:
    """Refuse a device string torch cannot parse, or an accelerator this machine's torch lacks.

    Raises:
        ValueError: One line naming `device`, what is available and the value given.

    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{owner}: `device` must be a torch device like 'cpu' or 'cuda:0', got {device!r}"
        ) from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
            raise ValueError(
                f"{owner}: `device` {device!r} is not available here (torch {torch.__version__}, {built}); "
                "use 'cpu' or run on a machine with a CUDA GPU"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"{owner}: `device` must be one of {[f'cuda:{i}' for i in range(count)]}, got {device!r}"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{owner}: `device` 'mps' is not available on this machine, got {device!r}")


@dataclass(frozen=True)
class RunConfig:
    """What to generate and how to time it (shared by `BenchConfig` and `SweepConfig`).

    Args:
        model: None (default: the shipped ``flux-digits`` reference model), a pipeline instance, a
            reference name, a name from a registered source (`workload.register_pipeline_source`),
            a local pipeline folder, or a Hub id already in the local cache (never downloaded).
            Pipelines without a `transformer` (UNet pipelines) are refused.
        prompts: ``"drawbench"`` or a text file, for text-to-image pipelines (default drawbench);
            must be None for class-conditional pipelines (labels ``i % 10``).
        steps: Denoising steps (>= 1). Default 28 (FLUX.1-dev's default).
        height: Image height for pipelines that take one. Default None (the pipeline's).
        width: Image width. Default None.
        frames: Video frames (``num_frames``) for video pipelines. Default None (the pipeline's).
        guidance_scale: Classifier-free guidance scale. Default None (the pipeline's).
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        device: Torch device. Default ``"cpu"``; an accelerator this torch lacks is refused.
        output: ``"images"`` (default: decoded images or video frames, scored against the
            baseline) or ``"latent"`` (``output_type="latent"``: no decoding, speed and compute only).
        seeds: One sample per seed; the same seeds for every method. Default 0..7.
        batch_size: Samples per pipeline call (>= 1). Default 8.
        repeats: Timed runs per method (>= 0; 0: not timed); the median is reported. Default None:
            3, or 0 in a matched-speed run (its numbers are the compute ratio and the quality).
        warmup: Untimed runs per method before timing (>= 1); the first is also the measured run
            (outputs, FLOPs, statistics). Default 1.
        threads: CPU threads for torch during the run (restored afterwards). Default None: 1 for
            the shipped reference models and registered sources on CPU (their 64-token matmuls only lose to
            thread synchronisation), torch's own choice otherwise.
        progress: Show progress bars (one per level). Default True.
        verbose: Let third-party logs and warnings (cache-dit, diffusers) reach the terminal instead
            of the report's ``log.txt``. Default False.

    """

    model: Any = None
    prompts: str | None = None
    steps: int = 28
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    guidance_scale: float | None = None
    dtype: str = "float32"
    device: str = "cpu"
    output: str = "images"
    seeds: tuple[int, ...] = tuple(range(8))
    batch_size: int = 8
    repeats: int | None = None
    warmup: int = 1
    threads: int | None = None
    progress: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _positive_int(owner, "steps", self.steps)
        _positive_int(owner, "batch_size", self.batch_size)
        _positive_int(owner, "warmup", self.warmup)
        if self.repeats is not None:
            _positive_int(owner, "repeats", self.repeats, 0)
        for name in ("height", "width"):
            if getattr(self, name) is not None:
                _positive_int(owner, name, getattr(self, name), 8)
        if self.frames is not None:
            _positive_int(owner, "frames", self.frames)
        if (
            self.model is not None
            and not isinstance(self.model, str)
            and not hasattr(self.model, "transformer")
        ):
            raise ValueError(f"{owner}: `model` must be a name, a folder or a pipeline, got {self.model!r}")
        if self.threads is not None:
            _positive_int(owner, "threads", self.threads)
        if self.dtype not in DTYPES:
            raise ValueError(f"{owner}: `dtype` must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"{owner}: `output` must be one of {list(OUTPUTS)}, got {self.output!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"{owner}: `seeds` must be a non-empty list of ints >= 0, got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"{owner}: `seeds` must be distinct, got {self.seeds!r}")
        if self.guidance_scale is not None and (
            isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float))
        ):
            raise ValueError(
                f"{owner}: `guidance_scale` must be a float or None, got {self.guidance_scale!r}"
            )
        check_device(owner, self.device)

    @property
    def timed_repeats(self) -> int:
        """The timed runs per method this config resolves to (see `repeats`)."""
        return 3 if self.repeats is None else self.repeats


def _given_fields(text: str) -> set[str]:
    """Return the override keys written in a spec string (``taylorseer:interval=4`` -> ``{"interval"}``)."""
    rest = text.partition(":")[2]
    return {item.partition("=")[0].strip() for item in rest.split(",") if "=" in item}


@dataclass(frozen=True)
class BenchConfig(RunConfig):
    """A benchmark: `RunConfig` plus the methods, the matched-speed targets and where to write.

    Args:
        methods: Method specs (``"taylorseer:order=1"``, ``"diffusers.fbcache"``...). Default
            `DEFAULT_METHODS` (the presets and every peer) unless `config_files` are given.
        config_files: Config files whose methods are added (JSON, or YAML with PyYAML).
        match: Target compute ratios (each > 1): every method's knob (`forecache.eval.methods.Method.knob`)
            is tuned to land on each, and quality is compared at equal compute. Default None:
            `DEFAULT_TARGETS` when neither `methods` nor `config_files` is given, else no matching
            (each method runs as specified). ``()`` turns matching off.
        tolerance: Relative distance from a target within which a setting counts as on target
            (else "cannot reach"). Default 0.10.
        out: Folder for the run (see `forecache.eval.store`): a new or empty one (a folder that
            holds anything is refused unless `resume` names it); None writes nothing. Checked
            writable before anything runs.
        resume: The folder of an earlier run with the same settings (config files compared by
            content): that run's finished rows are kept and only the rest runs; the run continues
            in that folder (`out` must be None or the same). It must exist.

    """

    methods: tuple[str, ...] | None = None
    config_files: tuple[str, ...] = ()
    match: tuple[float, ...] | None = None
    tolerance: float = 0.10
    out: str | None = None
    resume: str | None = None
    specs: tuple[MethodSpec, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "config_files", tuple(str(c) for c in self.config_files))
        default_run = self.methods is None and not self.config_files
        methods = self.methods
        if methods is None:
            methods = () if self.config_files else DEFAULT_METHODS
        object.__setattr__(self, "methods", tuple(methods))
        match = self.match if self.match is not None else (DEFAULT_TARGETS if default_run else ())
        try:
            targets = tuple(float(t) for t in match)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"BenchConfig: `match` must be numbers > 1 like (2, 3, 4), got {match!r}"
            ) from err
        if any(not math.isfinite(t) or t <= 1.0 for t in targets) or len(set(targets)) != len(targets):
            raise ValueError(
                f"BenchConfig: `match` must be distinct numbers > 1 like (2, 3, 4), got {match!r}"
            )
        object.__setattr__(self, "match", targets)
        if (
            isinstance(self.tolerance, bool)
            or not isinstance(self.tolerance, (int, float))
            or not (0.0 < self.tolerance < 1.0)
        ):
            raise ValueError(f"BenchConfig: `tolerance` must be a float in (0, 1), got {self.tolerance!r}")
        if self.resume is not None and self.out is not None and str(self.out) != str(self.resume):
            raise ValueError(
                "BenchConfig: `out` must be None or the `resume` folder when resuming, got "
                f"out={self.out!r}, "
                f"resume={self.resume!r}"
            )
        specs = [make_method(BASELINE)]
        for m in methods:
            spec = parse_method(m) if isinstance(m, str) else m
            if targets and isinstance(m, str):
                self._check_knob_free(spec, m)
            specs.append(spec)
        for path in self.config_files:
            specs += load_methods(path)
        if targets:
            for spec in specs[1:]:
                if spec.method.knob is None:
                    with_knob = [name for name, method in METHODS.items() if method.knob is not None]
                    raise ValueError(
                        f"BenchConfig: `match` needs methods with a speed knob ({with_knob}), "
                        f"got {spec.label!r}"
                    )
        labels = [s.label for s in specs]
        duplicate = next((label for label in labels if labels.count(label) > 1), None)
        if duplicate is not None:
            raise ValueError(f"BenchConfig: `methods` must have distinct labels, got {duplicate!r} twice")
        object.__setattr__(self, "specs", tuple(specs))

    def _check_knob_free(self, spec: MethodSpec, text: str) -> None:
        knob = knob_for(spec.name, spec.config, self.steps)
        if knob.field in _given_fields(text):
            raise ValueError(
                f"BenchConfig: with `match`, `{knob.field}` is what the harness tunes; remove it from "
                f"{text!r} (or set match=() to run the method as given)"
            )

    @property
    def timed_repeats(self) -> int:
        """Timed runs per method: `repeats`, else 0 in a matched-speed run and 3 otherwise."""
        if self.repeats is not None:
            return self.repeats
        return 0 if self.match else 3
