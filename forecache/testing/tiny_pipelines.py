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

from forecache.testing import pipeline_parts as parts
from forecache.testing.pipeline_parts import clip_text, seeded, t5_text, tokenizer
from forecache.testing.saved_pipelines import VOCAB_SIZE

__all__ = ["TINY_PIPELINES", "TinyPipelineSpec", "save_tiny_pipeline"]


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
        transformer=seeded(
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
        vae=seeded(
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
        text_encoder=seeded(lambda: LlamaModel(llama)),
        tokenizer=tokenizer(),
        text_encoder_2=seeded(lambda: clip_text(hidden=8)),
        tokenizer_2=tokenizer(),
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
        transformer=seeded(
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
        vae=seeded(vae),
        text_encoder=seeded(t5_text),
        tokenizer=tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


_IMAGE = {"num_inference_steps": 6, "output_type": "pt", "max_sequence_length": 16}

#: The pipelines, by a short name.
TINY_PIPELINES: dict[str, TinyPipelineSpec] = {
    "flux": TinyPipelineSpec(
        "FluxPipeline", parts.flux, {**_IMAGE, "height": 8, "width": 8, "guidance_scale": 3.5}
    ),
    "flux2": TinyPipelineSpec(
        "Flux2KleinPipeline",
        parts.flux2_klein,
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
        "ChromaPipeline", parts.chroma, {**_IMAGE, "height": 8, "width": 8, "guidance_scale": 5.0}
    ),
    "sd3": TinyPipelineSpec(
        "StableDiffusion3Pipeline", parts.sd3, {**_IMAGE, "height": 32, "width": 32, "guidance_scale": 5.0}
    ),
    "qwen-image": TinyPipelineSpec(
        "QwenImagePipeline", parts.qwen_image, {**_IMAGE, "height": 32, "width": 32, "true_cfg_scale": 1.0}
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
        "CogView4Pipeline", parts.cogview4, {**_IMAGE, "height": 16, "width": 16, "guidance_scale": 6.0}
    ),
    "sana": TinyPipelineSpec(
        "SanaPipeline",
        parts.sana,
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
        parts.pixart_sigma,
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
