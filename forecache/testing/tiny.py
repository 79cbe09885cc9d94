"""Tiny random-weight configurations of every registered diffusers transformer, with matching inputs.

These exist to exercise the hooks on the real diffusers classes (layouts, argument plumbing, output
formats) in seconds on a CPU. Their weights are random: never judge forecast quality on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["TinyModel", "build_tiny", "tiny_model_names"]

Inputs = dict[str, Any]


@dataclass(frozen=True)
class TinyModel:
    """A tiny transformer and a function producing one call's inputs (everything but `timestep`).

    Attributes:
        model: The diffusers transformer, in eval mode, float32, on CPU.
        make_inputs: `make_inputs(batch_size, generator)` returns the keyword arguments of one call
            except `timestep`.
        timestep_scale: Multiply a timestep in [0, 1000] by this before passing it (Flux-style models
            take `t / 1000`).

    """

    model: torch.nn.Module
    make_inputs: Callable[[int, torch.Generator], Inputs]
    timestep_scale: float = 1.0


def _randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator)


def _dit() -> TinyModel:
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_zero",
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {"hidden_states": _randn(g, b, 4, 8, 8), "class_labels": torch.arange(b) % 10}

    return TinyModel(model, inputs)


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
            "hidden_states": _randn(g, b, 4, 8, 8),
            "encoder_hidden_states": _randn(g, b, 5, 32),
            "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
        }

    return TinyModel(model, inputs)


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
            "hidden_states": _randn(g, b, 4, 8, 8),
            "encoder_hidden_states": _randn(g, b, 5, 32),
            "pooled_projections": _randn(g, b, 24),
        }

    return TinyModel(model, inputs)


def _flux() -> TinyModel:
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=24,
        axes_dims_rope=(4, 2, 2),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": _randn(g, b, 16, 4),
            "encoder_hidden_states": _randn(g, b, 5, 32),
            "pooled_projections": _randn(g, b, 24),
            "img_ids": torch.stack(
                torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), dim=-1
            ).reshape(16, 3),
            "txt_ids": torch.zeros(5, 3),
        }

    return TinyModel(model, inputs, timestep_scale=1e-3)


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
        return {"hidden_states": _randn(g, b, 4, 2, 8, 8), "encoder_hidden_states": _randn(g, b, 5, 32)}

    return TinyModel(model, inputs)


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
            "hidden_states": _randn(g, b, 4, 2, 4, 4),
            "encoder_hidden_states": _randn(g, b, 5, 16),
            "encoder_attention_mask": torch.ones(b, 5, dtype=torch.bool),
            "pooled_projections": _randn(g, b, 8),
            "guidance": torch.full((b,), 3.5),
        }

    return TinyModel(model, inputs)


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
        return {"hidden_states": _randn(g, b, 3, 4, 8, 8), "encoder_hidden_states": _randn(g, b, 5, 16)}

    return TinyModel(model, inputs)


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

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {
            "hidden_states": _randn(g, b, 16, 16),
            "encoder_hidden_states": _randn(g, b, 5, 16),
            "encoder_hidden_states_mask": torch.ones(b, 5, dtype=torch.long),
            "img_shapes": [[(1, 4, 4)]] * b,
        }

    return TinyModel(model, inputs, timestep_scale=1e-3)


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
            "hidden_states": _randn(g, b, 2 * 4 * 4, 4),
            "encoder_hidden_states": _randn(g, b, 5, 16),
            "encoder_attention_mask": torch.ones(b, 5, dtype=torch.long),
            "num_frames": 2,
            "height": 4,
            "width": 4,
        }

    return TinyModel(model, inputs)


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
        return {"hidden_states": _randn(g, b, 4, 8, 8), "encoder_hidden_states": _randn(g, b, 5, 16)}

    return TinyModel(model, inputs)


_BUILDERS: dict[str, Callable[[], TinyModel]] = {
    "DiTTransformer2DModel": _dit,
    "PixArtTransformer2DModel": _pixart,
    "SD3Transformer2DModel": _sd3,
    "FluxTransformer2DModel": _flux,
    "WanTransformer3DModel": _wan,
    "HunyuanVideoTransformer3DModel": _hunyuan_video,
    "CogVideoXTransformer3DModel": _cogvideox,
    "QwenImageTransformer2DModel": _qwen_image,
    "LTXVideoTransformer3DModel": _ltx_video,
    "SanaTransformer2DModel": _sana,
}


def tiny_model_names() -> list[str]:
    """Return the class names that have a tiny configuration, in registry order."""
    return list(_BUILDERS)


def build_tiny(class_name: str, seed: int = 0) -> TinyModel:
    """Build the tiny random-weight model of a diffusers transformer class.

    Args:
        class_name: A name from `tiny_model_names()`, e.g. ``"FluxTransformer2DModel"``.
        seed: Seed of the random weights.

    Returns:
        The model (eval mode, float32, CPU) with its input factory.

    Raises:
        ValueError: If `class_name` has no tiny configuration.

    """
    if class_name not in _BUILDERS:
        raise ValueError(f"`class_name` must be one of {tiny_model_names()}, got {class_name!r}")
    torch.manual_seed(seed)
    tiny = _BUILDERS[class_name]()
    tiny.model.eval()
    return tiny
