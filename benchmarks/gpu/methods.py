"""Method specs of the GPU plan: the harness's own, plus ``fixed-timeline`` (a tuned-style schedule).

``fixed-timeline:ratio=8`` stands for what `forecache.tune` writes at 8x: a `Timeline` policy with
a fixed set of computed steps, a Taylor forecaster, the ``blocks`` target. The steps are those that
`forecache.TimelineConfig` with the same fields computes at the row's step count on the step axis
(``round(steps / ratio)`` of them, at least 2; by default the former preset's spread, ``shape=1.3,
order=2, axis="step", lead=1``, denser late, whole steps only: the plan fixes its steps before any
schedule is known), frozen into a `Timeline`: at that step count the decisions are the same as
``timeline:ratio=8,shape=1.3,order=2,axis=step,lead=1``, but through the policy class the tuner's
configs use. Any field of `TimelineConfig` may be given (``ratio``, ``shape``, ``order``,
``target``, ``history_dtype``, ``lead``); every other spec is parsed by
`forecache.eval.methods.parse_method`.

Imports forecache on first use only: the GPU run installs its wheels before anything imports
diffusers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

__all__ = ["FIXED_TIMELINE", "resolve"]

FIXED_TIMELINE = "fixed-timeline"
#: The fields a ``fixed-timeline`` takes unless given: the step-axis spread it was planned with.
FIXED_DEFAULTS = {"shape": "1.3", "order": "2", "axis": "step", "lead": "1"}


@functools.cache
def resolve(text: str, steps: int) -> Any:
    """Return the validated `forecache.eval.methods.MethodSpec` of `text` at `steps` steps.

    Args:
        text: A method spec, e.g. ``"taylorseer:target=blocks"`` or ``"fixed-timeline:ratio=10"``.
        steps: Denoising steps of the measurement (>= 2); fixes a ``fixed-timeline``'s steps.

    Raises:
        ValueError: An unknown method or field, or a value the config refuses (the message names
            the field), or `steps` < 2 for a ``fixed-timeline``.
        TypeError: A value of the wrong type (from the config's own checks).

    """
    from forecache.accel.params import cache_params
    from forecache.accel.policies import Decision, Timeline
    from forecache.eval.methods import make_method, parse_method

    name, _, rest = text.strip().partition(":")
    if name.strip().lower() != FIXED_TIMELINE:
        return parse_method(text)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"{FIXED_TIMELINE}: `steps` must be an int >= 2, got {steps!r}")
    fields = dict(FIXED_DEFAULTS)
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, _, value = item.partition("=")
        fields[key.strip()] = value.strip()
    try:
        shaped = parse_method("timeline:" + ",".join(f"{k}={v}" for k, v in fields.items())).config
    except (ValueError, TypeError) as err:
        raise type(err)(f"{text.strip()!r}: {err}") from err
    computed = [s for s in range(steps) if shaped.policy.decide(s, steps, 0) == Decision.COMPUTE]
    config = dataclasses.replace(shaped, policy=Timeline.from_steps(computed, steps))
    return make_method("cache", cache_params(config), label=text.strip())
