"""Policies: at which denoising steps the cached part of the transformer really runs.

Each policy is a frozen spec registered by name (`register_policy`). `Interval` and `StepMask`
decide before the step starts, as does `Timeline` (what the tuner writes), which places computed
steps on the normalised timeline so a schedule holds at any step count; `ConfidenceGate` runs its
probe blocks first and decides from the error of the probe's forecast (CG-Taylor, "Forecasting
When to Forecast"); `Verify` (after SpeCa) sums that error over a run, and can check the stack's
own input instead of a probe block where the engine lets it.
"""

from forecache.accel.policies.base import POLICIES, Decision, Policy, in_cooldown, register_policy
from forecache.accel.policies.confidence_gate import ConfidenceGate
from forecache.accel.policies.interval import Interval
from forecache.accel.policies.step_mask import StepMask
from forecache.accel.policies.timeline import Shaped, Timeline
from forecache.accel.policies.verify import Verify

__all__ = [
    "POLICIES",
    "ConfidenceGate",
    "Decision",
    "Interval",
    "Policy",
    "Shaped",
    "StepMask",
    "Timeline",
    "Verify",
    "in_cooldown",
    "register_policy",
]
