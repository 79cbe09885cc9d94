"""Video and image transformers with their own block designs.

Kandinsky 5 / 6 / 6-SR, JoyImage-Edit, SANA-WM and its LTX-2 refiner, and MiniMax-H3 (audio and
video in one packed sequence).

Configurations follow diffusers' own model and pipeline tests, shrunk where noted.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.testing.catalog.base import Inputs, TinyModel, case, randn, wake
from forecache.testing.catalog.video import LTX2


@case("Kandinsky5Transformer3DModel")
def _kandinsky5() -> TinyModel:
    from diffusers import Kandinsky5Transformer3DModel

    model = Kandinsky5Transformer3DModel(
        in_visual_dim=16,
        in_text_dim=32,
        in_text_dim2=16,
        time_dim=16,
        out_visual_dim=16,
        patch_size=(1, 2, 2),
        model_dim=16,
        ff_dim=32,
        num_text_blocks=1,
        num_visual_blocks=2,
        axes_dims=(1, 1, 2),
        visual_cond=False,
        attention_type="regular",
    )
    wake(model, "modulation.out_layer")  # zero-initialised: the blocks would ignore the time

    def inputs(b: int, g: torch.Generator) -> Inputs:
        side, text = 8, 6
        # Channels-last video latents (batch, frames, height, width, channels), as Kandinsky5Pipeline.
        return {
            "hidden_states": randn(g, b, 1, side, side, 16),
            "encoder_hidden_states": randn(g, b, text, 32),
            "pooled_projections": randn(g, b, 16),
            "visual_rope_pos": [torch.arange(1), torch.arange(side // 2), torch.arange(side // 2)],
            "text_rope_pos": torch.arange(text),
        }

    return TinyModel(model, inputs)


@case("Kandinsky6Transformer3DModel")
def _kandinsky6() -> TinyModel:
    from diffusers import Kandinsky6Transformer3DModel

    model = Kandinsky6Transformer3DModel(
        in_visual_dim=4,
        out_visual_dim=4,
        in_text_dim=8,
        in_text_dim2=8,
        time_dim=16,
        patch_size=(1, 2, 2),
        model_dim=48,
        ff_dim=64,
        num_text_blocks=1,
        num_visual_blocks=2,
        axes_dims=(4, 4, 4),
        visual_cond=True,
        in_audio_dim=4,
        out_audio_dim=4,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # visual_cond: noisy latent, conditioning latent and a mask channel, channels-last.
        return {
            "hidden_states": randn(g, b, 2, 4, 4, 2 * 4 + 1),
            "encoder_hidden_states": randn(g, b, 6, 8),
            "pooled_projections": randn(g, b, 8),
            "audio_hidden_states": randn(g, b, 5, 4),
        }

    return TinyModel(model, inputs)


@case("Kandinsky6SRTransformer3DModel")
def _kandinsky6_sr() -> TinyModel:
    from diffusers import Kandinsky6SRTransformer3DModel

    model = Kandinsky6SRTransformer3DModel(
        in_visual_dim=4,
        out_visual_dim=8,
        time_dim=16,
        patch_size=(1, 2, 2),
        model_dim=24,
        ff_dim=32,
        num_visual_blocks=2,
        axes_dims=(4, 4, 4),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # Noisy latent, anchor latent and anchor mask, channels-last.
        return {"hidden_states": randn(g, b, 2, 16, 16, 2 * 4 + 1)}

    return TinyModel(model, inputs)


_JOY = {
    "patch_size": [1, 2, 2],
    "in_channels": 16,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "text_dim": 16,
    "num_layers": 2,
    "rope_dim_list": [4, 6, 6],
    "theta": 256,
}


@case("JoyImageEditTransformer3DModel")
def _joyimage() -> TinyModel:
    from diffusers import JoyImageEditTransformer3DModel

    model = wake(JoyImageEditTransformer3DModel(**_JOY), "modulate_table")

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 16, 1, 4, 4), "encoder_hidden_states": randn(g, b, 12, 16)}

    return TinyModel(model, inputs)


@case("JoyImageEditPlusTransformer3DModel")
def _joyimage_plus() -> TinyModel:
    from diffusers import JoyImageEditPlusTransformer3DModel

    model = wake(JoyImageEditPlusTransformer3DModel(**_JOY), "modulate_table")

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # Two patches per sample (target + one reference image), each one 2x2-latent frame.
        return {
            "hidden_states": randn(g, b, 2, 16, 1, 2, 2),
            "encoder_hidden_states": randn(g, b, 12, 16),
            "shape_list": [[(1, 1, 1), (1, 1, 1)]] * b,
        }

    return TinyModel(model, inputs)


@case("SanaWMTransformer3DModel")
def _sana_wm() -> TinyModel:
    from diffusers import SanaWMTransformer3DModel

    model = SanaWMTransformer3DModel(
        in_channels=4,
        num_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        patch_size=(1, 1, 1),
        softmax_every_n=2,
        linear_head_dim=16,
        t_kernel_size=3,
        conv_kernel_size=4,
        caption_channels=8,
        mlp_ratio=2.0,
        chunk_plucker_channels=8,
        chunk_plucker_post_attn_blocks=2,
    )
    wake(model, "plucker_embedder.proj", "conv_k")  # zero-initialised: the GDN branch would be dead
    frames, side = 4, 8

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # Camera: a flat 4x4 camera-to-world (forward translation) then pinhole [fx, fy, cx, cy].
        c2w = torch.eye(4).repeat(b, frames, 1, 1)
        c2w[..., 2, 3] = torch.arange(frames) * 0.1
        intrinsics = torch.tensor([float(side), float(side), side / 2, side / 2]).expand(b, frames, 4)
        return {
            "hidden_states": randn(g, b, 4, frames, side, side),
            "encoder_hidden_states": randn(g, b, 1, 16, 8),
            "encoder_attention_mask": torch.ones(b, 16, dtype=torch.long),
            "camera_conditions": torch.cat([c2w.flatten(start_dim=-2), intrinsics], dim=-1),
            "chunk_plucker": randn(g, b, 8, frames, side, side),
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        return {"timestep": torch.full((b, 1, frames), value)}  # one timestep per latent frame

    return TinyModel(model, inputs, make_time=make_time)


@case("SanaWMLTX2RefinerTransformer3DModel")
def _sana_wm_refiner() -> TinyModel:
    from diffusers import SanaWMLTX2RefinerTransformer3DModel

    model = SanaWMLTX2RefinerTransformer3DModel(**LTX2)
    frames, side = 2, 4
    tokens = frames * side * side

    def inputs(b: int, g: torch.Generator) -> Inputs:
        rope = model.build_rotary_emb_for_absolute_positions(
            batch_size=b, frame_positions=list(range(frames)), height=side, width=side, device="cpu", fps=24.0
        )
        return {
            "hidden_states": randn(g, b, tokens, 4),
            "encoder_hidden_states": randn(g, b, 8, 16),
            "video_rotary_emb": rope,
            "encoder_attention_mask": torch.ones(b, 8),
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        return {"timestep": torch.full((b, tokens), value)}  # per-token, already on the 0..1000 scale

    return TinyModel(model, inputs, make_time=make_time)


@case("MiniMaxH3Transformer3DModel")
def _minimax_h3() -> TinyModel:
    from diffusers import MiniMaxH3Transformer3DModel

    model = MiniMaxH3Transformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        hidden_size=24,
        num_layers=2,
        num_refiner_layers=2,
        ffn_dim=32,
        in_channels=4,
        audio_in_channels=6,
        patch_size=(1, 2, 2),
        text_dim=8,
        freq_dim=8,
        time_embed_hidden_dim=24,
        time_embed_dim=16,
        rope_freq_dim=2,
    )
    text, audio, video = 4, 6, 8  # the packed layout: text rows, audio rows, video rows

    def inputs(b: int, g: torch.Generator) -> Inputs:
        sequence = text + audio + video
        text_indices = torch.arange(text)
        audio_indices = torch.arange(text, text + audio)
        video_indices = torch.arange(text + audio, sequence)
        tags = torch.empty(sequence, dtype=torch.long)  # 0 video, 1 text, 2 audio
        tags[text_indices], tags[audio_indices], tags[video_indices] = 1, 2, 0
        timestep_indices = torch.zeros(sequence, dtype=torch.long)
        timestep_indices[audio_indices] = 1  # audio rows follow their own schedule
        position_ids = torch.zeros(sequence, 3)
        position_ids[:, 0] = torch.arange(sequence).float()
        position_ids[video_indices, 1] = (torch.arange(video) % 4).float()
        position_ids[video_indices, 2] = (torch.arange(video) % 2).float()
        return {
            "hidden_states": randn(g, b, video, 4 * 2 * 2),
            "audio_hidden_states": randn(g, b, audio, 6),
            "encoder_hidden_states": randn(g, b, text, 8),
            "timestep_indices": timestep_indices,
            "token_tags": tags,
            "position_ids": position_ids,
            "video_indices": video_indices,
            "audio_indices": audio_indices,
            "text_indices": text_indices,
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        # The table of distinct timesteps rows index into: [video, audio] (both on the same schedule here).
        return {"timestep": torch.tensor([value, value])}

    return TinyModel(model, inputs, timestep_scale=1e-3, make_time=make_time)
