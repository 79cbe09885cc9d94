"""Video transformers of other lineages.

CogVideoX, ConsisID, LTX-Video, LTX-2, Mochi, Cosmos, Cosmos 3 and EasyAnimate.

Configurations follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.testing.catalog.base import Inputs, TinyModel, case, randn


@case("CogVideoXTransformer3DModel")
def _cogvideox() -> TinyModel:
    from diffusers import CogVideoXTransformer3DModel

    model = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=16,
        num_layers=3,
        sample_width=8,
        sample_height=8,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=5,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 3, 4, 8, 8), "encoder_hidden_states": randn(g, b, 5, 16)}

    return TinyModel(model, inputs)


@case("ConsisIDTransformer3DModel")
def _consisid() -> TinyModel:
    from diffusers import ConsisIDTransformer3DModel

    model = ConsisIDTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=8,
        num_layers=2,
        sample_width=8,
        sample_height=8,
        sample_frames=8,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=8,
        cross_attn_interval=1,
        is_kps=False,
        is_train_face=True,
        cross_attn_dim_head=1,
        cross_attn_num_heads=1,
        LFE_id_dim=2,
        LFE_vit_dim=2,
        LFE_depth=5,
        LFE_dim_head=8,
        LFE_num_heads=2,
        LFE_num_id_token=1,
        LFE_num_querie=1,
        LFE_output_dim=10,
        LFE_ff_mult=1,
        LFE_num_scale=1,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # Frame-major latents (batch, frames, channels, h, w); face identity features of ConsisID.
        return {
            "hidden_states": randn(g, b, 1, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 8, 8),
            "id_vit_hidden": [torch.ones(b, 2, 2)],
            "id_cond": torch.ones(b, 2),
        }

    return TinyModel(model, inputs)


@case("LTXVideoTransformer3DModel")
def _ltx_video() -> TinyModel:
    from diffusers import LTXVideoTransformer3DModel

    model = LTXVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=3,
        caption_channels=16,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 2 * 4 * 4, 4),
            "encoder_hidden_states": randn(g, b, 5, 16),
            "encoder_attention_mask": torch.ones(b, 5, dtype=torch.long),
            "num_frames": 2,
            "height": 4,
            "width": 4,
        }

    return TinyModel(model, inputs)


#: LTX-2 (video + audio streams), tiny; the SANA-WM refiner builds on the same transformer.
LTX2 = {
    "in_channels": 4,
    "out_channels": 4,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 16,
    "audio_in_channels": 4,
    "audio_out_channels": 4,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
    "num_layers": 2,
    "qk_norm": "rms_norm_across_heads",
    "caption_channels": 16,
    "rope_double_precision": False,
}


@case("LTX2VideoTransformer3DModel")
def _ltx2() -> TinyModel:
    from diffusers import LTX2VideoTransformer3DModel

    model = LTX2VideoTransformer3DModel(**LTX2)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        frames, side, audio_frames = 2, 4, 9
        return {
            "hidden_states": randn(g, b, frames * side * side, 4),
            "audio_hidden_states": randn(g, b, audio_frames, 4),
            "encoder_hidden_states": randn(g, b, 8, 16),
            "audio_encoder_hidden_states": randn(g, b, 8, 16),
            "encoder_attention_mask": torch.ones(b, 8, dtype=torch.bool),
            "num_frames": frames,
            "height": side,
            "width": side,
            "audio_num_frames": audio_frames,
            "fps": 25.0,
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        # LTX2Pipeline passes the same tensor as `timestep` and `sigma` (read by LTX-2.3 checkpoints).
        t = torch.full((b,), value)
        return {"timestep": t, "sigma": t}

    return TinyModel(model, inputs, make_time=make_time)


@case("MochiTransformer3DModel")
def _mochi() -> TinyModel:
    from diffusers import MochiTransformer3DModel

    model = MochiTransformer3DModel(
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        pooled_projection_dim=16,
        in_channels=4,
        out_channels=None,
        qk_norm="rms_norm",
        text_embed_dim=16,
        time_embed_dim=4,
        activation_fn="swiglu",
        max_sequence_length=16,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 2, 8, 8),
            "encoder_hidden_states": randn(g, b, 16, 16),
            "encoder_attention_mask": torch.ones(b, 16, dtype=torch.bool),
        }

    return TinyModel(model, inputs)


@case("CosmosTransformer3DModel")
def _cosmos() -> TinyModel:
    from diffusers import CosmosTransformer3DModel

    model = CosmosTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=2,
        mlp_ratio=2,
        text_embed_dim=16,
        adaln_lora_dim=4,
        max_size=(4, 32, 32),
        patch_size=(1, 2, 2),
        rope_scale=(2.0, 1.0, 1.0),
        # diffusers' test concatenates a padding mask, whose resize imports torchvision: left out here.
        concat_padding_mask=False,
        extra_pos_embed_type="learnable",
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 1, 8, 8),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "attention_mask": torch.ones(b, 12),
            "fps": 30,
        }

    return TinyModel(model, inputs)


@case("Cosmos3OmniTransformer")
def _cosmos3() -> TinyModel:
    from diffusers import Cosmos3OmniTransformer

    model = Cosmos3OmniTransformer(
        head_dim=6,
        hidden_act="relu2",
        hidden_size=12,
        intermediate_size=24,
        latent_channel=2,
        latent_patch_size=1,
        num_attention_heads=2,
        num_hidden_layers=2,
        num_key_value_heads=1,
        patch_latent_dim=2,
        qk_norm_for_text=False,
        rms_norm_eps=1e-5,
        rope_axes_dim=[1, 1, 1],
        rope_theta=1e8,
        vocab_size=32,
    )
    side = 2
    tokens = side * side

    def inputs(b: int, g: torch.Generator) -> Inputs:
        if b != 1:
            raise ValueError(f"Cosmos3OmniTransformer packs one sample: `batch` must be 1, got {b}")
        # Two text tokens (understanding stream), then the noisy vision tokens (generation stream).
        sequence = 2 + tokens
        vision = torch.arange(2, sequence)
        return {
            "input_ids": torch.tensor([1, 2]),
            "text_indexes": torch.tensor([0, 1]),
            "position_ids": torch.zeros(3, sequence, dtype=torch.long),
            "und_len": 2,
            "sequence_length": sequence,
            "vision_tokens": [randn(g, 1, 2, 1, side, side)],
            "vision_token_shapes": [(1, side, side)],
            "vision_sequence_indexes": vision,
            "vision_mse_loss_indexes": vision,
            "vision_noisy_frame_indexes": [torch.tensor([0])],
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        # One timestep per noisy vision token, on the scheduler's 0..1000 scale (the model scales it).
        return {"vision_timesteps": torch.full((tokens,), value)}

    return TinyModel(model, inputs, time_arg="vision_timesteps", make_time=make_time, max_batch=1)


@case("EasyAnimateTransformer3DModel")
def _easyanimate() -> TinyModel:
    from diffusers import EasyAnimateTransformer3DModel

    model = EasyAnimateTransformer3DModel(
        attention_head_dim=16,
        num_attention_heads=2,
        in_channels=4,
        mmdit_layers=2,
        num_layers=2,
        out_channels=4,
        patch_size=2,
        sample_height=60,
        sample_width=90,
        text_embed_dim=16,
        time_embed_dim=8,
        time_position_encoding_type="3d_rope",
        timestep_activation_fn="silu",
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 4, 2, 8, 8), "encoder_hidden_states": randn(g, b, 16, 16)}

    return TinyModel(model, inputs)
