"""Image transformers that run text and image as one sequence (or text refiners then one stream).

Lumina-Next, Lumina 2, Z-Image, PRX, Ernie-Image, OmniGen, Krea 2, Ideogram 4 and Bria-Fibo 2.
Configurations follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
Lumina, Z-Image and Ideogram 4 pipelines pass a time that rises from 0 (noise) to 1 (image).
"""

from __future__ import annotations

import torch

from forecache.testing.catalog.base import FLOW, Inputs, TinyModel, case, randn, wake


@case("LuminaNextDiT2DModel")
def _lumina_next() -> TinyModel:
    from diffusers import LuminaNextDiT2DModel
    from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina

    model = LuminaNextDiT2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=4,
        hidden_size=24,
        num_layers=2,
        num_attention_heads=3,
        num_kv_heads=1,
        multiple_of=16,
        ffn_dim_multiplier=None,
        norm_eps=1e-5,
        learn_sigma=False,
        qk_norm=True,
        cross_attention_dim=32,
        scaling_factor=1.0,
    )
    wake(model, ".gate")  # zero-initialised cross-attention gates
    rotary = get_2d_rotary_pos_embed_lumina(model.head_dim, 384, 384)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 8, 32),
            "encoder_mask": torch.ones(b, 8),
            "image_rotary_emb": rotary,
            "cross_attention_kwargs": {},
        }

    return TinyModel(model, inputs, timestep_scale=-FLOW, timestep_offset=1.0)


@case("Lumina2Transformer2DModel")
def _lumina2() -> TinyModel:
    from diffusers import Lumina2Transformer2DModel

    model = Lumina2Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=4,
        hidden_size=24,
        num_layers=2,
        num_refiner_layers=1,
        num_attention_heads=3,
        num_kv_heads=1,
        multiple_of=2,
        ffn_dim_multiplier=None,
        norm_eps=1e-5,
        scaling_factor=1.0,
        axes_dim_rope=(4, 2, 2),
        axes_lens=(128, 128, 128),
        cap_feat_dim=32,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, 8, 8),
            "encoder_hidden_states": randn(g, b, 8, 32),
            "encoder_attention_mask": torch.ones(b, 8, dtype=torch.bool),
        }

    return TinyModel(model, inputs, timestep_scale=-FLOW, timestep_offset=1.0)


@case("ZImageTransformer2DModel")
def _z_image() -> TinyModel:
    from diffusers import ZImageTransformer2DModel

    model = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=16,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=1,
        n_kv_heads=2,
        qk_norm=True,
        cap_feat_dim=16,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],
        axes_lens=[256, 32, 32],
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # Lists of per-sample tensors, as ZImagePipeline passes them (positionally: x, t, cap_feats).
        return {
            "x": [randn(g, 16, 1, 8, 8) for _ in range(b)],
            "cap_feats": [randn(g, 8, 16) for _ in range(b)],
        }

    return TinyModel(model, inputs, time_arg="t", timestep_scale=-FLOW, timestep_offset=1.0)


@case("PRXTransformer2DModel")
def _prx() -> TinyModel:
    from diffusers.models.transformers.transformer_prx import PRXTransformer2DModel

    # diffusers' test uses width 1792; two heads of 16 exercise the same code.
    model = PRXTransformer2DModel(
        in_channels=16,
        patch_size=2,
        context_in_dim=32,
        hidden_size=32,
        mlp_ratio=3.5,
        num_heads=2,
        depth=3,
        axes_dim=[8, 8],
        theta=10_000,
    )
    wake(model, "modulation.lin")  # zero-initialised: the blocks would ignore the time

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 16, 8, 8), "encoder_hidden_states": randn(g, b, 8, 32)}

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("ErnieImageTransformer2DModel")
def _ernie_image() -> TinyModel:
    from diffusers import ErnieImageTransformer2DModel

    model = ErnieImageTransformer2DModel(
        hidden_size=16,
        num_attention_heads=1,
        num_layers=2,
        ffn_hidden_size=16,
        in_channels=16,
        out_channels=16,
        patch_size=1,
        text_in_dim=16,
        rope_theta=256,
        rope_axes_dim=(8, 4, 4),
        eps=1e-6,
        qk_layernorm=True,
    )
    wake(model, "adaLN_modulation", "final_linear")  # zero-initialised: the output would be all zero

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 16, 8, 8),
            "text_bth": randn(g, b, 8, 16),
            "text_lens": torch.full((b,), 8),
        }

    return TinyModel(model, inputs)


@case("OmniGenTransformer2DModel")
def _omnigen() -> TinyModel:
    from diffusers import OmniGenTransformer2DModel

    # diffusers' test stacks 20 layers; 2 keep the structure.
    model = OmniGenTransformer2DModel(
        hidden_size=16,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=32,
        num_layers=2,
        pad_token_id=0,
        vocab_size=1000,
        in_channels=4,
        time_step_dim=4,
        rope_scaling={"long_factor": list(range(1, 3)), "short_factor": list(range(1, 3))},
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        text, side = 24, 8
        seq = text + 1 + side * side // 4
        return {
            "hidden_states": randn(g, b, 4, side, side),
            "input_ids": torch.randint(0, 10, (b, text), generator=g),
            "input_img_latents": [randn(g, 1, 4, side, side)],
            "input_image_sizes": {0: [[0, side * side // 4]]},
            "attention_mask": torch.ones(b, seq, seq),
            "position_ids": torch.arange(seq).repeat(b, 1),
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("Krea2Transformer2DModel")
def _krea2() -> TinyModel:
    from diffusers import Krea2Transformer2DModel

    model = Krea2Transformer2DModel(
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=32,
        timestep_embed_dim=8,
        text_hidden_dim=16,
        num_text_layers=3,
        text_num_attention_heads=2,
        text_num_key_value_heads=1,
        text_intermediate_size=16,
        num_layerwise_text_blocks=1,
        num_refiner_text_blocks=1,
        axes_dims_rope=(4, 2, 2),
        rope_theta=1000.0,
        norm_eps=1e-5,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        text, side = 4, 2
        position_ids = torch.zeros(text + side * side, 3)
        position_ids[text:, 1] = torch.arange(side).repeat_interleave(side).float()
        position_ids[text:, 2] = torch.arange(side).repeat(side).float()
        return {
            "hidden_states": randn(g, b, side * side, 16),
            "encoder_hidden_states": randn(g, b, text, 3, 16),
            "position_ids": position_ids,
            "encoder_attention_mask": torch.ones(b, text, dtype=torch.bool),
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("Ideogram4Transformer2DModel")
def _ideogram4() -> TinyModel:
    from diffusers import Ideogram4Transformer2DModel
    from diffusers.models.transformers import transformer_ideogram4 as ideogram4

    model = Ideogram4Transformer2DModel(
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        intermediate_size=32,
        adaln_dim=16,
        llm_features_dim=24,
        rope_theta=10_000,
        mrope_section=(2, 1, 1),
        norm_eps=1e-5,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        text, image = 4, 4  # one packed sequence: text tokens, then a 2x2 image
        hidden = torch.zeros(b, text + image, 16)
        hidden[:, text:] = randn(g, b, image, 16)
        encoder = torch.zeros(b, text + image, 24)
        encoder[:, :text] = randn(g, b, text, 24)
        position_ids = torch.zeros(b, text + image, 3, dtype=torch.long)
        position_ids[:, :text] = torch.arange(text)[:, None]
        offset = ideogram4.IMAGE_POSITION_OFFSET
        position_ids[:, text:, 0] = offset
        position_ids[:, text:, 1] = torch.tensor([0, 0, 1, 1]) + offset
        position_ids[:, text:, 2] = torch.tensor([0, 1, 0, 1]) + offset
        indicator = torch.full((b, text + image), ideogram4.OUTPUT_IMAGE_INDICATOR, dtype=torch.long)
        indicator[:, :text] = ideogram4.LLM_TOKEN_INDICATOR
        return {
            "hidden_states": hidden,
            "encoder_hidden_states": encoder,
            "position_ids": position_ids,
            "segment_ids": torch.ones(b, text + image, dtype=torch.long),
            "indicator": indicator,
        }

    return TinyModel(model, inputs, timestep_scale=-FLOW, timestep_offset=1.0)


@case("BriaFibo2Transformer2DModel")
def _bria_fibo2() -> TinyModel:
    from diffusers import BriaFibo2Transformer2DModel

    model = BriaFibo2Transformer2DModel(
        in_channels=4,
        patch_size=2,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        cap_feat_dim=24,
        injection_layer_ids=(1,),
        perceiver_num_layers=1,
        min_num_gist_tokens=4,
        max_num_gist_tokens=8,
        gist_step=4,
        gist_min_text_len=4,
        gist_max_text_len=16,
        axes_dims=(4, 6, 6),
        axes_lens=(16, 16, 16),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # One text bundle for the Perceiver plus one per injection block.
        return {"hidden_states": randn(g, b, 4, 8, 8), "encoder_hidden_states": randn(g, b, 2, 6, 24)}

    return TinyModel(model, inputs, timestep_scale=FLOW)
