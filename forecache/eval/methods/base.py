"""A benchmark method as one object: its fields, how it attaches, its speed knob, its style in figures.

Every method the harness runs (the baseline, forecache's presets and tuner, each peer) is one
`Method` in `METHODS`, registered with `register_method`; ``bench``, ``sweep``, ``profile``, the
matched-speed search, the figures and the command line all read it from there. A new peer is one
module in this package (found when the package is imported) plus its test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from forecache.accel.presets import Knob

__all__ = [
    "KINDS",
    "METHODS",
    "Detach",
    "Knob",
    "Method",
    "MethodRun",
    "MethodSpec",
    "Style",
    "knob_for",
    "method_named",
    "refuse_unknown",
    "register_method",
]

Detach = Callable[[], None]
KINDS = ("baseline", "forecache", "peer")
"""What a method is, for reports and results: no cache, one of forecache's, or a peer's."""


@dataclass
class MethodRun:
    """What a method may use while attaching.

    Attributes:
        num_inference_steps: Steps per generation (MagCache and cache-dit need them up front).
        run_once: Runs one generation (the first batch) on the pipeline as it is; for calibration.
        calls_per_step: Transformer calls per denoising step of the baseline (2: guidance in two
            calls).
        memo: Kept across the settings of one method in one run (MagCache's calibration, the
            tuner's result per ratio).
        info: Filled by the method: calibration results and notes, copied into the report.
        calibration: ``calibration(k)`` returns the pipeline arguments of a call generating `k`
            calibration samples (the benchmark's first `k` conditions; the caller seeds it apart
            from the benchmark's own samples). None where the harness drives a bare transformer.

    """

    num_inference_steps: int
    run_once: Callable[[], object]
    calls_per_step: int = 1
    memo: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    calibration: Callable[[int], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Style:
    """How a method's points look in figures: its own colour and marker (no two methods share both).

    Attributes:
        colour: A matplotlib colour; methods of one family share a hue (forecache blues,
            diffusers oranges, cache-dit greens).
        marker: A matplotlib marker.

    """

    colour: str
    marker: str


@dataclass(frozen=True)
class Method:
    """One benchmark method. Subclasses say how it attaches and which fields it takes.

    Attributes:
        name: The method name in specs, e.g. ``"taylorseer"`` or ``"diffusers.fbcache"``.
        kind: One of `KINDS`.
        description: One line for ``forecache models`` and reports.
        style: Its colour and marker in figures.
        knob: ``knob(config, steps)``: its speed knob at `steps` denoising steps (config: the
            built forecache config, or None); None for a method without one (the baseline).
        preload: Modules to import under the run's log capture (their import-time chatter
            goes to the report's log).
        transformer_defaults: For peers that `profile` attaches to the bare transformer itself
            (cache-dit), the parameters it gets there unless given; None: attached through an
            object with a `transformer` (profile runs these last: see `forecache.eval.profile`).

    """

    name: str
    kind: str
    description: str
    style: Style
    knob: Callable[[Any, int], Knob] | None = None
    preload: tuple[str, ...] = ()
    transformer_defaults: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Method {self.name!r}: `kind` must be one of {list(KINDS)}, got {self.kind!r}")

    def build(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Validate the parameters of a spec; return those to keep and the built forecache config (or None).

        Raises:
            ValueError: An unknown field or a value the method refuses, naming the field.

        """
        raise NotImplementedError

    def attach(
        self, spec: MethodSpec, cache_target: Any, peer_target: Any, run: MethodRun, scheduler: Any
    ) -> Detach:
        """Enable the method; return the function that disables it.

        Args:
            spec: The method's spec (parameters and built config).
            cache_target: What `forecache.apply` receives (a pipeline or a transformer).
            peer_target: What a peer attaches to (an object with a `transformer`).
            run: The run's `MethodRun` (calibration, memo, info).
            scheduler: The scheduler of a loop that calls a bare transformer; None for a pipeline.

        """
        raise NotImplementedError


def refuse_unknown(owner: str, params: Mapping[str, Any], known: list[str]) -> None:
    """Raise `ValueError` naming the first parameter not in `known` and listing the known ones."""
    for key, value in params.items():
        if key not in known:
            raise ValueError(
                f"{owner}: unknown field {key!r} in `params`; fields: {known}, got {key}={value!r}"
            )


@dataclass(frozen=True)
class MethodSpec:
    """One method to benchmark, validated.

    Attributes:
        name: Canonical method name: a key of `METHODS`.
        params: Presets: every field of the built config (nested for ``cache``); other methods:
            the fields given (the tuner: with its defaults).
        label: The row name in reports (the spec text unless a config file names it).
        config: The built forecache config for presets; None for the other methods.

    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    config: Any = None

    @property
    def method(self) -> Method:
        """The registered `Method`."""
        return method_named(self.name)

    @property
    def kind(self) -> str:
        """``"baseline"``, ``"forecache"`` or ``"peer"``."""
        return self.method.kind


METHODS: dict[str, Method] = {}
"""Method name -> `Method`, in registration order (the baseline, forecache's, then the peers)."""


def register_method(method: Method) -> Method:
    """Add `method` to `METHODS` under its name; returns it.

    Raises:
        ValueError: If another method already has that name.

    """
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> Method:
    """Return the registered method `name`.

    Raises:
        ValueError: Listing the registered names.

    """
    if name not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}, got {name!r}")
    return METHODS[name]


def knob_for(name: str, config: Any, steps: int) -> Knob:
    """Return the knob of method `name` at `steps` denoising steps.

    Raises:
        ValueError: If the method has no knob (the baseline), naming the methods that have one.

    """
    method = METHODS.get(name)
    if method is None or method.knob is None:
        with_knob = [n for n, m in METHODS.items() if m.knob is not None]
        raise ValueError(f"`match`: method {name!r} has no speed knob; methods with one: {with_knob}")
    return method.knob(config, steps)
