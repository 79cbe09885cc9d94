"""The catalog's case type, its registry and the small input helpers the family modules share."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import torch

__all__ = [
    "CASES",
    "FLOW",
    "Inputs",
    "TimeFn",
    "TinyModel",
    "case",
    "output_tensors",
    "randn",
    "wake",
]

#: FLUX-style pipelines pass ``timestep / 1000`` (flow time in [0, 1]); the model scales it back.
FLOW = 1e-3

Inputs = dict[str, Any]
#: ``make_time(value, batch)``: the time keyword arguments of one call from the model-scale time value.
TimeFn = Callable[[float, int], dict[str, Any]]


@dataclass(frozen=True)
class TinyModel:
    """A tiny transformer and how to call it at step ``i`` of an ``n``-step denoising loop.

    Attributes:
        model: The diffusers transformer, in eval mode, float32, on CPU.
        make_inputs: ``make_inputs(batch_size, generator)`` returns the keyword arguments of one call
            except the time argument(s) and ``return_dict``.
        timestep_scale: The model's time is ``timestep_offset + timestep_scale * t`` for a scheduler
            timestep ``t`` falling from 1000 (FLUX-style models take ``t / 1000``: scale 1e-3).
        timestep_offset: See `timestep_scale`; ``1.0`` with scale ``-1e-3`` is a time that rises from 0
            to 1 over the generation (Lumina, Z-Image, Ideogram 4 pipelines pass ``1 - t / 1000``).
        time_arg: The forward argument that carries the (main) denoising time, e.g. ``"timestep"``,
            ``"timesteps"`` (HiDream), ``"t"`` (Z-Image), ``"vision_timesteps"`` (Cosmos 3).
        make_time: Builds the time keyword arguments from the model-scale value and the batch size when
            the default (``{time_arg: torch.full((batch,), value)}``) does not fit: per-token or
            per-frame timesteps, or a second time argument (``timestep_r``, ``r_timestep``, ``sigma``).
        guidance: The inputs carry a distilled guidance scale (``guidance``), as FLUX-dev-style models need.
        max_batch: The largest batch `make_inputs` supports (None: any). Cosmos 3 packs one sample
            per sequence.
        family: The catalog module that builds it (``"flux"``, ``"wan"``, ...).

    """

    model: torch.nn.Module
    make_inputs: Callable[[int, torch.Generator], Inputs]
    timestep_scale: float = 1.0
    timestep_offset: float = 0.0
    time_arg: str = "timestep"
    make_time: TimeFn | None = None
    guidance: bool = False
    max_batch: int | None = None
    family: str = ""

    def model_time(self, step: int, num_steps: int) -> float:
        """Return the model-scale time of call ``step`` of ``num_steps`` (``t`` falls 1000 -> 1000/n)."""
        if not 0 <= step < num_steps:
            raise ValueError(f"`step` must be in [0, {num_steps}), got {step}")
        t = 1000.0 * (num_steps - step) / num_steps
        return self.timestep_offset + self.timestep_scale * t

    def time_kwargs(self, step: int, num_steps: int, batch_size: int) -> dict[str, Any]:
        """Return the time keyword argument(s) of call ``step`` of ``num_steps`` at ``batch_size``."""
        value = self.model_time(step, num_steps)
        if self.make_time is not None:
            return self.make_time(value, batch_size)
        return {self.time_arg: torch.full((batch_size,), value)}

    def call(self, inputs: Mapping[str, Any], step: int, num_steps: int, batch_size: int) -> Any:
        """Run the model on `inputs` at call ``step`` of ``num_steps``, ``return_dict=False`` if accepted."""
        kwargs = {**inputs, **self.time_kwargs(step, num_steps, batch_size)}
        if "return_dict" in inspect.signature(self.model.forward).parameters:
            kwargs["return_dict"] = False
        return self.model(**kwargs)


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor in a model's return value (tuples, lists, dicts and output dataclasses), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for value in output.values() for t in output_tensors(value)]
    if is_dataclass(output) and not isinstance(output, type):
        return [t for f in fields(output) for t in output_tensors(getattr(output, f.name))]
    if isinstance(output, (tuple, list)):
        return [t for value in output for t in output_tensors(value)]
    return []


def wake(model: torch.nn.Module, *fragments: str, std: float = 0.02) -> torch.nn.Module:
    """Fill the all-zero parameters whose names contain one of `fragments` with ``N(0, std)``.

    Zero-initialised output layers and gates (adaLN-zero, gated cross-attention) make a random model
    ignore its time embedding or output zeros, so a cache would look exact for no reason; a trained
    checkpoint has them non-zero. Draws from the global RNG, which `build_tiny` seeds.
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(f in name for f in fragments) and not param.any():
                param.normal_(0.0, std)
    return model


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Return a standard normal float32 CPU tensor drawn from `generator`."""
    return torch.randn(*shape, generator=generator)


#: Class name -> builder, filled by the family modules through `case`.
CASES: dict[str, Callable[[], TinyModel]] = {}


def case(class_name: str) -> Callable[[Callable[[], TinyModel]], Callable[[], TinyModel]]:
    """Register the decorated function as the tiny configuration of ``class_name``."""

    def register(builder: Callable[[], TinyModel]) -> Callable[[], TinyModel]:
        if class_name in CASES:
            raise ValueError(f"{class_name} has two tiny configurations")
        CASES[class_name] = builder
        return builder

    return register
