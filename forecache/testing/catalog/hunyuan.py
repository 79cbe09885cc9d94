"""HunyuanVideo-architecture transformers: text refiner, double-stream then single-stream blocks.

HunyuanVideo, HunyuanVideo 1.5, HunyuanVideo-Framepack, HunyuanImage 2.1 and Motif-Video.

Configurations follow diffusers' own model and pipeline tests, shrunk where noted.
"""

from __future__ import annotations

import torch

from forecache.testing.catalog.base import Inputs, TinyModel, case, randn


@case("HunyuanVideoTransformer3DModel")
def _hunyuan_video() -> TinyModel:
    from diffusers import HunyuanVideoTransformer3DModel

    model = HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 2),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 2, 4, 4),
            "encoder_hidden_states": randn(g, b, 5, 16),
            "encoder_attention_mask": torch.ones(b, 5, dtype=torch.bool),
            "pooled_projections": randn(g, b, 8),
            "guidance": torch.full((b,), 3.5),
        }

    return TinyModel(model, inputs, guidance=True)


@case("HunyuanVideo15Transformer3DModel")
def _hunyuan_video15() -> TinyModel:
    from diffusers import HunyuanVideo15Transformer3DModel

    model = HunyuanVideo15Transformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        text_embed_2_dim=8,
        image_embed_dim=12,
        rope_axes_dim=(2, 2, 4),
        target_size=16,
        task_type="t2v",
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 1, 8, 8),
            "encoder_hidden_states": randn(g, b, 6, 16),
            "encoder_hidden_states_2": randn(g, b, 4, 8),
            "encoder_attention_mask": torch.ones(b, 6),
            "encoder_attention_mask_2": torch.ones(b, 4),
            "image_embeds": torch.zeros(b, 3, 12),
        }

    return TinyModel(model, inputs)


@case("HunyuanVideoFramepackTransformer3DModel")
def _hunyuan_framepack() -> TinyModel:
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    model = HunyuanVideoFramepackTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=2,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
        image_condition_type=None,
        has_image_proj=True,
        image_proj_dim=16,
        has_clean_x_embedder=True,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        frames, side = 3, 4
        return {
            "hidden_states": randn(g, b, 4, frames, side, side),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "pooled_projections": randn(g, b, 8),
            "encoder_attention_mask": torch.ones(b, 12),
            "guidance": torch.full((b,), 6.0),
            "image_embeds": randn(g, b, 12, 16),
            "indices_latents": torch.ones(frames),
            "latents_clean": randn(g, b, 4, frames - 1, side, side),
            "indices_latents_clean": torch.ones(frames - 1),
            "latents_history_2x": randn(g, b, 4, frames - 1, side, side),
            "indices_latents_history_2x": torch.ones(frames - 1),
            "latents_history_4x": randn(g, b, 4, (frames - 1) * 4, side, side),
            "indices_latents_history_4x": torch.ones((frames - 1) * 4),
        }

    return TinyModel(model, inputs, guidance=True)


@case("HunyuanImageTransformer2DModel")
def _hunyuan_image() -> TinyModel:
    from diffusers import HunyuanImageTransformer2DModel

    model = HunyuanImageTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=4,
        attention_head_dim=8,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=(1, 1),
        guidance_embeds=False,
        text_embed_dim=32,
        text_embed_2_dim=32,
        rope_axes_dim=(4, 4),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 4, 4),
            "encoder_hidden_states": randn(g, b, 6, 32),
            "encoder_attention_mask": torch.ones(b, 6),
            "encoder_hidden_states_2": randn(g, b, 4, 32),
            "encoder_attention_mask_2": torch.ones(b, 4),
        }

    return TinyModel(model, inputs)


@case("MotifVideoTransformer3DModel")
def _motif_video() -> TinyModel:
    from diffusers import MotifVideoTransformer3DModel

    model = MotifVideoTransformer3DModel(
        in_channels=33,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=2,
        num_single_layers=2,
        num_decoder_layers=0,
        mlp_ratio=4.0,
        patch_size=1,
        patch_size_t=1,
        qk_norm="rms_norm",
        norm_type="layer_norm",
        text_embed_dim=32,
        image_embed_dim=4,
        rope_theta=256.0,
        rope_axes_dim=(4, 4, 4),
        enable_text_cross_attention_dual=False,
        enable_text_cross_attention_single=False,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # 16 latent + 16 condition channels + a mask channel; 9 frames as in diffusers' test, 4x4 here.
        return {"hidden_states": randn(g, b, 33, 9, 4, 4), "encoder_hidden_states": randn(g, b, 12, 32)}

    return TinyModel(model, inputs)
