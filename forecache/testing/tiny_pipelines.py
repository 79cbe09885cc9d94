"""Tiny, unmodified diffusers pipelines built offline: every component from a config, random weights.

Each entry of `TINY_PIPELINES` builds one diffusers pipeline class with the tiny components diffusers'
own pipeline tests use (a layer or two, small heads; ``tests/pipelines/*/test_*.py``
``get_dummy_components``), except the tokenizers, which diffusers' tests download: here every
tokenizer is the word-level one of `word_tokenizer` (with a chat template where the pipeline applies
one), and every text encoder is built from a config sized to it. Nothing is downloaded.
`save_tiny_pipeline` writes one with ``save_pretrained``; ``DiffusionPipeline.from_pretrained`` loads
it back, and `TinyPipelineSpec.call` holds the settings of a short call (a few steps, batch 1).

Random weights: plumbing and counts, never quality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forecache.testing.saved_pipelines import VOCAB_SIZE, word_tokenizer

__all__ = ["TINY_PIPELINES", "TinyPipelineSpec", "save_tiny_pipeline"]

_CHAT = "{% for message in messages %}{{ message['content'] }} {% endfor %}"


@dataclass(frozen=True)
class TinyPipelineSpec:
    """How to build and call one tiny pipeline.

    Attributes:
        pipeline: The diffusers pipeline class name.
        build: Returns the pipeline (components seeded, random weights).
        call: Keyword arguments of a short call (steps, size, guidance, output type).
        experts: Transformer components it denoises with (``("transformer", "transformer_2")`` for
            Wan 2.2's two experts).

    """

    pipeline: str
    build: Callable[[], Any]
    call: dict[str, Any] = field(default_factory=dict)
    experts: tuple[str, ...] = ("transformer",)


def _tokenizer(max_length: int = 16, chat: bool = False) -> Any:
    tokenizer: Any = word_tokenizer(max_length)
    if chat:
        tokenizer.chat_template = _CHAT
    return tokenizer


def _clip(hidden: int = 32, projection: bool = False, layers: int = 2) -> Any:
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


def _t5(d_model: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=VOCAB_SIZE, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4, pad_token_id=0
        )
    )


def _kl_vae(latent_channels: int, **extra: Any) -> Any:
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


def _seeded(make: Callable[[], Any]) -> Any:
    torch.manual_seed(0)
    return make()


def _flux() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    return FluxPipeline(
        transformer=_seeded(
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
        text_encoder=_seeded(_clip),
        text_encoder_2=_seeded(_t5),
        tokenizer=_tokenizer(),
        tokenizer_2=_tokenizer(),
        vae=_seeded(lambda: _kl_vae(1)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _flux2() -> Any:
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
        transformer=_seeded(
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
        text_encoder=_seeded(lambda: Qwen3ForCausalLM(text_config)),
        tokenizer=_tokenizer(64, chat=True),
        vae=_seeded(
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


def _chroma() -> Any:
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    return ChromaPipeline(
        transformer=_seeded(
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
        text_encoder=_seeded(_t5),
        tokenizer=_tokenizer(),
        vae=_seeded(lambda: _kl_vae(1)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _sd3() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    return StableDiffusion3Pipeline(
        transformer=_seeded(
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
        text_encoder=_seeded(lambda: _clip(projection=True)),
        text_encoder_2=_seeded(lambda: _clip(projection=True)),
        text_encoder_3=_seeded(_t5),
        tokenizer=_tokenizer(),
        tokenizer_2=_tokenizer(),
        tokenizer_3=_tokenizer(),
        vae=_seeded(lambda: _kl_vae(4)),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _qwen_image() -> Any:
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
        transformer=_seeded(
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
        vae=_seeded(
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
        text_encoder=_seeded(lambda: Qwen2_5_VLForConditionalGeneration(config).eval()),
        tokenizer=_tokenizer(128),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _wan(two_experts: bool) -> Callable[[], Any]:
    def build() -> Any:
        from forecache.testing.saved_pipelines import tiny_wan

        return tiny_wan(two_experts=two_experts)

    return build


def _hunyuan_video() -> Any:
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import LlamaConfig, LlamaModel

    llama = LlamaConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
        hidden_size=16,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=VOCAB_SIZE,
        hidden_act="gelu",
    )
    return HunyuanVideoPipeline(
        transformer=_seeded(
            lambda: HunyuanVideoTransformer3DModel(
                in_channels=4,
                out_channels=4,
                num_attention_heads=2,
                attention_head_dim=10,
                num_layers=2,
                num_single_layers=2,
                num_refiner_layers=1,
                patch_size=1,
                patch_size_t=1,
                guidance_embeds=True,
                text_embed_dim=16,
                pooled_projection_dim=8,
                rope_axes_dim=(2, 4, 4),
            )
        ),
        vae=_seeded(
            lambda: AutoencoderKLHunyuanVideo(
                in_channels=3,
                out_channels=3,
                latent_channels=4,
                down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                up_block_types=("HunyuanVideoUpBlock3D",) * 4,
                block_out_channels=(8, 8, 8, 8),
                layers_per_block=1,
                act_fn="silu",
                norm_num_groups=4,
                scaling_factor=0.476986,
                spatial_compression_ratio=8,
                temporal_compression_ratio=4,
                mid_block_add_attention=True,
            )
        ),
        text_encoder=_seeded(lambda: LlamaModel(llama)),
        tokenizer=_tokenizer(),
        text_encoder_2=_seeded(lambda: _clip(hidden=8)),
        tokenizer_2=_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


def _ltx() -> Any:
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    def vae() -> Any:
        made = AutoencoderKLLTXVideo(
            in_channels=3,
            out_channels=3,
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False),
            upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        made.use_framewise_encoding = False
        made.use_framewise_decoding = False
        return made

    return LTXPipeline(
        transformer=_seeded(
            lambda: LTXVideoTransformer3DModel(
                in_channels=8,
                out_channels=8,
                patch_size=1,
                patch_size_t=1,
                num_attention_heads=4,
                attention_head_dim=8,
                cross_attention_dim=32,
                num_layers=2,
                caption_channels=32,
            )
        ),
        vae=_seeded(vae),
        text_encoder=_seeded(_t5),
        tokenizer=_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _cogview4() -> Any:
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
        transformer=_seeded(
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
        vae=_seeded(
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
        text_encoder=_seeded(lambda: GlmModel(glm)),
        tokenizer=_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(
            base_shift=0.25,
            max_shift=0.75,
            base_image_seq_len=256,
            use_dynamic_shifting=True,
            time_shift_type="linear",
        ),
    )


def _sana() -> Any:
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
        transformer=_seeded(
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
        vae=_seeded(
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
        text_encoder=_seeded(lambda: Gemma2Model(gemma)),
        tokenizer=_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


def _pixart_sigma() -> Any:
    from diffusers import AutoencoderKL, DDIMScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    return PixArtSigmaPipeline(
        transformer=_seeded(
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
        vae=_seeded(AutoencoderKL),
        text_encoder=_seeded(_t5),
        tokenizer=_tokenizer(),
        scheduler=DDIMScheduler(),
    )


_IMAGE = {"num_inference_steps": 6, "output_type": "pt", "max_sequence_length": 16}

#: The pipelines, by a short name.
TINY_PIPELINES: dict[str, TinyPipelineSpec] = {
    "flux": TinyPipelineSpec(
        "FluxPipeline", _flux, {**_IMAGE, "height": 8, "width": 8, "guidance_scale": 3.5}
    ),
    "flux2": TinyPipelineSpec(
        "Flux2KleinPipeline",
        _flux2,
        {
            **_IMAGE,
            "height": 8,
            "width": 8,
            "guidance_scale": 4.0,
            "max_sequence_length": 64,
            "text_encoder_out_layers": (1,),
        },
    ),
    "chroma": TinyPipelineSpec(
        "ChromaPipeline", _chroma, {**_IMAGE, "height": 8, "width": 8, "guidance_scale": 5.0}
    ),
    "sd3": TinyPipelineSpec(
        "StableDiffusion3Pipeline", _sd3, {**_IMAGE, "height": 32, "width": 32, "guidance_scale": 5.0}
    ),
    "qwen-image": TinyPipelineSpec(
        "QwenImagePipeline", _qwen_image, {**_IMAGE, "height": 32, "width": 32, "true_cfg_scale": 1.0}
    ),
    "wan2.1": TinyPipelineSpec(
        "WanPipeline",
        _wan(False),
        {
            "num_inference_steps": 6,
            "output_type": "pt",
            "height": 16,
            "width": 16,
            "num_frames": 5,
            "guidance_scale": 5.0,
        },
    ),
    "wan2.2": TinyPipelineSpec(
        "WanPipeline",
        _wan(True),
        {
            "num_inference_steps": 8,
            "output_type": "pt",
            "height": 16,
            "width": 16,
            "num_frames": 5,
            "guidance_scale": 5.0,
        },
        ("transformer", "transformer_2"),
    ),
    "hunyuan-video": TinyPipelineSpec(
        "HunyuanVideoPipeline",
        _hunyuan_video,
        {
            **_IMAGE,
            "height": 16,
            "width": 16,
            "num_frames": 5,
            "guidance_scale": 4.5,
            "prompt_template": {"template": "{}", "crop_start": 0},
        },
    ),
    "ltx": TinyPipelineSpec(
        "LTXPipeline", _ltx, {**_IMAGE, "height": 32, "width": 32, "num_frames": 9, "guidance_scale": 3.0}
    ),
    "cogview4": TinyPipelineSpec(
        "CogView4Pipeline", _cogview4, {**_IMAGE, "height": 16, "width": 16, "guidance_scale": 6.0}
    ),
    "sana": TinyPipelineSpec(
        "SanaPipeline",
        _sana,
        {
            **_IMAGE,
            "height": 32,
            "width": 32,
            "guidance_scale": 6.0,
            "complex_human_instruction": None,
            "use_resolution_binning": False,
        },
    ),
    "pixart-sigma": TinyPipelineSpec(
        "PixArtSigmaPipeline",
        _pixart_sigma,
        {**_IMAGE, "height": 8, "width": 8, "guidance_scale": 5.0, "use_resolution_binning": False},
    ),
}


def save_tiny_pipeline(name: str, folder: str | Path) -> Path:
    """Build the tiny pipeline `name` of `TINY_PIPELINES` and ``save_pretrained`` it into `folder`.

    Raises:
        ValueError: If `name` is not in `TINY_PIPELINES`.

    """
    if name not in TINY_PIPELINES:
        raise ValueError(f"`name` must be one of {sorted(TINY_PIPELINES)}, got {name!r}")
    folder = Path(folder)
    TINY_PIPELINES[name].build().save_pretrained(folder)
    return folder
