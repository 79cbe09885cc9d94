"""FLUX-family transformers: double-stream blocks then single-stream blocks, rotary ids, time in [0, 1].

Configurations follow diffusers' own model tests (tests/models/transformers), shrunk where noted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from forecache.testing.catalog.base import FLOW, Inputs, TinyModel, case, randn
from forecache.testing.inputs import flux_image_ids


def _ids_inputs(
    in_channels: int, text_dim: int, tokens: int = 5, side: int = 4, pooled: int = 0
) -> Callable[[int, torch.Generator], Inputs]:
    """Packed latents, text embeddings and FLUX ids (plus pooled projections when ``pooled``)."""

    def inputs(b: int, g: torch.Generator) -> Inputs:
        made: Inputs = {
            "hidden_states": randn(g, b, side * side, in_channels),
            "encoder_hidden_states": randn(g, b, tokens, text_dim),
        }
        if pooled:
            made["pooled_projections"] = randn(g, b, pooled)
        made["img_ids"] = flux_image_ids(side, side)
        made["txt_ids"] = torch.zeros(tokens, 3)
        return made

    return inputs


@case("FluxTransformer2DModel")
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
    return TinyModel(model, _ids_inputs(4, 32, pooled=24), timestep_scale=FLOW)


@case("ChromaTransformer2DModel")
def _chroma() -> TinyModel:
    from diffusers import ChromaTransformer2DModel

    model = ChromaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 4, 8),
        approximator_num_channels=8,  # the modulation approximator defaults to 5 layers of width 5120
        approximator_hidden_dim=32,
        approximator_layers=2,
    )
    return TinyModel(model, _ids_inputs(4, 32), timestep_scale=FLOW)


@case("BriaTransformer2DModel")
def _bria() -> TinyModel:
    from diffusers import BriaTransformer2DModel

    model = BriaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=None,
        axes_dims_rope=[0, 4, 4],
    )
    # BriaPipeline passes the scheduler timestep unscaled (its time embedding expects 0..1000).
    return TinyModel(model, _ids_inputs(4, 32))


@case("BriaFiboTransformer2DModel")
def _bria_fibo() -> TinyModel:
    from diffusers import BriaFiboTransformer2DModel

    model = BriaFiboTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=64,
        text_encoder_dim=32,
        pooled_projection_dim=None,
        axes_dims_rope=[0, 4, 4],
    )
    base = _ids_inputs(16, 64, tokens=6)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        made = base(b, g)
        text = made["encoder_hidden_states"][:, :, :32]
        # One hidden-state layer per block (double + single), as the pipeline hands them over.
        made["text_encoder_layers"] = [text] * 4
        return made

    return TinyModel(model, inputs)


@case("LongCatImageTransformer2DModel")
def _longcat_image() -> TinyModel:
    from diffusers import LongCatImageTransformer2DModel

    model = LongCatImageTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    base = _ids_inputs(4, 32)

    def inputs(b: int, g: torch.Generator) -> Inputs:
        return {**base(b, g), "guidance": torch.full((b,), 3.5)}

    return TinyModel(model, inputs, timestep_scale=FLOW, guidance=True)


@case("OvisImageTransformer2DModel")
def _ovis_image() -> TinyModel:
    from diffusers import OvisImageTransformer2DModel

    model = OvisImageTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    return TinyModel(model, _ids_inputs(4, 32), timestep_scale=FLOW)


def _flux2_ids(b: int, grid: tuple[int, int, int], tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FLUX.2 ``(t, h, w, l)`` ids: image grid with l = 0, text along l; batched like Flux2Pipeline."""
    t, h, w = (torch.arange(n) for n in grid)
    image = torch.cartesian_prod(t, h, w, torch.arange(1))
    text = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(tokens))
    return image.unsqueeze(0).expand(b, -1, -1), text.unsqueeze(0).expand(b, -1, -1)


@case("Flux2Transformer2DModel")
def _flux2() -> TinyModel:
    from diffusers import Flux2Transformer2DModel

    model = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        img_ids, txt_ids = _flux2_ids(b, (1, 4, 4), 6)
        return {
            "hidden_states": randn(g, b, 16, 4),
            "encoder_hidden_states": randn(g, b, 6, 32),
            "img_ids": img_ids,
            "txt_ids": txt_ids,
            "guidance": torch.full((b,), 4.0),
        }

    return TinyModel(model, inputs, timestep_scale=FLOW, guidance=True)


@case("Flux3Transformer2DModel")
def _flux3() -> TinyModel:
    from diffusers import Flux3Transformer2DModel

    # No diffusers test yet: sized like FLUX.2's (two heads of 16, rope axes summing to the head).
    model = Flux3Transformer2DModel(
        in_channels=4,
        cond_in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 4, 4, 4),
    )

    def inputs(b: int, g: torch.Generator) -> Inputs:
        img_ids, txt_ids = _flux2_ids(1, (1, 4, 4), 6)
        return {
            "hidden_states": randn(g, b, 16, 4),
            "encoder_hidden_states": randn(g, b, 6, 32),
            "img_ids": img_ids[0],
            "txt_ids": txt_ids[0],
        }

    return TinyModel(model, inputs, timestep_scale=FLOW)
