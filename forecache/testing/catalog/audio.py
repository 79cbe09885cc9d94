"""Denoisers of other modalities: audio DiTs, the spectrogram decoder, the RFD4 protein denoiser.

Stable Audio, Stable Audio 3, ACE-Step, LongCat-Audio, MiniMax-Music 3, the spectrogram-diffusion
decoder (T5-FiLM) and RFD4/La-Proteina.

Configurations follow diffusers' own model tests where they exist, shrunk where noted.
"""

from __future__ import annotations

from typing import Any

import torch

from forecache.testing.catalog.base import FLOW, Inputs, TinyModel, case, randn, wake


@case("StableAudioDiTModel")
def _stable_audio() -> TinyModel:
    from diffusers import StableAudioDiTModel
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    model = StableAudioDiTModel(
        sample_size=16,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_attention_heads=2,
        out_channels=4,
        cross_attention_dim=8,
        time_proj_dim=8,
        global_states_input_dim=8,
        cross_attention_input_dim=8,
    )
    length = 16
    # StableAudioPipeline: rotary over the audio frames plus the prepended global token.
    rotary = get_1d_rotary_pos_embed(4, length + 1, use_real=True, repeat_interleave_real=False)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 4, length),
            "encoder_hidden_states": randn(g, b, 6, 8),
            "global_hidden_states": randn(g, b, 1, 8),
            "rotary_embedding": rotary,
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("StableAudio3DiTModel")
def _stable_audio3() -> TinyModel:
    from diffusers import StableAudio3DiTModel

    model = StableAudio3DiTModel(
        io_channels=8,
        patch_size=1,
        embed_dim=32,
        depth=2,
        num_heads=4,
        cond_token_dim=16,
        global_cond_dim=12,
        local_add_cond_dim=5,
        timestep_features_dim=16,
        ff_mult=2,
        num_memory_tokens=3,
        use_differential_attention=False,
    )
    wake(model, "preprocess_conv", "postprocess_conv")  # zero-initialised residual convolutions

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 8, 16),
            "encoder_hidden_states": randn(g, b, 4, 16),
            "global_hidden_states": randn(g, b, 12),
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("AceStepTransformer1DModel")
def _ace_step() -> TinyModel:
    from diffusers import AceStepTransformer1DModel

    model = AceStepTransformer1DModel(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        in_channels=24,  # acoustic latents + context latents (2x)
        audio_acoustic_hidden_dim=8,
        patch_size=2,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        sliding_window=16,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 8, 8),
            "encoder_hidden_states": randn(g, b, 10, 32),
            "context_latents": randn(g, b, 8, 16),
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        t = torch.full((b,), value)
        return {"timestep": t, "timestep_r": t}  # AceStepPipeline passes the same time as both

    return TinyModel(model, inputs, timestep_scale=FLOW, make_time=make_time)


@case("LongCatAudioDiTTransformer")
def _longcat_audio() -> TinyModel:
    from diffusers import LongCatAudioDiTTransformer

    model = LongCatAudioDiTTransformer(
        dit_dim=64, dit_depth=2, dit_heads=4, dit_text_dim=32, latent_dim=8, text_conv=False
    )
    wake(model, "norm_out.linear", "proj_out", "adaln_global_mlp")  # zero-initialised: zero output

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": randn(g, b, 16, 8),
            "encoder_hidden_states": randn(g, b, 10, 32),
            "encoder_attention_mask": torch.ones(b, 10, dtype=torch.bool),
            "attention_mask": torch.ones(b, 16, dtype=torch.bool),
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)


@case("MiniMaxMusic3Transformer1DModel")
def _minimax_music3() -> TinyModel:
    from diffusers import MiniMaxMusic3Transformer1DModel

    model = MiniMaxMusic3Transformer1DModel(
        in_channels=8,
        condition_dim=16,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        ff_inner_dim=32,
        rotary_dim=4,
        fourier_embedding_dim=8,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": randn(g, b, 8, 24), "encoder_hidden_states": randn(g, b, 24, 16)}

    # Its modular pipeline passes the flow time in [0, 1] with 0 = noise: it rises.
    return TinyModel(model, inputs, timestep_scale=-FLOW, timestep_offset=1.0)


@case("T5FilmDecoder")
def _t5_film() -> TinyModel:
    from diffusers import T5FilmDecoder

    model = T5FilmDecoder(
        input_dims=8,
        targets_length=16,
        d_model=16,
        num_layers=2,
        num_heads=2,
        d_kv=8,
        d_ff=32,
        dropout_rate=0.0,
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        # (encoding, mask) pairs of the note and continuous-context encoders.
        notes = (randn(g, b, 6, 16), torch.ones(b, 6, dtype=torch.bool))
        context = (randn(g, b, 4, 16), torch.ones(b, 4, dtype=torch.bool))
        return {"encodings_and_masks": [notes, context], "decoder_input_tokens": randn(g, b, 16, 8)}

    # SpectrogramDiffusionPipeline passes t / num_train_timesteps in [0, 1).
    return TinyModel(model, inputs, timestep_scale=0.999e-3, time_arg="decoder_noise_time")


@case("RFD4ProteinaTransformer")
def _rfd4_proteina() -> TinyModel:
    from diffusers.models.transformers.transformer_rfd4_proteina import RFD4ProteinaTransformer

    # The smallest feature set the trunk runs with: noisy coordinates and latents, both times.
    model = RFD4ProteinaTransformer(
        nlayers=2,
        token_dim=32,
        nheads=2,
        dim_cond=16,
        pair_repr_dim=8,
        latent_dim=4,
        token_type_emb_dim=4,
        cath_emb_dim=4,
        t_emb_dim=16,
        seq_sep_dim=8,
        xt_pair_dist_dim=8,
        feats_seq=("xt_bb_ca", "xt_local_latents", "token_type"),
        feats_cond_seq=("time_emb_bb_ca", "time_emb_local_latents"),
        feats_pair_repr=("xt_bb_ca_pair_dists",),
        feats_pair_cond=("time_emb_bb_ca", "time_emb_local_latents"),
        update_pair_repr_every_n=1,
        tri_mult_c=8,
    )
    residues = 6

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "bb_ca": randn(g, b, residues, 3),
            "local_latents": randn(g, b, residues, 4),
            "padding_mask": torch.ones(b, residues, dtype=torch.bool),
            "token_type": torch.zeros(b, residues, dtype=torch.long),
            "conditioning": {
                "is_in_context_conditioning": torch.zeros(b, residues, dtype=torch.bool),
                "supports_local_latent": torch.ones(b, residues, dtype=torch.bool),
            },
        }

    def make_time(value: float, b: int) -> dict[str, Any]:
        # Backbone and latent times in [0, 1], 0 = noise (the pipeline's two schedulers rise).
        t = torch.full((b,), value)
        return {"bb_ca_time": t, "local_latents_time": t}

    return TinyModel(
        model, inputs, timestep_scale=-FLOW, timestep_offset=1.0, time_arg="bb_ca_time", make_time=make_time
    )
