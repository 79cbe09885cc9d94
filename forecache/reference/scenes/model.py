"""The scenes model's parts: word-level tokenizers, tiny CLIP and T5 encoders, a KL VAE, a FLUX transformer.

Everything is built from configurations (nothing downloaded) and assembled into diffusers' own
`FluxPipeline`, which runs it unmodified. Sizes:

- tokenizers: word-level over the grammar's vocabulary (`forecache.reference.scenes.grammar.WORDS`),
  pad 0, end of text 1, unknown 2; 36 tokens (call the pipeline with ``max_sequence_length=36``);
- `CLIPTextModel` (2 layers, width 64) for the pooled vector, `T5EncoderModel` (2 layers, width 64)
  for the token sequence;
- `AutoencoderKL` with two levels (32x32 RGB <-> 16x16x4 latents, packed by the pipeline into 64
  tokens of width 16);
- `FluxTransformer2DModel` with 4 double- and 8 single-stream blocks (FLUX.1-dev's 1:2 mix), width
  128 (4 heads of 32), the guidance embedding of FLUX.1-dev;
- `FlowMatchEulerDiscreteScheduler` with no shift (uniform noise levels: 32x32 images need none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forecache.reference.scenes.grammar import WORDS

__all__ = [
    "CALL_DEFAULTS",
    "MAX_TOKENS",
    "SPECIAL_TOKENS",
    "build_clip",
    "build_pipeline",
    "build_scheduler",
    "build_t5",
    "build_tokenizer",
    "build_transformer",
    "build_vae",
    "t5_settings",
    "vocab_size",
]

MAX_TOKENS = 36
"""Tokens per prompt for both encoders (the pipeline's ``max_sequence_length``)."""

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
"""The tokenizers' special tokens, ids 0, 1 and 2."""

CALL_DEFAULTS: dict[str, Any] = {
    "height": 32,
    "width": 32,
    "max_sequence_length": MAX_TOKENS,
    "guidance_scale": 3.5,
}
"""Keyword arguments every call of the scenes pipeline needs beside the prompt (FluxPipeline's own
defaults are FLUX.1-dev's: 1024x1024 pixels and 512 text tokens)."""

_WIDTH_TEXT = 64


def vocab_size() -> int:
    """Return the number of token ids (the special tokens, then the grammar's words)."""
    return len(SPECIAL_TOKENS) + len(WORDS)


def build_tokenizer(words: Sequence[str] = WORDS, max_tokens: int = MAX_TOKENS) -> Any:
    """Build the word-level tokenizer (a `PreTrainedTokenizerFast`, saved and loaded by `save_pretrained`).

    Words outside the grammar become ``<unk>``; punctuation is split off; an end-of-text token closes
    every prompt.

    Args:
        words (`Sequence[str]`, defaults to the scenes grammar's `WORDS`): The vocabulary after the
            special tokens (ids 3 onwards, in this order).
        max_tokens (`int`, defaults to `MAX_TOKENS`): The tokenizer's ``model_max_length``.

    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate([*SPECIAL_TOKENS, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_tokens,
    )


def build_clip() -> Any:
    """Build the tiny `CLIPTextModel` (its pooled end-of-text state is FLUX's pooled projection)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size(),
            hidden_size=_WIDTH_TEXT,
            intermediate_size=4 * _WIDTH_TEXT,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            hidden_act="gelu",
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=0,
            projection_dim=_WIDTH_TEXT,
        )
    )


def t5_settings(vocab: int, width: int, max_tokens: int) -> dict[str, Any]:
    """Return the tiny T5 encoder's config fields (two layers of four heads), shared by T5 and UMT5."""
    return {
        "vocab_size": vocab,
        "d_model": width,
        "d_kv": 16,
        "d_ff": 4 * width,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 16,
        "relative_attention_max_distance": max_tokens,
        "dropout_rate": 0.0,
        "pad_token_id": 0,
        "eos_token_id": 1,
    }


def build_t5() -> Any:
    """Build the tiny `T5EncoderModel` (its token states are FLUX's text stream)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**t5_settings(vocab_size(), _WIDTH_TEXT, MAX_TOKENS)))


def build_vae() -> Any:
    """Build the `AutoencoderKL`: 32x32 RGB to 16x16x4 latents (scale factor 2), 0.66 M parameters."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=32,
        scaling_factor=1.0,
        shift_factor=0.0,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def build_transformer() -> Any:
    """Build the `FluxTransformer2DModel`: 4 double- and 8 single-stream blocks, width 128, 4.5 M weights."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=4,
        num_single_layers=8,
        attention_head_dim=32,
        num_attention_heads=4,
        joint_attention_dim=_WIDTH_TEXT,
        pooled_projection_dim=_WIDTH_TEXT,
        guidance_embeds=True,
        axes_dims_rope=[8, 12, 12],
    )


def build_scheduler() -> Any:
    """Build the sampler: flow-matching Euler, no shift (the last stages trained on uniform noise levels)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)


def build_pipeline(
    transformer: Any | None = None,
    vae: Any | None = None,
    text_encoder: Any | None = None,
    text_encoder_2: Any | None = None,
) -> Any:
    """Assemble a diffusers `FluxPipeline` from the given components, building the missing ones.

    Args:
        transformer (`FluxTransformer2DModel`, *optional*): Default `build_transformer()`.
        vae (`AutoencoderKL`, *optional*): Default `build_vae()`.
        text_encoder (`CLIPTextModel`, *optional*): Default `build_clip()`.
        text_encoder_2 (`T5EncoderModel`, *optional*): Default `build_t5()`.

    Returns:
        A `FluxPipeline` (call it with `CALL_DEFAULTS`).

    """
    from diffusers import FluxPipeline

    return FluxPipeline(
        transformer=transformer if transformer is not None else build_transformer(),
        vae=vae if vae is not None else build_vae(),
        text_encoder=text_encoder if text_encoder is not None else build_clip(),
        text_encoder_2=text_encoder_2 if text_encoder_2 is not None else build_t5(),
        tokenizer=build_tokenizer(),
        tokenizer_2=build_tokenizer(),
        scheduler=build_scheduler(),
    )
