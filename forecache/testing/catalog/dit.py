"""DiT-style transformers with one block list and cross-attention to text (or class labels).

DiT, PixArt, the generic `Transformer2DModel`, Sana, Latte, Allegro and the unCLIP prior. Configurations
follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.testing.catalog.base import Inputs, TinyModel, case, randn

#: DiT-XL/2's structure, tiny: class-conditional adaLN-zero blocks over 2x2 patches.
_DIT = {
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "in_channels": 4,
    "out_channels": 4,
    "num_layers": 3,
    "sample_size": 8,
    "patch_size": 2,
    "num_embeds_ada_norm": 1000,
    "norm_type": "ada_norm_zero",
}


def _class_inputs(b: int, g: torch.Generator) -> Inputs:
    return {"hidden_states": randn(g, b, 4, 8, 8), "class_labels": torch.arange(b) % 10}


@case("DiTTransformer2DModel")
def _dit() -> TinyModel:
    from diffusers import DiTTransformer2DModel

    return TinyModel(DiTTransformer2DModel(**_DIT), _class_inputs)


@case("PixArtTransformer2DModel")
def _pixart() -> TinyModel:
    from diffusers import PixArtTransformer2DModel

    model = PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=3,
        cross_attention_dim=16,
        sample_size=8,
        patch_size=2,
        caption_channels=32,
        norm_type="ada_norm_single",
        num_embeds_ada_norm=1000,
        use_additional_conditions=False,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 5, 32),
            "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
        }

    return TinyModel(model, inputs)


@case("Transformer2DModel")
def _transformer_2d() -> TinyModel:
    from diffusers import Transformer2DModel

    # The patched, class-conditional form (what DiT pipelines loaded before the dedicated classes).
    return TinyModel(Transformer2DModel(**_DIT), _class_inputs)


@case("SanaTransformer2DModel")
def _sana() -> TinyModel:
    from diffusers import SanaTransformer2DModel

    model = SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=3,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=16,
        sample_size=8,
        patch_size=1,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 4, 8, 8), "encoder_hidden_states": randn(g, b, 5, 16)}

    return TinyModel(model, inputs)


@case("SanaVideoTransformer3DModel")
def _sana_video() -> TinyModel:
    from diffusers import SanaVideoTransformer3DModel

    model = SanaVideoTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=2,
        num_cross_attention_heads=2,
        cross_attention_head_dim=12,
        cross_attention_dim=24,
        caption_channels=16,
        mlp_ratio=2.5,
        attention_bias=False,
        sample_size=8,
        patch_size=(1, 2, 2),
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 16, 2, 8, 8), "encoder_hidden_states": randn(g, b, 12, 16)}

    return TinyModel(model, inputs)


@case("LatteTransformer3DModel")
def _latte() -> TinyModel:
    from diffusers import LatteTransformer3DModel

    model = LatteTransformer3DModel(
        sample_size=8,
        num_layers=2,
        patch_size=2,
        attention_head_dim=4,
        num_attention_heads=2,
        caption_channels=8,
        in_channels=4,
        cross_attention_dim=8,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        video_length=2,  # the temporal position table must match the latent frames
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 2, 8, 8),
            "encoder_hidden_states": randn(g, b, 8, 8),
            "enable_temporal_attentions": True,
        }

    return TinyModel(model, inputs)


@case("AllegroTransformer3DModel")
def _allegro() -> TinyModel:
    from diffusers import AllegroTransformer3DModel

    model = AllegroTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        cross_attention_dim=16,
        sample_width=8,
        sample_height=8,
        sample_frames=8,
        caption_channels=8,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 4, 2, 8, 8), "encoder_hidden_states": randn(g, b, 16, 8)}

    return TinyModel(model, inputs)


@case("PriorTransformer")
def _prior() -> TinyModel:
    from diffusers import PriorTransformer

    # The unCLIP / Kandinsky prior: denoises one CLIP image embedding given text tokens.
    model = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=4,
        num_layers=2,
        embedding_dim=8,
        num_embeddings=7,
        additional_embeddings=4,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 8),
            "proj_embedding": randn(g, b, 8),
            "encoder_hidden_states": randn(g, b, 7, 8),
        }

    return TinyModel(model, inputs)


@case("UniDiffuserModel")
def _unidiffuser() -> TinyModel:
    from diffusers import UniDiffuserModel

    # The U-ViT of the (deprecated) UniDiffuser pipeline: image latents, CLIP image embedding and text
    # tokens in one sequence, long skips from `transformer_in_blocks` to `transformer_out_blocks`.
    model = UniDiffuserModel(
        text_dim=32,
        clip_img_dim=32,
        num_text_tokens=8,
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        sample_size=8,
        patch_size=2,
        activation_fn="gelu",
        num_embeds_ada_norm=1000,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "latent_image_embeds": randn(g, b, 4, 8, 8),
            "image_embeds": randn(g, b, 1, 32),
            "prompt_embeds": randn(g, b, 8, 32),
            "data_type": 1,
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        t = torch.full((b,), value)
        return {"timestep_img": t, "timestep_text": t}  # joint generation: both modalities at t

    return TinyModel(model, inputs, time_arg="timestep_img", make_time=make_time)
