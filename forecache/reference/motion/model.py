"""The motion model's parts: a word-level tokenizer, a tiny UMT5 encoder, a Wan VAE and Wan transformers.

Everything is built from configurations (nothing downloaded) and assembled into diffusers' own
`WanPipeline`, which runs it unmodified. Sizes:

- tokenizer: word-level over the motion grammar's vocabulary (`forecache.reference.motion.grammar.WORDS`),
  pad 0, end of text 1, unknown 2; 32 tokens (call the pipeline with ``max_sequence_length=32``);
- `UMT5EncoderModel`: 2 layers, width 64, 0.14 M parameters;
- `AutoencoderKLWan`: 9 frames of 32x32 RGB <-> 5 latent frames of 16x16x8 (spatial compression 2,
  temporal 2: the first frame alone, then pairs, as Wan's causal VAE encodes), 0.46 M parameters
  (why not Wan's 8 and 4, or 4 and 4: BENCHMARKS.md, Motion);
- `WanTransformer3DModel`: 8 blocks of width 128 (4 heads of 32), feed-forward 256, patches of
  1x4x4 latents: 5 x 4 x 4 = 80 tokens per clip, 1.80 M parameters;
- `FlowMatchEulerDiscreteScheduler` with a fixed shift of 3;
- the two-expert variant (Wan 2.2 A14B's split): `transformer` for timesteps >= 875
  (``boundary_ratio`` 0.875, the high-noise steps), `transformer_2` below, each fine-tuned on its
  own noise range from the one-expert model. Its folder holds only the two experts, stored in
  float16 (`save_experts`); `load_experts` assembles them with the one-expert model's tokenizer,
  text encoder, VAE and scheduler (which they were trained with) into a float32 `WanPipeline`,
  which keeps both models within 25 MB.

Guidance is classifier-free in two transformer calls per step (``cache_context`` "cond" and
"uncond"), the empty negative prompt being what 10% of the training prompts were replaced by.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from forecache.reference.motion.grammar import FRAMES, WORDS
from forecache.reference.scenes.model import SPECIAL_TOKENS, t5_settings
from forecache.reference.scenes.model import build_tokenizer as build_word_tokenizer

__all__ = [
    "BOUNDARY_RATIO",
    "CALL_DEFAULTS",
    "MAX_TOKENS",
    "build_pipeline",
    "build_scheduler",
    "build_text_encoder",
    "build_tokenizer",
    "build_transformer",
    "build_vae",
    "load_experts",
    "save_experts",
    "vocab_size",
]

MAX_TOKENS = 32
"""Tokens per prompt (the pipeline's ``max_sequence_length``)."""

BOUNDARY_RATIO = 0.875
"""The two-expert variant's switch: `transformer` at timesteps >= 875 of 1000, `transformer_2` below."""

CALL_DEFAULTS: dict[str, Any] = {
    "height": 32,
    "width": 32,
    "num_frames": FRAMES,
    "max_sequence_length": MAX_TOKENS,
    "guidance_scale": 4.0,
}
"""Keyword arguments every call of the motion pipeline needs beside the prompt (WanPipeline's own
defaults are Wan 2.1's: 480x832 pixels, 81 frames, 512 text tokens)."""

_WIDTH_TEXT = 64
_LATENT_CHANNELS = 8


def vocab_size() -> int:
    """Return the number of token ids (the special tokens, then the grammar's words)."""
    return len(SPECIAL_TOKENS) + len(WORDS)


def build_tokenizer() -> Any:
    """Build the word-level tokenizer over the motion grammar (`build_word_tokenizer` of the scenes model)."""
    return build_word_tokenizer(WORDS, MAX_TOKENS)


def build_text_encoder() -> Any:
    """Build the tiny `UMT5EncoderModel` (its token states are the transformer's cross-attention input)."""
    from transformers import UMT5Config, UMT5EncoderModel

    settings = t5_settings(vocab_size(), _WIDTH_TEXT, MAX_TOKENS)
    return UMT5EncoderModel(UMT5Config(**settings, decoder_start_token_id=0))


def build_vae() -> Any:
    """Build the `AutoencoderKLWan`: spatial compression 2, temporal 2, 8 latent channels, 0.46 M parameters.

    Its ``latents_mean`` and ``latents_std`` start at 0 and 1; training sets them from the latents.
    """
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=16,
        z_dim=_LATENT_CHANNELS,
        dim_mult=[1, 2],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[True],
        latents_mean=[0.0] * _LATENT_CHANNELS,
        latents_std=[1.0] * _LATENT_CHANNELS,
        scale_factor_temporal=2,
        scale_factor_spatial=2,
    )


def build_transformer() -> Any:
    """Build the `WanTransformer3DModel`: 8 blocks of width 128 (4 heads of 32), 80 tokens, 1.80 M weights."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 4, 4),
        num_attention_heads=4,
        attention_head_dim=32,
        in_channels=_LATENT_CHANNELS,
        out_channels=_LATENT_CHANNELS,
        text_dim=_WIDTH_TEXT,
        freq_dim=256,
        ffn_dim=256,
        num_layers=8,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def build_scheduler() -> Any:
    """Build the sampler: flow-matching Euler with a fixed shift of 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)


def build_pipeline(
    transformer: Any | None = None,
    vae: Any | None = None,
    text_encoder: Any | None = None,
    transformer_2: Any | None = None,
) -> Any:
    """Assemble a diffusers `WanPipeline` from the given components, building the missing ones.

    Args:
        transformer (`WanTransformer3DModel`, *optional*): Default `build_transformer()`; with
            `transformer_2`, the high-noise expert.
        vae (`AutoencoderKLWan`, *optional*): Default `build_vae()`.
        text_encoder (`UMT5EncoderModel`, *optional*): Default `build_text_encoder()`.
        transformer_2 (`WanTransformer3DModel`, *optional*): The low-noise expert; given, the pipeline
            switches at `BOUNDARY_RATIO` (Wan 2.2's two experts). Default None: one transformer.

    Returns:
        A `WanPipeline` (call it with a prompt and `CALL_DEFAULTS`).

    """
    from diffusers import WanPipeline

    extra: dict[str, Any] = {}
    if transformer_2 is not None:
        extra = {"transformer_2": transformer_2, "boundary_ratio": BOUNDARY_RATIO}
    return WanPipeline(
        tokenizer=build_tokenizer(),
        text_encoder=text_encoder if text_encoder is not None else build_text_encoder(),
        vae=vae if vae is not None else build_vae(),
        scheduler=build_scheduler(),
        transformer=transformer if transformer is not None else build_transformer(),
        **extra,
    )


EXPERTS = ("transformer", "transformer_2")
"""The two-expert variant's components, in its folder's order (high-noise expert first)."""


def save_experts(pipe: Any, folder: str | Path) -> None:
    """Save a two-expert pipeline's `transformer` and `transformer_2`, in float16, into `folder`.

    The rest of the pipeline is the one-expert model's (`load_experts` takes it from there), so
    the variant adds two float16 transformers (2 x 3.5 MB) to the package instead of a second copy
    of everything in float32 (17 MB).

    Args:
        pipe (`WanPipeline`): Built with `build_pipeline(..., transformer_2=...)`.
        folder (`str` or `Path`): Created; gets ``transformer/`` and ``transformer_2/``.

    Raises:
        ValueError: `pipe` has no `transformer_2`.

    """
    if getattr(pipe, "transformer_2", None) is None:
        raise ValueError("`pipe` must have two experts (`transformer_2`), got a one-transformer pipeline")
    for name in EXPERTS:  # a copy: the pipeline's own experts stay in float32
        copy.deepcopy(getattr(pipe, name)).half().save_pretrained(str(Path(folder) / name))


def load_experts(folder: str | Path, shared: str | Path) -> Any:
    """Load the two-expert `WanPipeline`: the experts of `folder` (upcast to float32), the rest from `shared`.

    Args:
        folder (`str` or `Path`): Written by `save_experts`.
        shared (`str` or `Path`): The one-expert model's `save_pretrained` folder.

    Returns:
        A float32 `WanPipeline` with ``transformer``, ``transformer_2`` and ``boundary_ratio``
        `BOUNDARY_RATIO`, whose ``name_or_path`` is `folder`.

    """
    from diffusers import WanPipeline, WanTransformer3DModel

    experts = {
        name: WanTransformer3DModel.from_pretrained(str(Path(folder) / name), torch_dtype=torch.float32)
        for name in EXPERTS
    }
    pipe = WanPipeline.from_pretrained(str(shared), boundary_ratio=BOUNDARY_RATIO, **experts)
    pipe.register_to_config(_name_or_path=str(folder))
    return pipe
