"""Joint-attention image transformers (MMDiT and relatives): SD3, AuraFlow, Qwen-Image, CogView, HiDream, ...

Configurations follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from forecache.testing.catalog.base import FLOW, Inputs, TinyModel, case, randn


@case("SD3Transformer2DModel")
def _sd3() -> TinyModel:
    from diffusers import SD3Transformer2DModel

    model = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=24,
        out_channels=4,
        pos_embed_max_size=16,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 5, 32),
            "pooled_projections": randn(g, b, 24),
        }

    return TinyModel(model, inputs)


@case("AuraFlowTransformer2DModel")
def _aura_flow() -> TinyModel:
    from diffusers import AuraFlowTransformer2DModel

    model = AuraFlowTransformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=4,
        num_mmdit_layers=2,
        num_single_dit_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        out_channels=4,
        pos_embed_max_size=64,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 4, 8, 8), "encoder_hidden_states": randn(g, b, 6, 32)}

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("QwenImageTransformer2DModel")
def _qwen_image() -> TinyModel:
    from diffusers import QwenImageTransformer2DModel

    model = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=3,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        axes_dims_rope=(8, 4, 4),
    )

    takes_lengths = "txt_seq_lens" in inspect.signature(model.forward).parameters

    def inputs(b: int, g: torch.Generator) -> Inputs:
        made: Inputs = {
            "hidden_states": randn(g, b, 16, 16),
            "encoder_hidden_states": randn(g, b, 5, 16),
            "encoder_hidden_states_mask": torch.ones(b, 5, dtype=torch.long),
            "img_shapes": [[(1, 4, 4)]] * b,
        }
        if takes_lengths:  # diffusers 0.35 needs the text lengths; later versions read the mask
            made["txt_seq_lens"] = [5] * b
        return made

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("QwenImage21Transformer2DModel")
def _qwen_image21() -> TinyModel:
    from diffusers import QwenImage21Transformer2DModel

    model = QwenImage21Transformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        context_in_dim=8,
        mlp_ratio=2,
        axes_dims_rope=(4, 6, 6),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        text, side = 4, 2
        # One vision slot per 2x2 group of target latents, after the text tokens.
        img_mask = torch.zeros(b, text + side * side // 4, dtype=torch.bool)
        img_mask[:, text:] = True
        return {
            "hidden_states": randn(g, b, side * side, 4),
            "encoder_hidden_states": randn(g, b, text, 8),
            "encoder_hidden_states_mask": torch.ones(b, text, dtype=torch.long),
            "img_shapes": [[(1, side, side)]] * b,
            "img_mask": img_mask,
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("NucleusMoEImageTransformer2DModel")
def _nucleus_moe() -> TinyModel:
    from diffusers import NucleusMoEImageTransformer2DModel

    model = NucleusMoEImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=4,
        joint_attention_dim=16,
        axes_dims_rope=(8, 4, 4),
        moe_enabled=False,
        capacity_factors=[8.0, 8.0],
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 16, 16),
            "encoder_hidden_states": randn(g, b, 8, 16),
            "encoder_hidden_states_mask": torch.ones(b, 8, dtype=torch.long),
            "img_shapes": [(1, 4, 4)] * b,
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


def _cogview_inputs(text_dim: int, side: int = 8) -> Callable[[int, torch.Generator], Inputs]:
    def inputs(b: int, g: torch.Generator) -> Inputs:
        size = torch.tensor([[side * 8, side * 8]] * b)
        return {
            "hidden_states": randn(g, b, 4, side, side),
            "encoder_hidden_states": randn(g, b, 8, text_dim),
            "original_size": size,
            "target_size": size.clone(),
            "crop_coords": torch.zeros(b, 2, dtype=torch.long),
        }

    return inputs


@case("CogView3PlusTransformer2DModel")
def _cogview3plus() -> TinyModel:
    from diffusers import CogView3PlusTransformer2DModel

    model = CogView3PlusTransformer2DModel(
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=4,
        num_attention_heads=2,
        out_channels=4,
        text_embed_dim=8,
        time_embed_dim=8,
        condition_dim=2,
        pos_embed_max_size=8,
        sample_size=8,
    )
    return TinyModel(model, _cogview_inputs(8))


@case("CogView4Transformer2DModel")
def _cogview4() -> TinyModel:
    from diffusers import CogView4Transformer2DModel

    model = CogView4Transformer2DModel(
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=4,
        num_attention_heads=4,
        out_channels=4,
        text_embed_dim=8,
        time_embed_dim=8,
        condition_dim=4,
    )
    return TinyModel(model, _cogview_inputs(8))


@case("GlmImageTransformer2DModel")
def _glm_image() -> TinyModel:
    from diffusers import GlmImageTransformer2DModel

    model = GlmImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        text_embed_dim=32,
        time_embed_dim=16,
        condition_dim=8,
        prior_vq_quantizer_codebook_size=64,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        side = 8
        return {
            "hidden_states": randn(g, b, 4, side, side),
            "encoder_hidden_states": randn(g, b, 12, 32),
            # One prior token per latent patch (the AR stage's image tokens).
            "prior_token_id": torch.randint(0, 64, (b, (side // 2) ** 2), generator=g),
            "prior_token_drop": torch.zeros(b, (side // 2) ** 2, dtype=torch.bool),
            "target_size": torch.tensor([[side, side]] * b, dtype=torch.float32),
            "crop_coords": torch.zeros(b, 2),
        }

    return TinyModel(model, inputs)


@case("HiDreamImageTransformer2DModel")
def _hidream() -> TinyModel:
    from diffusers import HiDreamImageTransformer2DModel

    model = HiDreamImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_channels=[8, 4],
        text_emb_dim=8,
        num_routed_experts=2,
        num_activated_experts=2,
        axes_dims_rope=(4, 2, 2),
        max_resolution=(16, 16),
        llama_layers=(0, 1, 2, 3),
        force_inference_output=True,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 16, 16),
            "encoder_hidden_states_t5": randn(g, b, 8, 8),
            # One Llama hidden-state layer per block: (layers, batch, tokens, dim).
            "encoder_hidden_states_llama3": randn(g, 4, b, 8, 4),
            "pooled_embeds": randn(g, b, 8),
        }

    return TinyModel(model, inputs, time_arg="timesteps")


@case("HunyuanDiT2DModel")
def _hunyuan_dit() -> TinyModel:
    from diffusers import HunyuanDiT2DModel

    model = HunyuanDiT2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=4,  # block 0 feeds a long skip into block 3 (19 -> 21..39 in the real 40 layers)
        attention_head_dim=8,
        num_attention_heads=2,
        cross_attention_dim=8,
        cross_attention_dim_t5=8,
        pooled_projection_dim=4,
        hidden_size=16,
        text_len=4,
        text_len_t5=4,
        activation_fn="gelu-approximate",
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        meta = torch.tensor([[1024.0, 1024.0, 16.0, 16.0, 0.0, 0.0]] * b)
        return {
            "hidden_states": randn(g, b, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 4, 8),
            "text_embedding_mask": torch.ones(b, 4),
            "encoder_hidden_states_t5": randn(g, b, 4, 8),
            "text_embedding_mask_t5": torch.ones(b, 4),
            "image_meta_size": meta,
            "style": torch.zeros(b, dtype=torch.long),
            # (cos, sin) over the 4x4 patches, head dim 8.
            "image_rotary_emb": (torch.ones(16, 8), torch.zeros(16, 8)),
        }

    return TinyModel(model, inputs)
