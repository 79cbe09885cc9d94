"""The FLUX-architecture reference model: a class-conditional rectified-flow pipeline on 16x16 digits."""

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from forecache.reference.data import IMAGE_SIZE, NUM_CLASSES, check_call_args
from forecache.reference.inputs import flux_image_ids, flux_pack, flux_unpack

__all__ = ["FLUX_DIGITS_SIZES", "ClassTokenEmbedding", "FluxDigitsPipeline", "build_flux_digits"]


class ClassTokenEmbedding(ModelMixin, ConfigMixin):
    """Learned "text" conditioning of the Flux reference model: a few tokens and a pooled vector per class.

    `save_pretrained` records it in `model_index.json` as
    `["forecache.reference.flux_digits", "ClassTokenEmbedding"]`; diffusers' `from_pretrained`
    resolves that module from `sys.modules` and finds `ModelMixin` in its namespace, which is how it
    learns to load the component with `from_pretrained`.

    It stands in for FLUX's T5 and CLIP text encoders. Class id `num_classes` is the null
    (unconditional) class used by classifier-free guidance.

    Args:
        num_classes (`int`, defaults to 10): Number of real classes; the table has one more row (null).
        tokens_per_class (`int`, defaults to 4): Tokens of `encoder_hidden_states` per class.
        joint_attention_dim (`int`, defaults to 128): Width of each token (the transformer's
            `joint_attention_dim`).
        pooled_projection_dim (`int`, defaults to 128): Width of the pooled vector (the transformer's
            `pooled_projection_dim`).

    """

    @register_to_config
    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        tokens_per_class: int = 4,
        joint_attention_dim: int = 128,
        pooled_projection_dim: int = 128,
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(num_classes + 1, tokens_per_class * joint_attention_dim)
        self.pooled = nn.Embedding(num_classes + 1, pooled_projection_dim)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.pooled.weight, std=0.02)

    def forward(self, class_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeds class ids.

        Args:
            class_labels (`torch.Tensor`): Class ids of shape `(batch,)`, int64 in [0, num_classes].

        Returns:
            `(encoder_hidden_states, pooled_projections)` of shapes
            `(batch, tokens_per_class, joint_attention_dim)` and `(batch, pooled_projection_dim)`.

        """
        tokens = self.tokens(class_labels).view(
            class_labels.shape[0], self.config["tokens_per_class"], self.config["joint_attention_dim"]
        )
        return tokens, self.pooled(class_labels)


def image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Position ids of the packed image tokens, built as FluxPipeline builds `img_ids`.

    Args:
        height (`int`): Token rows (image height / 2).
        width (`int`): Token columns (image width / 2).
        device (`torch.device`): Device of the result.
        dtype (`torch.dtype`): Dtype of the result.

    Returns:
        `torch.Tensor` of shape `(height * width, 3)`: (0, row, column).

    """
    return flux_image_ids(height, width, device=device, dtype=dtype)


FLUX_DIGITS_SIZES: dict[str, dict[str, int]] = {
    "flux-digits": {"num_layers": 2, "num_single_layers": 4, "num_attention_heads": 4},
    "flux-digits-deep": {"num_layers": 4, "num_single_layers": 8, "num_attention_heads": 3},
}
"""`build_flux_digits` arguments of each shipped FLUX-architecture reference model, by name.

``"flux-digits-deep"`` keeps FLUX.1-dev's 1:2 mix of double- and single-stream blocks (19 + 38) at
12 blocks, narrowed to 3 heads (width 96) so its weights stay under 10 MB.
"""


def build_flux_digits(
    num_layers: int = 2, num_single_layers: int = 4, num_attention_heads: int = 4
) -> "FluxDigitsPipeline":
    """Build an untrained Flux reference pipeline (the architecture the shipped weights fit).

    The defaults are ``"flux-digits"``; `FLUX_DIGITS_SIZES` holds the arguments of every shipped
    FLUX-architecture model. Deeper models give caching more blocks to skip per forecast (FLUX.1-dev
    has 19 double- and 38 single-stream blocks); wider ones cost quadratically more weights.

    Args:
        num_layers (`int`, defaults to 2): Double-stream (MMDiT) blocks.
        num_single_layers (`int`, defaults to 4): Single-stream blocks.
        num_attention_heads (`int`, defaults to 4): Attention heads of 32 channels each; the width is
            `32 * num_attention_heads`.

    Returns:
        A `FluxDigitsPipeline` with that `FluxTransformer2DModel` (class tokens of width 128), random
        weights, and a `FlowMatchEulerDiscreteScheduler` with shift 3.0.

    Raises:
        ValueError: an argument is not an int >= 1 (`num_layers` and `num_single_layers` may be 0,
            not both).

    """
    for field, value, minimum in (
        ("num_layers", num_layers, 0),
        ("num_single_layers", num_single_layers, 0),
        ("num_attention_heads", num_attention_heads, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"`{field}` must be an int >= {minimum}, got {value!r}")
    if num_layers + num_single_layers == 0:
        raise ValueError("`num_layers` + `num_single_layers` must be >= 1, got 0 + 0")
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=32,
        num_attention_heads=num_attention_heads,
        joint_attention_dim=128,
        pooled_projection_dim=128,
        guidance_embeds=False,
        axes_dims_rope=(8, 12, 12),
    )
    class_embedder = ClassTokenEmbedding(joint_attention_dim=128, pooled_projection_dim=128)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return FluxDigitsPipeline(transformer=transformer, scheduler=scheduler, class_embedder=class_embedder)


class FluxDigitsPipeline(DiffusionPipeline):
    """Class-conditional 16x16 digit generation with a FLUX transformer and true classifier-free guidance.

    Pixels are packed 2x2 into 64 tokens of 4 channels (as FluxPipeline packs VAE latents; there is
    no VAE). Classes are embedded by `class_embedder` into `encoder_hidden_states` and
    `pooled_projections`. With `guidance_scale > 1` every step makes two transformer calls, inside
    `transformer.cache_context("cond")` and `transformer.cache_context("uncond")`, like FluxPipeline's
    true CFG.

    Args:
        transformer (`FluxTransformer2DModel`): The denoiser (predicts the velocity `noise - x0`).
        scheduler (`FlowMatchEulerDiscreteScheduler`): The sampler.
        class_embedder (`ClassTokenEmbedding`): The class "text" encoder.

    """

    transformer: FluxTransformer2DModel
    scheduler: FlowMatchEulerDiscreteScheduler
    class_embedder: ClassTokenEmbedding
    model_cpu_offload_seq = "class_embedder->transformer"
    default_guidance_scale = 1.5

    def __init__(
        self,
        transformer: FluxTransformer2DModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
        class_embedder: ClassTokenEmbedding,
    ) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, class_embedder=class_embedder)
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
            guidance_scale (`float`, defaults to 1.5): Classifier-free guidance scale; <= 1 disables
                guidance and halves the transformer calls.
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
        prompt_embeds, pooled = self.class_embedder(cond)
        prompt_embeds, pooled = prompt_embeds.to(dtype), pooled.to(dtype)
        if do_cfg:
            null = torch.full_like(cond, self.class_embedder.config["num_classes"])
            neg_prompt_embeds, neg_pooled = self.class_embedder(null)
            neg_prompt_embeds, neg_pooled = neg_prompt_embeds.to(dtype), neg_pooled.to(dtype)
        text_ids = torch.zeros(prompt_embeds.shape[1], 3, device=device, dtype=dtype)
        img_ids = image_ids(IMAGE_SIZE // 2, IMAGE_SIZE // 2, device, dtype)

        channels = self.transformer.config["in_channels"] // 4
        noise_shape = (batch, channels, IMAGE_SIZE, IMAGE_SIZE)
        noise = randn_tensor(noise_shape, generator=generator, device=device, dtype=torch.float32)
        latents = flux_pack(noise).to(dtype)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        self.scheduler.set_begin_index(0)
        timesteps = self.scheduler.timesteps

        def predict(context: str, x: torch.Tensor, t: torch.Tensor, condition: tuple) -> torch.Tensor:
            """One transformer call in `cache_context(context)`; `condition` is (pooled, embeddings)."""
            with self.transformer.cache_context(context):
                return self.transformer(
                    hidden_states=x,
                    timestep=t / 1000,
                    guidance=None,
                    pooled_projections=condition[0],
                    encoder_hidden_states=condition[1],
                    txt_ids=text_ids,
                    img_ids=img_ids,
                    return_dict=False,
                )[0]

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for t in timesteps:
                timestep = t.expand(batch).to(dtype)
                noise_pred = predict("cond", latents, timestep, (pooled, prompt_embeds))
                if do_cfg:
                    neg_noise_pred = predict("uncond", latents, timestep, (neg_pooled, neg_prompt_embeds))
                    noise_pred = neg_noise_pred + guidance_scale * (noise_pred - neg_noise_pred)
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                progress_bar.update()

        images = flux_unpack(latents.float(), IMAGE_SIZE, IMAGE_SIZE)
        output = self.image_processor.postprocess(images, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (output,)
        return ImagePipelineOutput(images=output)
