"""Leaf helpers that build model inputs the way diffusers pipelines do (torch only, no forecache imports).

`forecache.reference`, `forecache.eval.arch` and the tests' tiny-model catalog all build FLUX position
ids here, so the three stay bitwise identical.
"""

from __future__ import annotations

import torch

__all__ = ["flux_image_ids"]


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
