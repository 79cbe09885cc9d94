"""The one table of presets: a name maps to a function returning a `CacheConfig`.

`forecache.apply` (a preset's name or a config), config files (``{"method": name, "params": ...}``),
the command line (``--methods name:key=value``), the harness's speed knobs and ``forecache sweep``
all read this table. A preset is a function whose parameters are its fields (their defaults the
preset's) and whose body builds a `CacheConfig`; each value is checked once, by the policy,
forecaster or `CacheConfig` that receives it. Registering one (`register_preset`) makes it usable
everywhere::

    @forecache.register_preset("every-other", knob=interval_knob)
    def every_other(order: int = 1) -> forecache.CacheConfig:
        return forecache.CacheConfig(policy=forecache.Interval(every=2), forecaster=forecache.Taylor(order))

The table holds the papers' presets (`TaylorSeerConfig`, `AdamsBashforthConfig`,
`ConfidenceGateConfig`), the measured default (`TimelineConfig`) and ``cache``, the general form
written with nested policy and forecaster entries (`cache_params` is its inverse).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from forecache.accel._checks import check_float
from forecache.accel.config import CacheConfig, check_target
from forecache.accel.forecasters import AdamsBashforth, Damped, Taylor
from forecache.accel.params import build, cache_from_params, cache_params
from forecache.accel.policies import ConfidenceGate, Interval, Shaped
from forecache.accel.targets import runs_partial_steps

__all__ = [
    "PRESETS",
    "AdamsBashforthConfig",
    "ConfidenceGateConfig",
    "Knob",
    "Preset",
    "TaylorSeerConfig",
    "TimelineConfig",
    "canonical_name",
    "preset_named",
    "register_preset",
]

F = TypeVar("F", bound=Callable[..., CacheConfig])


@dataclass(frozen=True)
class Knob:
    """A preset's (or benchmark method's) speed knob, for matched-speed runs.

    `forecache bench --match 2,3,4` turns each method's knob until its compute ratio (linear-layer
    FLOPs of the baseline over the method's) lands on each target. A knob is either discrete (an
    integer range or an ordered list of choices: scanned) or continuous (bisected in log space). In
    both cases larger knob values are expected to skip more.

    Attributes:
        field: The parameter it sets (``"interval"``, ``"threshold"``...).
        values: Discrete knobs: every allowed value, from the one that skips least to the one that
            skips most. Empty for continuous knobs.
        low: Continuous knobs: the smallest value tried (skips least).
        high: Continuous knobs: the largest value tried.
        start: Continuous knobs: the first value tried (the method's own default).
        is_ratio: Continuous knobs whose value is the compute ratio the method aims at
            (``timeline``'s and the tuner's ``ratio``): the search tries each target itself first
            and, below a target, steps as if the ratio grew like the value. It then needs about
            one run per target where a threshold needs three or four (the tuner is the costly one:
            one tuning per run).

    """

    field: str
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    start: float = 0.0
    is_ratio: bool = False

    def __post_init__(self) -> None:
        if not self.values and not 0.0 < self.low < self.start <= self.high:
            raise ValueError(
                f"Knob `{self.field}`: a continuous knob needs 0 < low < start <= high, got "
                f"low={self.low}, start={self.start}, high={self.high}"
            )
        if self.values and self.is_ratio:
            raise ValueError(
                f"Knob `{self.field}`: `is_ratio` is for continuous knobs, got values={self.values}"
            )

    @property
    def discrete(self) -> bool:
        """Whether the knob is scanned over `values` (else bisected between `low` and `high`)."""
        return bool(self.values)

    def describe(self) -> str:
        """One line for reports: the field and its range."""
        if self.discrete:
            shown = self.values if len(self.values) <= 6 else (*self.values[:2], "...", self.values[-1])
            return f"{self.field} in {{{', '.join(map(str, shown))}}}"
        return f"{self.field} in [{self.low:g}, {self.high:g}]"


KnobOf = Callable[[CacheConfig, int], Knob]
"""``knob(config, steps)``: the speed knob of a built config at `steps` denoising steps."""


@dataclass(frozen=True)
class Preset:
    """One entry of the table.

    Attributes:
        name: The name in config files and on the command line (lower case).
        function: Builds the config from the preset's fields (as registered: values it refuses are
            reported with the call).
        aliases: Other names it answers to.
        knob: Its speed knob for matched-speed runs; None for none.
        params_of: For a preset whose fields are free-form (``cache``): the fields that build a
            given config again. None: the function's parameters with their defaults filled in.

    """

    name: str
    function: Callable[..., CacheConfig]
    aliases: tuple[str, ...] = ()
    knob: KnobOf | None = None
    params_of: Callable[[CacheConfig], dict[str, Any]] | None = None

    @property
    def description(self) -> str:
        """The first line of the function's docstring."""
        return (inspect.getdoc(self.function) or self.name).splitlines()[0]

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The named fields of the preset (none for a free-form one)."""
        return {
            name: p
            for name, p in inspect.signature(self.function).parameters.items()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    def build(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], CacheConfig]:
        """Build the config of fields read from a file or the command line.

        Returns:
            Every field (defaults filled in, so an entry written from them reads back equal) and
            the config.

        Raises:
            ValueError: An unknown or missing field, or a value the config refuses (naming the field).
            TypeError: A value of the wrong type.

        """
        kwargs, config = build(self.function, self.name, params)
        if self.params_of is not None:
            return self.params_of(config), config
        defaults = {name: p.default for name, p in self.parameters.items() if p.default is not p.empty}
        return {**defaults, **kwargs}, config


PRESETS: dict[str, Preset] = {}
"""Preset name -> `Preset`, in registration order."""
_ALIASES: dict[str, str] = {}
_LISTENERS: list[Callable[[Preset], None]] = []


_FIELD_ERROR = re.compile(r"\w+: `(\w+)` ")
"""How the checks of `forecache.accel._checks` start a refusal: ``Owner: `field` must be ...``."""


def _labelled(function: F, renamed: Mapping[str, str]) -> F:
    """Wrap `function` so that a value it refuses is reported under the preset's own field.

    A refusal of a field the preset passes on (``order`` to `Taylor`, ``interval`` to `Interval`
    as its ``every``: `renamed`) names the preset and its field; any other is prefixed with the
    preset's call.
    """
    label = function.__name__
    signature = inspect.signature(function)

    @functools.wraps(function)
    def preset(*args: Any, **kwargs: Any) -> CacheConfig:
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as err:
            message = str(err)
            if message.startswith(label):
                raise
            try:
                given = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                raise err from None
            match = _FIELD_ERROR.match(message)
            fields = [key for key in given if match and renamed.get(key, key) == match.group(1)]
            if match and len(fields) == 1:
                raise type(err)(f"{label}: `{fields[0]}` {message[match.end() :]}") from err
            call = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise type(err)(f"{label}({call}): {message}") from err

    return preset  # type: ignore[return-value]


def register_preset(
    name: str,
    *,
    aliases: tuple[str, ...] = (),
    knob: KnobOf | None = None,
    params_of: Callable[[CacheConfig], dict[str, Any]] | None = None,
    renamed: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Callable[[F], F]:
    """Add a preset to the table (a function decorator): `apply`, files, the CLI and the harness find it.

    Args:
        name: The name users write (lower case, no spaces), e.g. ``"taylorseer"``.
        aliases: Other names for it. Default none.
        knob: ``knob(config, steps)``: its speed knob, for ``forecache bench --match``. Default
            None (the preset is then run as given).
        params_of: See `Preset.params_of`. Default None.
        renamed: The preset's fields passed on under another name, e.g. ``{"interval": "every"}``
            (`Interval.every`), so a refused value is reported under the preset's name. Default
            none: every field keeps its name.
        replace: Allow `name` (or an alias) to move to this function. Default False: taking a name
            another preset holds raises.

    Returns:
        A decorator returning the function wrapped so a refused value is reported with its call.

    Raises:
        ValueError: If a name is not lower-case without spaces, or is taken and `replace` is False.

    """
    names = (name, *aliases)
    for taken in names:
        if not isinstance(taken, str) or not taken or taken != taken.strip().lower() or " " in taken:
            raise ValueError(f"preset names must be non-empty lower-case strings, got {taken!r}")

    def decorator(function: F) -> F:
        holders = {holder for n in names if (holder := n if n in PRESETS else _ALIASES.get(n))}
        others = sorted(
            h for h in holders if getattr(PRESETS[h].function, "__wrapped__", None) is not function
        )
        if others and not replace:
            raise ValueError(
                f"preset name {name!r} (or an alias {list(aliases)}) is already registered to {others}; "
                "pass replace=True to move it"
            )
        wrapped = _labelled(function, renamed or {})
        entry = Preset(name, wrapped, tuple(aliases), knob, params_of)
        for listener in _LISTENERS:  # first: a listener that refuses the name leaves the table as it was
            listener(entry)
        for alias in [a for a, owner in _ALIASES.items() if owner == name]:
            del _ALIASES[alias]
        PRESETS[name] = entry
        _ALIASES.update(dict.fromkeys(aliases, name))
        return wrapped

    return decorator


def on_register(listener: Callable[[Preset], None]) -> None:
    """Call `listener` with every preset in the table, now and whenever one is registered."""
    _LISTENERS.append(listener)
    for entry in list(PRESETS.values()):
        listener(entry)


def canonical_name(name: str) -> str:
    """Return the name `name` stands for: lower case, a preset's alias resolved."""
    return _ALIASES.get(name.lower(), name.lower())


def preset_named(name: str) -> Preset:
    """Return the preset `name` (or an alias of it, in any case) stands for.

    Raises:
        TypeError: If `name` is not a string.
        ValueError: Listing the preset names.

    """
    if not isinstance(name, str):
        raise TypeError(f"`method` must be a string, one of {list(PRESETS)}, got {name!r}")
    entry = PRESETS.get(canonical_name(name))
    if entry is None:
        raise ValueError(f"`method` must be one of {list(PRESETS)}, got {name!r}")
    return entry


def interval_knob(config: CacheConfig, steps: int) -> Knob:
    """Return the interval between computed steps as the knob (1 to `steps`)."""
    return Knob("interval", values=tuple(range(1, max(steps, 2) + 1)))


def threshold_knob(config: CacheConfig, steps: int) -> Knob:
    """Return a judging policy's threshold as the knob, starting from its own value."""
    return Knob("threshold", low=0.005, high=10.0, start=config.policy.threshold)  # type: ignore[attr-defined]


def compute_ratio_knob(start: float, steps: int) -> Knob:
    """Return the compute ratio a method aims at as its knob (1.2x to `steps`x), first tried at `start`."""
    return Knob("ratio", low=1.2, high=float(steps), start=start, is_ratio=True)


def ratio_knob(config: CacheConfig, steps: int) -> Knob:
    """Return a schedule's compute ratio as the knob, starting from its own value."""
    return compute_ratio_knob(config.policy.ratio, steps)  # type: ignore[attr-defined]


def cache_knob(config: CacheConfig, steps: int) -> Knob:
    """Return the general form's knob: its policy's interval or its judging policy's threshold.

    Raises:
        ValueError: If the policy has neither.

    """
    fields = inspect.signature(type(config.policy)).parameters
    if "interval" in fields:
        return interval_knob(config, steps)
    if "threshold" in fields:
        return threshold_knob(config, steps)
    raise ValueError(
        f"cache: `policy` {type(config.policy).__name__} has no knob to match (matching tunes an "
        "interval or a threshold); give the steps it computes, or drop --match"
    )


@register_preset("taylorseer", knob=interval_knob, renamed={"interval": "every"})
def TaylorSeerConfig(
    interval: int = 5,
    order: int = 2,
    warmup: int = 3,
    cooldown: int = 1,
    target: str = "modules",
    coordinate: Literal["step", "timestep"] = "step",
    history_dtype: str = "auto",
) -> CacheConfig:
    """TaylorSeer ("From Reusing to Forecasting", arXiv:2503.06923) as a preset.

    Caches the attention and feed-forward outputs of every block and forecasts them with a
    Taylor series over the step index; the blocks run at warm-up, every `interval`-th step and at
    the last `cooldown` steps. The paper reports 4.99x fewer FLOPs on FLUX.1-dev without
    ImageReward loss (3.53x wall clock).

    Args:
        interval: Steps between full computations (>= 1). Default 5. Larger is faster and lossier.
        order: Taylor order in [0, 8]. Default 2. 0 is plain reuse.
        warmup: Leading full steps (>= 1). Default 3.
        cooldown: Trailing full steps (>= 0). Default 1.
        target: See `CacheConfig.target`. Default ``"modules"`` (the paper's choice).
        coordinate: ``"step"`` (default, the paper's) or ``"timestep"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    Returns:
        The `CacheConfig`: an `Interval` policy, a `Taylor` forecaster.

    """
    return CacheConfig(
        policy=Interval(every=interval, warmup=warmup, cooldown=cooldown),
        forecaster=Taylor(order=order, coordinate=coordinate),
        target=target,
        history_dtype=history_dtype,
    )


@register_preset(
    "ab", aliases=("adams-bashforth", "ab-cache"), knob=interval_knob, renamed={"interval": "every"}
)
def AdamsBashforthConfig(
    interval: int = 3,
    order: int = 2,
    warmup: int = 2,
    cooldown: int = 1,
    target: str = "output",
    coordinate: Literal["step", "timestep"] = "timestep",
    history_dtype: str = "auto",
) -> CacheConfig:
    """AB-Cache (arXiv:2504.10540) as a preset: k-th order extrapolation on the real timestep grid.

    The cached output is computed on a fixed interval and extrapolated in between with
    Adams-Bashforth / polynomial weights of the non-uniform timestep grid (error O(h^k)). The
    paper reports about 3x on FLUX and HunyuanVideo.

    Args:
        interval: Steps between full computations (>= 1). Default 3.
        order: Extrapolation order k in [1, 8]. Default 2. 1 is reuse.
        warmup: Leading full steps (>= 1). Default 2.
        cooldown: Trailing full steps (>= 0). Default 1.
        target: See `CacheConfig.target`. Default ``"output"`` (the denoiser output, as the paper).
        coordinate: ``"timestep"`` (default) or ``"step"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    Returns:
        The `CacheConfig`: an `Interval` policy, an `AdamsBashforth` forecaster.

    """
    return CacheConfig(
        policy=Interval(every=interval, warmup=warmup, cooldown=cooldown),
        forecaster=AdamsBashforth(order=order, coordinate=coordinate),
        target=target,
        history_dtype=history_dtype,
    )


@register_preset("cg", aliases=("confidence-gate", "cg-taylor"), knob=threshold_knob)
def ConfidenceGateConfig(
    threshold: float = 0.1,
    order: int = 1,
    max_consecutive: int = 4,
    warmup: int = 2,
    cooldown: int = 1,
    probe_blocks: int = 1,
    reduce_across_ranks: bool = False,
    target: str = "blocks",
    coordinate: Literal["step", "timestep"] = "step",
    history_dtype: str = "auto",
) -> CacheConfig:
    """CG-Taylor ("Forecasting When to Forecast") as a preset.

    The first `probe_blocks` blocks always run; their Taylor forecast is compared with their real
    output, and when the relative L1 error is under `threshold` the rest of the stack is forecast
    (the residual of the last block), otherwise everything runs. The paper reports 3.17x on FLUX,
    2.36x on DiT and 4.14x on Wan with negligible quality drop.

    Args:
        threshold: Relative L1 error in (0, 10]. Default 0.1. Larger is faster and lossier.
        order: Taylor order in [0, 8]. Default 1.
        max_consecutive: Cap on forecasts in a row (>= 1). Default 4.
        warmup: Leading full steps (>= 1). Default 2.
        cooldown: Trailing full steps (>= 1). Default 1.
        probe_blocks: Blocks that always run (>= 1). Default 1.
        reduce_across_ranks: All-reduce the gate's error over the default `torch.distributed`
            group (a sequence sharded by other means than diffusers). Under diffusers' context
            parallelism the gate reduces over the context-parallel ranks by itself. Default False.
        target: See `CacheConfig.target`. Default ``"blocks"``.
        coordinate: ``"step"`` (default) or ``"timestep"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.

    Returns:
        The `CacheConfig`: a `ConfidenceGate` policy, a `Taylor` forecaster.

    """
    return CacheConfig(
        policy=ConfidenceGate(
            threshold=threshold,
            max_consecutive=max_consecutive,
            warmup=warmup,
            cooldown=cooldown,
            probe_blocks=probe_blocks,
            reduce_across_ranks=reduce_across_ranks,
        ),
        forecaster=Taylor(order=order, coordinate=coordinate),
        target=target,
        history_dtype=history_dtype,
    )


LEAD_SLOPE = 0.8
"""`TimelineConfig`'s slope factor after its lead steps: a slope carried over a stretch of 5-6 steps
overshoots a little (`Damped`; measured: BENCHMARKS.md, "A partial lead step")."""


@register_preset("timeline", knob=ratio_knob)
def TimelineConfig(
    ratio: float = 5.0,
    shape: float = 1.0,
    order: int = 1,
    target: str = "blocks",
    history_dtype: str = "auto",
    axis: str = "noise",
    lead: float | None = None,
) -> CacheConfig:
    """Return the measured default: a partial second step, the rest spread over the noise levels.

    No paper's preset but what the shipped reference models measured best without tuning (see
    BENCHMARKS.md, "An untuned default on the noise levels" and "A partial lead step"): about
    ``n / ratio`` of ``n`` steps computed. The first step, and the second as a partial step that
    runs the first and last quarter of the block stack and forecasts the middle half (a lead:
    some models' first output, from pure noise, is no guide to the next steps; it counts as half a
    step in the ratio). The others at the steps nearest the noise levels ``(1 - u) ** shape`` for
    ``u`` evenly spaced: by default evenly spaced noise levels (a `Shaped` policy on
    ``axis="noise"``, where the scheduler's timesteps say each step is, so a shifted flow-matching
    schedule, FLUX's, SD3's or Wan's, gets the same spread of noise levels as an unshifted one);
    the last step is forecast. The block stack's residual is forecast linearly (`Damped`): after the
    lead steps, the slope from step 0 across them in full; after every later computed step, the
    slope between the last two computed steps times `LEAD_SLOPE` (0.8; a full slope overshoots a
    stretch of 5-6 steps on some models). Every step count gets about the same compute ratio: at 28
    and 50 steps, 5 and 9 full steps with the partial one, 5.03x and 5.20x of the scenes model's
    FLOPs, holding 41.1 and 46.0 dB on its 64 held-out prompts (reuse across the lead: 37.1 and
    42.8 dB); the worst of four reference models 36.1 and 40.8 dB on 8 samples (reuse across the
    lead: 35.7 and 40.6). A model whose first output, from pure noise, is no guide to the next
    steps wants reuse across the lead: ``order=0`` reuses throughout, and `forecache.tune` fits a
    damping per stretch. For the most out of one model, tune it. The default before the lead is
    ``TimelineConfig(ratio=5.5, lead=1)``; the one before that, positions on the step index denser
    late, ``TimelineConfig(ratio=5.5, shape=1.3, order=2, axis="step", lead=1)``.

    Args:
        ratio: Steps over computed steps in (1, 50], the partial step counted as half a step.
            Default 5.0. Larger is faster and lossier.
        shape: Density exponent (> 0): 1 spaces computed steps evenly along `axis`, larger puts
            more of them late (low noise), smaller early. Default 1.0.
        order: Taylor order in [0, 8]. Default 1: with a lead (`lead` > 1) the damped slopes above,
            without one `Taylor` order 1; order 0 reuses; order 2 and up are `Taylor`, their
            derivatives across the lead steps too.
        target: See `CacheConfig.target`. Default ``"blocks"``.
        history_dtype: See `CacheConfig.history_dtype`. Default ``"auto"``.
        axis: ``"noise"`` (default) or ``"step"`` (the normalised step index), see `Shaped`.
        lead: The first steps always computed, counted in the ratio (a number >= 1; a fractional
            part is a partial step running that fraction of the blocks, see `Shaped`). Default
            None: 1.5 with a target that runs part of the block stack (``"blocks"``), else 1.
            ``lead=2`` computes the second step fully, in place of the spread's last step: the
            digit models lose 6-13 dB with it (BENCHMARKS.md, "A lead step").

    Returns:
        The `CacheConfig`: a `Shaped` policy, a `Damped` forecaster (`Taylor` without a lead or
        with an order other than 1).

    """
    check_float("TimelineConfig", "ratio", ratio, 1.0, 50.0)  # the preset's range: `Shaped` allows more
    check_target("TimelineConfig", target)
    if lead is None:
        lead = 1.5 if runs_partial_steps(target) else 1.0
    policy = Shaped(ratio=ratio, shape=shape, axis=axis, lead=lead)
    lead_slope = order == 1 and policy.lead > 1
    forecaster: Any = (
        Damped(damping=(0.0,) + (1.0,) * (math.ceil(policy.lead) - 1) + (LEAD_SLOPE,))
        if lead_slope
        else Taylor(order=order)
    )
    return CacheConfig(policy=policy, forecaster=forecaster, target=target, history_dtype=history_dtype)


@register_preset("cache", knob=cache_knob, params_of=cache_params)
def cache(**params: Any) -> CacheConfig:
    """Return the general policy x forecaster x target form, from nested entries or flat fields.

    Args:
        **params: ``policy`` and ``forecaster`` as ``{"type": name, **fields}`` (or a bare name),
            `CacheConfig`'s own fields, and any field of the policy or forecaster given flat
            (``cache:policy=gate,threshold=0.2``). See `forecache.accel.params.cache_from_params`.

    Returns:
        The `CacheConfig`.

    """
    return cache_from_params(params)
