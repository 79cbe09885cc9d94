"""The DiT-architecture reference model: a class-conditional v-prediction pipeline on 16x16 digits."""

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.transformers.dit_transformer_2d import DiTTransformer2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from forecache.reference.data import IMAGE_SIZE, NUM_CLASSES, check_call_args

__all__ = ["DiTDigitsPipeline", "build_dit_digits"]


def build_dit_digits() -> "DiTDigitsPipeline":
    """Build the untrained DiT reference pipeline (the architecture the shipped weights fit).

    Returns:
        A `DiTDigitsPipeline` with a 6-block `DiTTransformer2DModel` (width 128, 4 heads of 32,
        patch 2 on 16x16x1 pixels, so 64 tokens), random weights, and a `DDIMScheduler` on the
        cosine ("squaredcos_cap_v2") beta schedule (1000 training steps, v-prediction, trailing
        timesteps).

    """
    transformer = DiTTransformer2DModel(
        num_attention_heads=4,
        attention_head_dim=32,
        in_channels=1,
        out_channels=1,
        num_layers=6,
        sample_size=IMAGE_SIZE,
        patch_size=2,
        num_embeds_ada_norm=NUM_CLASSES,
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    return DiTDigitsPipeline(transformer=transformer, scheduler=scheduler)


class DiTDigitsPipeline(DiffusionPipeline):
    """Class-conditional 16x16 digit generation with a DiT transformer, in pixel space.

    Guidance is batched as in diffusers' DiTPipeline: each step makes ONE transformer call on
    `2 * batch` samples, the conditional half first, then the null class (id 10). The scheduler is
    swappable for any diffusers scheduler that takes v-predictions on the same beta schedule,
    e.g. `DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)` or `EulerDiscreteScheduler`.

    Args:
        transformer (`DiTTransformer2DModel`): The denoiser (predicts the velocity
            `sqrt(alpha_bar) * noise - sqrt(1 - alpha_bar) * x0`).
        scheduler (`SchedulerMixin`): The sampler, by default `DDIMScheduler`.

    """

    transformer: DiTTransformer2DModel
    scheduler: Any  # any diffusers scheduler of v-prediction models; SchedulerMixin declares none of the API
    model_cpu_offload_seq = "transformer"
    default_guidance_scale = 1.25

    def __init__(self, transformer: DiTTransformer2DModel, scheduler: SchedulerMixin) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_resize=False)

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | Sequence[int] | torch.Tensor,
        num_inference_steps: int = 50,
        guidance_scale: float = default_guidance_scale,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Generate one digit per class label.

        Args:
            class_labels (`int`, `Sequence[int]` or `torch.Tensor`): Digits to draw, each in [0, 9].
            num_inference_steps (`int`, defaults to 50): Denoising steps (>= 1); fewer is faster and
                rougher.
            guidance_scale (`float`, defaults to 1.25): Classifier-free guidance scale; <= 1 disables
                guidance and halves the batch of each transformer call.
            generator (`torch.Generator` or list of them, *optional*): Seeds the initial noise.
            output_type (`str`, defaults to `"pil"`): `"pil"` (grayscale PIL images), `"np"` (array
                `(batch, 16, 16, 1)` in [0, 1]) or `"pt"` (tensor `(batch, 1, 16, 16)` in [0, 1]).
            return_dict (`bool`, defaults to True): Return an `ImagePipelineOutput` rather than a tuple.

        Returns:
            `ImagePipelineOutput` with `.images`, or the tuple `(images,)`.

        Raises:
            ValueError: a label outside [0, 9], or `num_inference_steps` < 1.

        """
        labels = check_call_args(class_labels, num_inference_steps)
        device = self._execution_device
        dtype = self.transformer.dtype
        batch = len(labels)
        do_cfg = guidance_scale > 1.0

        cond = torch.tensor(labels, device=device)
        null = torch.full_like(cond, self.transformer.config["num_embeds_ada_norm"])
        class_input = torch.cat([cond, null]) if do_cfg else cond
        channels = self.transformer.config["in_channels"]
        size = self.transformer.config["sample_size"]
        noise = randn_tensor(
            (batch, channels, size, size), generator=generator, device=device, dtype=torch.float32
        )

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = (noise * self.scheduler.init_noise_sigma).to(dtype)
        with self.progress_bar(total=len(self.scheduler.timesteps)) as progress_bar:
            for t in self.scheduler.timesteps:
                model_input = torch.cat([latents, latents]) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                timestep = t.reshape(1).to(device).expand(model_input.shape[0])
                noise_pred = self.transformer(
                    model_input, timestep=timestep, class_labels=class_input, return_dict=False
                )[0]
                if do_cfg:
                    cond_eps, uncond_eps = noise_pred.chunk(2)
                    noise_pred = uncond_eps + guidance_scale * (cond_eps - uncond_eps)
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                progress_bar.update()

        output = self.image_processor.postprocess(latents.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (output,)
        return ImagePipelineOutput(images=output)
