"""Tiny real diffusers pipelines written to disk, to test loading by folder (``--model DIR``) offline.

Built from diffusers' own components at the tiny sizes diffusers' tests use, with random weights,
and saved with ``save_pretrained``:

- `save_tiny_wan` / `tiny_wan`: a text-to-video `WanPipeline` (`WanTransformer3DModel`,
  `AutoencoderKLWan`, a UMT5 text encoder built from a config, and a word-level tokenizer made here
  with ``tokenizers``: nothing is downloaded), optionally with Wan 2.2's second expert. Its calls
  return ``frames``; guidance runs as two transformer calls. `forecache.testing.tiny_pipelines`
  builds the other pipelines the same way.
- `save_tiny_unet_pipeline`: a `StableDiffusionPipeline`-style folder whose denoiser is a UNet, for
  the refusal path (forecache caches diffusion transformers only).

Random weights: plumbing and speed, never quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TINY_WAN_CALL",
    "VOCAB_SIZE",
    "save_tiny_unet_pipeline",
    "save_tiny_wan",
    "tiny_wan",
    "word_tokenizer",
]

TINY_WAN_CALL = {"height": 16, "width": 16, "frames": 5, "guidance_scale": 5.0}
"""Call settings the tiny Wan pipeline runs at (16x16 pixels, 5 frames: 2 latent frames)."""

_WORDS = (
    "a an the of and in on with at to is photo video dog cat bird fish tree car house city street river "
    "sea sky sun moon red blue green yellow white black small big old young running flying dancing "
    "monkey robot person people man woman child painting drawing portrait landscape night day"
).split()


#: Token ids the word tokenizer produces (pad, end of text, unknown, then the words): text encoders' vocab.
VOCAB_SIZE = len(_WORDS) + 3


def word_tokenizer(max_length: int = 16) -> object:
    """Build a word-level `PreTrainedTokenizerFast` locally (pad 0, end-of-text 1, unknown 2).

    Args:
        max_length: The tokenizer's ``model_max_length``. Default 16.

    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["<pad>", "</s>", "<unk>", *_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def tiny_wan(seed: int = 0, two_experts: bool = False) -> Any:
    """Build a tiny random-weight `WanPipeline` (Wan 2.1; with `two_experts`, Wan 2.2's two transformers).

    Args:
        seed: Seed of the random weights. Default 0.
        two_experts: Add `transformer_2` (the low-noise expert) and a ``boundary_ratio`` of 0.875, as
            Wan 2.2 A14B does. Default False.

    """
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    def transformer() -> WanTransformer3DModel:
        return WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=3,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )

    torch.manual_seed(seed)
    tokenizer = word_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=VOCAB_SIZE,
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    first = transformer()
    extra: dict[str, Any] = {}
    if two_experts:
        torch.manual_seed(seed + 1)
        extra = {"transformer_2": transformer(), "boundary_ratio": 0.875}
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=first,
        **extra,
    )


def save_tiny_wan(folder: str | Path, seed: int = 0) -> Path:
    """Build a tiny random-weight `WanPipeline` (`tiny_wan`) and ``save_pretrained`` it into `folder`.

    Args:
        folder: Destination (created).
        seed: Seed of the random weights. Default 0.

    Returns:
        The folder, loadable with ``DiffusionPipeline.from_pretrained`` and ``forecache bench
        --model``. Call it at `TINY_WAN_CALL` (``max_sequence_length`` up to 16).

    """
    folder = Path(folder)
    tiny_wan(seed).save_pretrained(folder)
    return folder


def save_tiny_unet_pipeline(folder: str | Path) -> Path:
    """Save a tiny `StableDiffusionPipeline`-style folder (UNet denoiser) for the refusal path.

    Only ``model_index.json`` and the UNet are written: a folder whose index names no
    ``transformer`` is refused before any weight is read.

    Returns:
        The folder.

    """
    import json

    from diffusers import UNet2DConditionModel

    folder = Path(folder)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
    )
    unet.save_pretrained(folder / "unet")
    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
