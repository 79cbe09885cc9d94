"""Leaf helpers that build model inputs the way diffusers pipelines do (torch only, no forecache imports).

`forecache.reference`, `forecache.eval.arch` and the tests' tiny-model catalog all build FLUX position
ids and pack FLUX latents here, so they stay bitwise identical to each other and to `FluxPipeline`
(tests/fixtures/test_catalog.py compares them).
"""

from __future__ import annotations

import torch

__all__ = ["flux_image_ids", "flux_pack", "flux_unpack"]


def flux_image_ids(
    height: int, width: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Position ids of packed FLUX image tokens, as `FluxPipeline._prepare_latent_image_ids` builds them.

    Args:
        height: Token rows (latent height / 2 for FLUX's 2x2 packing).
        width: Token columns.
        device: Device of the result (default: CPU).
        dtype: Dtype of the result. Default float32.

    Returns:
        Shape ``(height * width, 3)``, row-major: ``(0, row, column)``.

    Example:
        >>> flux_image_ids(2, 2).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]

    """
    ids = torch.zeros(height, width, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(height)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(width)[None, :]
    return ids.reshape(height * width, 3).to(device=device, dtype=dtype)


def flux_pack(images: torch.Tensor) -> torch.Tensor:
    """Pack latents 2x2 into tokens, as `FluxPipeline` packs them.

    Args:
        images: Shape ``(batch, channels, height, width)``, height and width even.

    Returns:
        Shape ``(batch, height/2 * width/2, channels * 4)``.

    """
    b, c, h, w = images.shape
    x = images.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def flux_unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Invert `flux_pack`.

    Args:
        tokens: Shape ``(batch, height/2 * width/2, channels * 4)``.
        height: Latent height.
        width: Latent width.

    Returns:
        Shape ``(batch, channels, height, width)``.

    """
    b, _, c4 = tokens.shape
    x = tokens.view(b, height // 2, width // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, height, width)
