"""The components and builders of the tiny image pipelines of `forecache.testing.tiny_pipelines`.

Text encoders are built from configs sized to the word tokenizer's vocabulary (`VOCAB_SIZE`);
transformers and VAEs follow diffusers' own pipeline tests (``get_dummy_components``). Every
builder seeds each component, so a pipeline is the same on every build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from forecache.testing.saved_pipelines import VOCAB_SIZE, word_tokenizer

__all__ = [
    "chroma",
    "clip_text",
    "cogview4",
    "flux",
    "flux2_klein",
    "kl_vae",
    "pixart_sigma",
    "qwen_image",
    "sana",
    "sd3",
    "seeded",
    "t5_text",
    "tokenizer",
]

_CHAT = "{% for message in messages %}{{ message['content'] }} {% endfor %}"


def tokenizer(max_length: int = 16, chat: bool = False) -> Any:
    """Return the word-level tokenizer (`word_tokenizer`), with a plain chat template if `chat`."""
    made: Any = word_tokenizer(max_length)
    if chat:
        made.chat_template = _CHAT
    return made


def clip_text(hidden: int = 32, projection: bool = False, layers: int = 2) -> Any:
    """Return a tiny CLIP text encoder (with a projection head if `projection`)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,  # the word tokenizer's end of text
        pad_token_id=0,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=layers,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5_text(d_model: int = 32) -> Any:
    """Return a tiny T5 encoder."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=VOCAB_SIZE, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4, pad_token_id=0
        )
    )


def kl_vae(latent_channels: int, **extra: Any) -> Any:
    """Return a one-block `AutoencoderKL` with `latent_channels` (a scale factor of 1)."""
    from diffusers import AutoencoderKL

    settings: dict[str, Any] = {
        "sample_size": 32,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": (4,),
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": 1,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "shift_factor": 0.0609,
        "scaling_factor": 1.5035,
    }
    return AutoencoderKL(**{**settings, **extra})


def seeded(make: Callable[[], Any]) -> Any:
    """Return ``make()`` built right after ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    return make()


def flux() -> Any:
    """Return a tiny `FluxPipeline` (CLIP + T5, 2 double and 2 single blocks)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    return FluxPipeline(
        transformer=seeded(
            lambda: FluxTransformer2DModel(
                patch_size=1,
                in_channels=4,
                num_layers=2,
                num_single_layers=2,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=32,
                pooled_projection_dim=32,
                axes_dims_rope=[4, 4, 8],
            )
        ),
        text_encoder=seeded(clip_text),
        text_encoder_2=seeded(t5_text),
        tokenizer=tokenizer(),
        tokenizer_2=tokenizer(),
        vae=seeded(lambda: kl_vae(1)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def flux2_klein() -> Any:
    """Return a tiny `Flux2KleinPipeline` (FLUX.2 transformer, Qwen3 text encoder)."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    text_config = Qwen3Config(
        intermediate_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=512,
    )
    return Flux2KleinPipeline(
        transformer=seeded(
            lambda: Flux2Transformer2DModel(
                patch_size=1,
                in_channels=4,
                num_layers=2,
                num_single_layers=2,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=16,
                timestep_guidance_channels=256,
                axes_dims_rope=[4, 4, 4, 4],
                guidance_embeds=False,
            )
        ),
        text_encoder=seeded(lambda: Qwen3ForCausalLM(text_config)),
        tokenizer=tokenizer(64, chat=True),
        vae=seeded(
            lambda: AutoencoderKLFlux2(
                sample_size=32,
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",),
                up_block_types=("UpDecoderBlock2D",),
                block_out_channels=(4,),
                layers_per_block=1,
                latent_channels=1,
                norm_num_groups=1,
                use_quant_conv=False,
                use_post_quant_conv=False,
            )
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def chroma() -> Any:
    """Return a tiny `ChromaPipeline` (T5 only)."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    return ChromaPipeline(
        transformer=seeded(
            lambda: ChromaTransformer2DModel(
                patch_size=1,
                in_channels=4,
                num_layers=2,
                num_single_layers=2,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=32,
                axes_dims_rope=[4, 4, 8],
                approximator_hidden_dim=32,
                approximator_layers=1,
                approximator_num_channels=16,
            )
        ),
        text_encoder=seeded(t5_text),
        tokenizer=tokenizer(),
        vae=seeded(lambda: kl_vae(1)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def sd3() -> Any:
    """Return a tiny `StableDiffusion3Pipeline` (two CLIPs with projections, T5)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    return StableDiffusion3Pipeline(
        transformer=seeded(
            lambda: SD3Transformer2DModel(
                sample_size=32,
                patch_size=1,
                in_channels=4,
                num_layers=2,
                attention_head_dim=8,
                num_attention_heads=4,
                caption_projection_dim=32,
                joint_attention_dim=32,
                pooled_projection_dim=64,
                out_channels=4,
            )
        ),
        text_encoder=seeded(lambda: clip_text(projection=True)),
        text_encoder_2=seeded(lambda: clip_text(projection=True)),
        text_encoder_3=seeded(t5_text),
        tokenizer=tokenizer(),
        tokenizer_2=tokenizer(),
        tokenizer_3=tokenizer(),
        vae=seeded(lambda: kl_vae(4)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def qwen_image() -> Any:
    """Return a tiny `QwenImagePipeline` (Qwen2.5-VL text encoder)."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": VOCAB_SIZE,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        vision_end_token_id=VOCAB_SIZE - 1,
        vision_start_token_id=VOCAB_SIZE - 2,
    )
    z_dim = 4
    return QwenImagePipeline(
        transformer=seeded(
            lambda: QwenImageTransformer2DModel(
                patch_size=2,
                in_channels=16,
                out_channels=4,
                num_layers=2,
                attention_head_dim=16,
                num_attention_heads=3,
                joint_attention_dim=16,
                guidance_embeds=False,
                axes_dims_rope=(8, 4, 4),
            )
        ),
        vae=seeded(
            lambda: AutoencoderKLQwenImage(
                base_dim=z_dim * 6,
                z_dim=z_dim,
                dim_mult=[1, 2, 4],
                num_res_blocks=1,
                temperal_downsample=[False, True],
                latents_mean=[0.0] * z_dim,
                latents_std=[1.0] * z_dim,
            )
        ),
        text_encoder=seeded(lambda: Qwen2_5_VLForConditionalGeneration(config).eval()),
        tokenizer=tokenizer(128),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def cogview4() -> Any:
    """Return a tiny `CogView4Pipeline` (GLM text encoder)."""
    from diffusers import (
        AutoencoderKL,
        CogView4Pipeline,
        CogView4Transformer2DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import GlmConfig, GlmModel

    glm = GlmConfig(
        hidden_size=32,
        intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=4,
        head_dim=8,
        vocab_size=VOCAB_SIZE,
        pad_token_id=0,
    )
    return CogView4Pipeline(
        transformer=seeded(
            lambda: CogView4Transformer2DModel(
                patch_size=2,
                in_channels=4,
                num_layers=2,
                attention_head_dim=4,
                num_attention_heads=4,
                out_channels=4,
                text_embed_dim=32,
                time_embed_dim=8,
                condition_dim=4,
            )
        ),
        vae=seeded(
            lambda: AutoencoderKL(
                block_out_channels=[32, 64],
                in_channels=3,
                out_channels=3,
                down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
                latent_channels=4,
                sample_size=128,
            )
        ),
        text_encoder=seeded(lambda: GlmModel(glm)),
        tokenizer=tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(
            base_shift=0.25,
            max_shift=0.75,
            base_image_seq_len=256,
            use_dynamic_shifting=True,
            time_shift_type="linear",
        ),
    )


def sana() -> Any:
    """Return a tiny `SanaPipeline` (Gemma 2 text encoder, DC-AE)."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    gemma = Gemma2Config(
        head_dim=16,
        hidden_size=8,
        intermediate_size=64,
        max_position_embeddings=8192,
        num_attention_heads=2,
        num_hidden_layers=1,
        num_key_value_heads=2,
        vocab_size=VOCAB_SIZE,
        pad_token_id=0,
    )
    return SanaPipeline(
        transformer=seeded(
            lambda: SanaTransformer2DModel(
                patch_size=1,
                in_channels=4,
                out_channels=4,
                num_layers=2,
                num_attention_heads=2,
                attention_head_dim=4,
                num_cross_attention_heads=2,
                cross_attention_head_dim=4,
                cross_attention_dim=8,
                caption_channels=8,
                sample_size=32,
            )
        ),
        vae=seeded(
            lambda: AutoencoderDC(
                in_channels=3,
                latent_channels=4,
                attention_head_dim=2,
                encoder_block_types=("ResBlock", "EfficientViTBlock"),
                decoder_block_types=("ResBlock", "EfficientViTBlock"),
                encoder_block_out_channels=(8, 8),
                decoder_block_out_channels=(8, 8),
                encoder_qkv_multiscales=((), (5,)),
                decoder_qkv_multiscales=((), (5,)),
                encoder_layers_per_block=(1, 1),
                decoder_layers_per_block=[1, 1],
                downsample_block_type="conv",
                upsample_block_type="interpolate",
                decoder_norm_types="rms_norm",
                decoder_act_fns="silu",
                scaling_factor=0.41407,
            )
        ),
        text_encoder=seeded(lambda: Gemma2Model(gemma)),
        tokenizer=tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


def pixart_sigma() -> Any:
    """Return a tiny `PixArtSigmaPipeline` (T5, DDIM)."""
    from diffusers import AutoencoderKL, DDIMScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    return PixArtSigmaPipeline(
        transformer=seeded(
            lambda: PixArtTransformer2DModel(
                sample_size=8,
                num_layers=2,
                patch_size=2,
                attention_head_dim=8,
                num_attention_heads=3,
                caption_channels=32,
                in_channels=4,
                cross_attention_dim=24,
                out_channels=8,
                attention_bias=True,
                activation_fn="gelu-approximate",
                num_embeds_ada_norm=1000,
                norm_type="ada_norm_single",
                norm_elementwise_affine=False,
                norm_eps=1e-6,
            )
        ),
        vae=seeded(AutoencoderKL),
        text_encoder=seeded(t5_text),
        tokenizer=tokenizer(),
        scheduler=DDIMScheduler(),
    )
