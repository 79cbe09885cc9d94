"""Wan-architecture video transformers.

Wan 2.1/2.2, VACE, Animate, Animate 2, SkyReels-V2, ChronoEdit, Helios and AnyFlow.

Configurations follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from forecache.testing.catalog.base import Inputs, TimeFn, TinyModel, case, randn

_WAN_TEST = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "text_dim": 16,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 32,
}


def _video_inputs(
    channels: int, frames: int, side: int, text_dim: int, tokens: int = 12
) -> Callable[[int, torch.Generator], Inputs]:
    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, channels, frames, side, side),
            "encoder_hidden_states": randn(g, b, tokens, text_dim),
        }

    return inputs


@case("WanTransformer3DModel")
def _wan() -> TinyModel:
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        text_dim=32,
        freq_dim=16,
        ffn_dim=32,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 4, 2, 8, 8), "encoder_hidden_states": randn(g, b, 5, 32)}

    return TinyModel(model, inputs)


@case("SkyReelsV2Transformer3DModel")
def _skyreels_v2() -> TinyModel:
    from diffusers import SkyReelsV2Transformer3DModel

    model = SkyReelsV2Transformer3DModel(in_channels=4, out_channels=4, **_WAN_TEST)
    return TinyModel(model, _video_inputs(4, 2, 8, 16))


@case("ChronoEditTransformer3DModel")
def _chronoedit() -> TinyModel:
    from diffusers import ChronoEditTransformer3DModel

    model = ChronoEditTransformer3DModel(
        **{**_WAN_TEST, "attention_head_dim": 8, "freq_dim": 16, "text_dim": 32, "rope_max_seq_len": 64},
        in_channels=16,
        out_channels=16,
        rope_temporal_skip_len=8,
    )
    return TinyModel(model, _video_inputs(16, 2, 8, 32))


@case("WanVACETransformer3DModel")
def _wan_vace() -> TinyModel:
    from diffusers import WanVACETransformer3DModel

    model = WanVACETransformer3DModel(
        **{**_WAN_TEST, "num_layers": 4, "text_dim": 32},
        in_channels=16,
        out_channels=16,
        vace_layers=[0, 2],
        vace_in_channels=48,
    )
    base = _video_inputs(16, 2, 8, 32)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {**base(b, g), "control_hidden_states": randn(g, b, 48, 2, 8, 8)}

    return TinyModel(model, inputs)


@case("WanAnimateTransformer3DModel")
def _wan_animate() -> TinyModel:
    from diffusers import WanAnimateTransformer3DModel

    model = WanAnimateTransformer3DModel(
        **{**_WAN_TEST, "num_layers": 2},
        in_channels=12,  # 2 * latent channels + 4 (mask)
        latent_channels=4,
        out_channels=4,
        image_dim=16,
        motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16},
        motion_encoder_size=16,
        motion_style_dim=8,
        motion_dim=4,
        motion_encoder_dim=16,
        face_encoder_hidden_dim=16,
        face_encoder_num_heads=2,
        inject_face_latents_blocks=2,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # 20 pose frames + the reference frame; 77 face frames make the face encoder's 4x temporal
        # downsampling line up with them, as in diffusers' test.
        return {
            "hidden_states": randn(g, b, 12, 21, 8, 8),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "encoder_hidden_states_image": randn(g, b, 12, 16),
            "pose_hidden_states": randn(g, b, 4, 20, 8, 8),
            "face_pixel_values": randn(g, b, 3, 77, 16, 16),
        }

    return TinyModel(model, inputs)


@case("WanAnimate2Transformer3DModel")
def _wan_animate_2() -> TinyModel:
    from diffusers import WanAnimate2Transformer3DModel
    from diffusers.models.transformers.transformer_wan_animate_2 import WanAnimate2KVCache

    model = WanAnimate2Transformer3DModel(
        patch_size=(1, 2, 2),
        text_len=16,
        in_dim=36,
        dim=32,
        ffn_dim=64,
        freq_dim=64,
        text_dim=32,
        out_dim=16,
        num_heads=2,
        num_layers=2,
        cross_attn_norm=True,
        use_img_emb=True,
    )
    frames, side = 2, 4  # reference latent frames; the generation stream adds the reference image slot
    patches = (side // 2) ** 2

    def inputs(b: int, g: torch.Generator) -> Inputs:
        def sample(channels: int, n: int) -> list[torch.Tensor]:
            return [randn(g, channels, n, side, side) for _ in range(b)]

        text = [randn(g, 8, 32) for _ in range(b)]
        clip = randn(g, b, 4, 1280)  # `MLPProj` hardcodes the CLIP hidden size
        cache = WanAnimate2KVCache(2)
        grid = torch.tensor([[frames, side // 2, side // 2]] * b)
        with torch.no_grad():  # the reference pass the pipeline runs once before denoising
            model(
                hidden_states=sample(16, frames),
                timestep=torch.ones(b),
                encoder_hidden_states=text,
                condition_latents=sample(20, frames),
                encoder_hidden_states_image=clip,
                kv_cache=cache,
                kv_cache_mode="extract",
                seq_len=frames * patches,
                offset_grid_sizes=grid,
            )
        return {
            "hidden_states": sample(16, frames + 1),
            "encoder_hidden_states": text,
            "condition_latents": sample(20, frames + 1),
            "encoder_hidden_states_image": clip,
            "kv_cache": cache,
            "kv_cache_mode": "cached",
            "seq_len": (frames + 1) * patches,
            "reference_grid_sizes": grid,
            "origin_len": 5,
            "origin_area": [32, 32],
        }

    return TinyModel(model, inputs)


@case("HeliosTransformer3DModel")
def _helios() -> TinyModel:
    from diffusers import HeliosTransformer3DModel

    model = HeliosTransformer3DModel(
        **{k: v for k, v in _WAN_TEST.items() if k != "rope_max_seq_len"},
        in_channels=4,
        out_channels=4,
        rope_dim=(4, 4, 4),
        has_multi_term_memory_patch=True,
        guidance_cross_attn=True,
        zero_history_timestep=True,
        is_amplify_history=False,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        frames, side = 2, 8
        return {
            "hidden_states": randn(g, b, 4, frames, side, side),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "indices_hidden_states": torch.ones(b, frames),
            "indices_latents_history_short": torch.ones(b, frames - 1),
            "indices_latents_history_mid": torch.ones(b, frames - 1),
            "indices_latents_history_long": torch.ones(b, (frames - 1) * 4),
            "latents_history_short": randn(g, b, 4, frames - 1, side, side),
            "latents_history_mid": randn(g, b, 4, frames - 1, side, side),
            "latents_history_long": randn(g, b, 4, (frames - 1) * 4, side, side),
        }

    return TinyModel(model, inputs)


def _anyflow_time(frames: int) -> TimeFn:
    """Per-frame ``timestep`` and flow-map target ``r_timestep`` (0.9 t: a step towards the image)."""

    def make_time(value: float, b: int) -> dict[str, Any]:
        t = torch.full((b, frames), value)
        return {"timestep": t, "r_timestep": 0.9 * t}

    return make_time


_ANYFLOW = {
    **{k: v for k, v in _WAN_TEST.items() if k != "qk_norm"},
    "in_channels": 4,
    "out_channels": 4,
    "gate_value": 0.25,
    "deltatime_type": "r",
}


@case("AnyFlowTransformer3DModel")
def _anyflow() -> TinyModel:
    from diffusers import AnyFlowTransformer3DModel

    model = AnyFlowTransformer3DModel(**_ANYFLOW)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # AnyFlow latents are frame-major: (batch, frames, channels, height, width).
        return {"hidden_states": randn(g, b, 2, 4, 8, 8), "encoder_hidden_states": randn(g, b, 12, 16)}

    return TinyModel(model, inputs, make_time=_anyflow_time(2))


@case("AnyFlowFARTransformer3DModel")
def _anyflow_far() -> TinyModel:
    from diffusers import AnyFlowFARTransformer3DModel

    model = AnyFlowFARTransformer3DModel(**_ANYFLOW, compressed_patch_size=(1, 4, 4), full_chunk_limit=3)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 4, 16, 16),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "chunk_partition": [2, 2],
        }

    return TinyModel(model, inputs, make_time=_anyflow_time(4))
