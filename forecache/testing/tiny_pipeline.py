"""A minimal flow-matching `DiffusionPipeline` around any tiny transformer, for tests and demos.

It samples with diffusers' `FlowMatchEulerDiscreteScheduler` and runs classifier-free guidance in
the three ways real pipelines do: one batched call per step, two calls per step inside
``transformer.cache_context("cond"/"uncond")`` (FLUX, Wan), or two bare calls (no context names).
Random weights: it exercises the plumbing, never quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput

from forecache.testing.tiny import Inputs, TinyModel, build_tiny

__all__ = ["TinyPipeline", "TinyPipelineOutput"]

GuidanceMode = Literal["batched", "named", "unnamed"]
_MODES = ("batched", "named", "unnamed")


@dataclass
class TinyPipelineOutput(BaseOutput):
    """Output of `TinyPipeline`.

    Attributes:
        latents: The final latents, shaped like the transformer's `hidden_states` input.

    """

    latents: torch.Tensor


def _negative(inputs: Inputs) -> Inputs:
    """Return the unconditional inputs: zeroed text embeddings, or shifted class labels."""
    negative = dict(inputs)
    if "encoder_hidden_states" in negative:
        negative["encoder_hidden_states"] = torch.zeros_like(inputs["encoder_hidden_states"])
    if "class_labels" in negative:
        negative["class_labels"] = (inputs["class_labels"] + 1) % 10
    return negative


class TinyPipeline(DiffusionPipeline):
    """Flow-matching sampler over a tiny diffusers transformer (see `forecache.testing.tiny`)."""

    def __init__(self, transformer: torch.nn.Module, scheduler: FlowMatchEulerDiscreteScheduler) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler)
        self.tiny: TinyModel | None = None

    @classmethod
    def from_tiny(cls, class_name: str, seed: int = 0) -> TinyPipeline:
        """Build the pipeline around `build_tiny(class_name, seed)` with a shifted flow-matching grid."""
        tiny = build_tiny(class_name, seed)
        pipe = cls(tiny.model, FlowMatchEulerDiscreteScheduler(shift=3.0))
        pipe.tiny = tiny
        return pipe

    def _call_transformer(self, inputs: Inputs, t: torch.Tensor) -> torch.Tensor:
        assert self.tiny is not None
        batch = inputs["hidden_states"].shape[0]
        timestep = t.expand(batch).to(torch.float32) * self.tiny.timestep_scale
        return self.transformer(**inputs, timestep=timestep, return_dict=False)[0]

    @torch.no_grad()
    def __call__(
        self,
        num_inference_steps: int = 10,
        guidance_scale: float = 1.0,
        guidance_mode: GuidanceMode = "named",
        batch_size: int = 1,
        generator: torch.Generator | None = None,
    ) -> TinyPipelineOutput:
        """Sample latents.

        Args:
            num_inference_steps: Denoising steps (>= 1). Default 10.
            guidance_scale: Classifier-free guidance scale; <= 1 disables guidance. Default 1.0.
            guidance_mode: ``"batched"`` (one call of batch 2B), ``"named"`` (two calls inside
                ``cache_context("cond"/"uncond")``) or ``"unnamed"`` (two bare calls). Default ``"named"``.
            batch_size: Samples (>= 1). Default 1.
            generator: Seeds the initial noise and the conditioning inputs.

        """
        if self.tiny is None:
            raise ValueError("TinyPipeline: build it with TinyPipeline.from_tiny(class_name)")
        if (
            isinstance(num_inference_steps, bool)
            or not isinstance(num_inference_steps, int)
            or num_inference_steps < 1
        ):
            raise ValueError(f"`num_inference_steps` must be an int >= 1, got {num_inference_steps!r}")
        if guidance_mode not in _MODES:
            raise ValueError(f"`guidance_mode` must be one of {list(_MODES)}, got {guidance_mode!r}")
        generator = generator or torch.Generator().manual_seed(0)
        inputs = self.tiny.make_inputs(batch_size, generator)
        negative = _negative(inputs)
        latents = inputs["hidden_states"]
        self.scheduler.set_timesteps(num_inference_steps)
        for t in self.progress_bar(self.scheduler.timesteps):
            if guidance_scale <= 1.0:
                pred = self._call_transformer({**inputs, "hidden_states": latents}, t)
            elif guidance_mode == "batched":
                both = self.tiny.make_inputs(2 * batch_size, torch.Generator().manual_seed(1))
                both["hidden_states"] = torch.cat([latents, latents])
                cond, uncond = self._call_transformer(both, t).chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            else:
                if guidance_mode == "named":
                    with self.transformer.cache_context("cond"):
                        cond = self._call_transformer({**inputs, "hidden_states": latents}, t)
                    with self.transformer.cache_context("uncond"):
                        uncond = self._call_transformer({**negative, "hidden_states": latents}, t)
                else:
                    cond = self._call_transformer({**inputs, "hidden_states": latents}, t)
                    uncond = self._call_transformer({**negative, "hidden_states": latents}, t)
                pred = uncond + guidance_scale * (cond - uncond)
            latents = self.scheduler.step(pred, t, latents, return_dict=False)[0]
        return TinyPipelineOutput(latents=latents)
