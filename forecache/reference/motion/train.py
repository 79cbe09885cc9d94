"""Reproducible, resumable training of the motion model, its two-expert variant and its judge, on one thread.

1. ``vae``: the `AutoencoderKLWan` on rendered clips (L1 + L2 reconstruction, a light KL term);
   its latents' per-channel mean and spread become the VAE's ``latents_mean`` and ``latents_std``.
2. ``judge``: `MotionJudge` on the frames of clips of every colour-motion pair (held-out ones
   included: it is the examiner, not the student), half of them through the VAE, lightly noised.
3. ``t2v``: the Wan transformer with its UMT5 encoder by rectified flow on clips without the
   held-out pairs, 10% of the prompts emptied (the pipeline's default negative prompt is empty);
   the clips come from a pool drawn and encoded once (``pool.pt`` in the work folder).
4. ``high`` and ``low``: Wan 2.2's two experts, each a copy of the stage-3 transformer fine-tuned
   on its own noise range (timesteps at or above `BOUNDARY_RATIO` * 1000, and below), the text
   encoder frozen (the two experts share it).

Every step draws its clips and noise from (seed, stage, step) alone and checkpoints are written
atomically every 100 steps, so an interrupted run resumed from its work folder ends with the same
weights as an uninterrupted one (`forecache.reference.training.run_stage`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forecache.reference.motion.grammar import FRAMES, ClipSpec, caption, random_clip
from forecache.reference.motion.judge import MotionJudge, frame_adherence, frame_targets, motion_accuracy
from forecache.reference.motion.model import (
    BOUNDARY_RATIO,
    MAX_TOKENS,
    build_pipeline,
    build_text_encoder,
    build_tokenizer,
    build_transformer,
    build_vae,
)
from forecache.reference.motion.render import render_clip
from forecache.reference.training import (
    StagePlan,
    checked_recipe,
    load_checkpoint,
    run_stage,
    save_checkpoint,
    step_randomness,
)

__all__ = ["RECIPE", "TextEncoder", "train_motion"]

_CHECK_CLIPS = 128  # clips for the VAE's statistics and the closing checks
_DROPOUT = 0.1
_POOL_CLIPS = 16384
_OBJECT_WEIGHT = 9.0

RECIPE: dict[str, StagePlan] = {
    "vae": StagePlan(steps=2000, batch=8, lr=1e-3, warmup=100, ema=0.0),
    "judge": StagePlan(steps=2400, batch=8, lr=1e-3, warmup=100, ema=0.0),
    "t2v": StagePlan(steps=3000, batch=32, lr=5e-4, warmup=200, ema=0.999),
    "high": StagePlan(steps=300, batch=32, lr=1e-4, warmup=50, ema=0.99),
    "low": StagePlan(steps=300, batch=32, lr=1e-4, warmup=50, ema=0.99),
}
"""The shipped model's recipe; judge batches are clips (all their frames are read). Its training time
on one CPU thread: BENCHMARKS.md, Motion."""


def _clips(rng: Any, batch: int, exclude: frozenset[tuple[str, str]] | None = None) -> list[ClipSpec]:
    """Draw `batch` clips (without the held-out pairs unless `exclude` says otherwise)."""
    if exclude is None:
        return [random_clip(rng) for _ in range(batch)]
    return [random_clip(rng, exclude) for _ in range(batch)]


def _render(clips: list[ClipSpec], rng: Any) -> tuple[torch.Tensor, list[Any], torch.Tensor]:
    """Draw clips: videos `(batch, 3, FRAMES, 32, 32)`, tracks, cover `(batch, 1, FRAMES, 32, 32)`."""
    drawn = [render_clip(clip, rng) for clip in clips]
    videos = torch.stack([torch.from_numpy(d.video) for d in drawn]).permute(0, 2, 1, 3, 4)
    cover = torch.stack([torch.from_numpy(d.objects) for d in drawn]).unsqueeze(1)
    return videos.contiguous(), [d.tracks for d in drawn], cover


def _sigmas(
    gen: torch.Generator, batch: int, shift: float, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """Draw flow-matching noise levels as a sampler with this shift spreads them, within [low, high)."""
    u_low, u_high = (s / (shift - (shift - 1) * s) for s in (low, high))  # the shift's inverse
    u = u_low + (u_high - u_low) * torch.rand(batch, generator=gen)
    return shift * u / (1 + (shift - 1) * u)


class TextEncoder(nn.Module):
    """The UMT5 encoder as `WanPipeline.encode_prompt` runs it: tokens, mask, states zeroed past the text."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = build_tokenizer()

    def forward(self, prompts: list[str]) -> torch.Tensor:
        """Return `(batch, MAX_TOKENS, 64)` prompt states, as the pipeline computes them."""
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=MAX_TOKENS,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        states = self.encoder(tokens.input_ids, tokens.attention_mask).last_hidden_state
        return states * tokens.attention_mask.unsqueeze(-1).to(states.dtype)


class _Latents:
    """Clips to normalised Wan latents through the frozen VAE."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae
        config = vae.config
        self.mean = torch.tensor(config["latents_mean"]).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(config["latents_std"]).view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        return (self.vae.encode(videos).latent_dist.mean - self.mean) / self.std


def _decode_unclamped(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Decode as `AutoencoderKLWan.decode` does, returning the decoder's output before its clamp to [-1, 1].

    The clamp passes no gradient to a pixel beyond the range, so a decoder that overshoots a light or
    dark background would never learn it back; the decoder runs once per latent frame and a forward
    hook collects its outputs.
    """
    chunks: list[torch.Tensor] = []
    handle = vae.decoder.register_forward_hook(lambda module, args, output: chunks.append(output))
    try:
        vae.decode(latents)
    finally:
        handle.remove()
    return torch.cat(chunks, dim=2)


def _train_vae(work: Path, plan: StagePlan, seed: int, log: Callable[[str], None]) -> Any:
    """Stage 1: the VAE, then its per-channel latent normalisation."""
    torch.manual_seed(seed)
    vae = build_vae()

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        videos, _, cover = _render(_clips(rng, batch, frozenset()), rng)
        posterior = vae.encode(videos).latent_dist
        recon = _decode_unclamped(vae, posterior.sample(generator=gen))
        kl = posterior.kl().mean() / videos[0].numel()
        error = recon - videos
        weight = 1.0 + _OBJECT_WEIGHT * cover  # the objects are a few % of the pixels: weigh them up
        return ((error.abs() + error**2) * weight).mean() / weight.mean() + 1e-4 * kl

    vae = run_stage("vae", vae, plan, loss_fn, work, seed, log)
    rng, _ = step_randomness(seed, "vae-stats", 0)
    videos = _render(_clips(rng, _CHECK_CLIPS, frozenset()), rng)[0]
    with torch.no_grad():
        z = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in videos.split(32)])
        recon = torch.cat([vae.decode(chunk).sample for chunk in z.split(32)])
    psnr = 10 * torch.log10(4.0 / F.mse_loss(recon, videos)).item()
    channels = z.transpose(0, 1).reshape(z.shape[1], -1)
    vae.register_to_config(
        latents_mean=[round(v, 4) for v in channels.mean(1).tolist()],
        latents_std=[round(v, 4) for v in channels.std(1).tolist()],
    )
    log(f"[vae] reconstruction PSNR {psnr:.2f} dB over {len(videos)} clips")
    return vae


def _judge_frames(videos: torch.Tensor) -> torch.Tensor:
    """`(batch, 3, frames, H, W)` videos to `(batch * frames, 3, H, W)` frames, clip after clip."""
    return videos.permute(0, 2, 1, 3, 4).reshape(-1, *videos.shape[1:2], *videos.shape[3:])


def _train_judge(work: Path, plan: StagePlan, vae: Any, seed: int, log: Callable[[str], None]) -> MotionJudge:
    """Stage 2: the judge, on every frame of clips of every pair, half of them through the VAE."""
    torch.manual_seed(seed)
    judge = MotionJudge()

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        clips = _clips(rng, batch, frozenset())
        videos, tracks, _ = _render(clips, rng)
        with torch.no_grad():
            half = batch // 2
            decoded = vae.decode(vae.encode(videos[:half]).latent_dist.sample(generator=gen)).sample
            videos = torch.cat([decoded.clamp(-1, 1), videos[half:]])
        frames = _judge_frames(videos)
        frames = frames + torch.rand(len(frames), 1, 1, 1, generator=gen) * 0.08 * torch.randn(
            frames.shape, generator=gen
        )
        index = [f for _ in clips for f in range(FRAMES)]
        want = frame_targets(
            [c for c in clips for _ in range(FRAMES)], [t for t in tracks for _ in range(FRAMES)], index
        )
        out = judge(frames)
        mask = want["present"] > 0
        place = F.smooth_l1_loss(out["place"][mask] * 8.0, want["place"][mask] * 8.0)
        return (
            F.binary_cross_entropy_with_logits(out["present"], want["present"])
            + F.cross_entropy(out["shape"].reshape(-1, out["shape"].shape[-1]), want["shape"].reshape(-1))
            + place
            + F.cross_entropy(out["background"], want["background"])
            + F.cross_entropy(out["texture"], want["texture"])
        )

    judge = run_stage("judge", judge, plan, loss_fn, work, seed, log)
    rng, _ = step_randomness(seed, "judge-test", 0)
    clips = _clips(rng, _CHECK_CLIPS, frozenset())
    videos = _render(clips, rng)[0]
    with torch.no_grad():
        decoded = torch.cat([vae.decode(vae.encode(v).latent_dist.mean).sample for v in videos.split(32)])
    for label, batch in (("rendered", videos), ("through the VAE", decoded)):
        reading = judge.read(_judge_frames(batch))
        adherence = frame_adherence(reading, clips, FRAMES).mean()
        motion = motion_accuracy(reading, clips, FRAMES).mean()
        log(f"[judge] {label} clips ({len(clips)} unseen): adherence {adherence:.4f}, motion {motion:.4f}")
    return judge


class _Pool:
    """A fixed set of training clips (no held-out pair), their captions and latents, drawn once from the seed.

    Drawing and encoding clips costs as much as a transformer step, so the flow stages sample their
    batches from this pool (`_POOL_CLIPS` clips, each seen a few times) instead; it is written to
    the work folder and read back on resume.
    """

    def __init__(self, latents: _Latents, work: Path, seed: int, log: Callable[[str], None]) -> None:
        path = work / "pool.pt"
        state = load_checkpoint(path)
        if state is None or len(state["captions"]) != _POOL_CLIPS:
            captions: list[str] = []
            parts = []
            for start in range(0, _POOL_CLIPS, 64):
                rng, _ = step_randomness(seed, "pool", start)
                clips = _clips(rng, min(64, _POOL_CLIPS - start))
                captions += [caption(clip) for clip in clips]
                parts.append(latents(_render(clips, rng)[0]))
            state = {"captions": captions, "latents": torch.cat(parts)}
            save_checkpoint(path, state)
            log(f"[pool] {len(captions)} training clips drawn and encoded")
        self.captions: list[str] = state["captions"]
        self.latents: torch.Tensor = state["latents"]

    def batch(self, batch: int, rng: Any) -> tuple[list[str], torch.Tensor]:
        """Return `batch` clips' captions and latents, drawn with replacement."""
        index = [rng.randrange(len(self.captions)) for _ in range(batch)]
        return [self.captions[i] for i in index], self.latents[index]


def _flow_loss(
    transformer: nn.Module,
    text: TextEncoder,
    pool: _Pool,
    batch: int,
    rng: Any,
    gen: torch.Generator,
    shift: float,
    sigma_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Rectified flow on a batch of training clips: predict noise - x0 at a shifted noise level."""
    captions, x0 = pool.batch(batch, rng)
    prompts = ["" if rng.random() < _DROPOUT else words for words in captions]
    states = text(prompts)
    noise = torch.randn(x0.shape, generator=gen)
    sigma = _sigmas(gen, batch, shift, *sigma_range)
    s = sigma.view(-1, 1, 1, 1, 1)
    pred = transformer(
        hidden_states=(1 - s) * x0 + s * noise,
        timestep=sigma * 1000.0,
        encoder_hidden_states=states,
        return_dict=False,
    )[0]
    return F.mse_loss(pred, noise - x0)


def _train_t2v(
    work: Path, plan: StagePlan, pool: _Pool, seed: int, log: Callable[[str], None]
) -> tuple[nn.Module, Any]:
    """Stage 3: the transformer and the text encoder by rectified flow, 10% of prompts emptied."""
    torch.manual_seed(seed)
    transformer, text = build_transformer(), TextEncoder(build_text_encoder())
    models = nn.ModuleDict({"transformer": transformer, "text": text})

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        return _flow_loss(transformer, text, pool, batch, rng, gen, plan.shift)

    kept = run_stage("t2v", models, plan, loss_fn, work, seed, log)
    return kept["transformer"], kept["text"]


def _train_expert(
    name: str,
    work: Path,
    plan: StagePlan,
    base: nn.Module,
    text: TextEncoder,
    pool: _Pool,
    seed: int,
    log: Callable[[str], None],
) -> nn.Module:
    """Stages 4 and 5: one expert, the base transformer fine-tuned on its own noise range (text frozen)."""
    expert = copy.deepcopy(base).train().requires_grad_(True)
    sigma_range = (BOUNDARY_RATIO, 1.0) if name == "high" else (0.0, BOUNDARY_RATIO)

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        return _flow_loss(expert, text, pool, batch, rng, gen, plan.shift, sigma_range)

    return run_stage(name, expert, plan, loss_fn, work, seed, log)


def train_motion(
    work: str | Path,
    seed: int = 0,
    recipe: dict[str, StagePlan] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Any, Any, MotionJudge]:
    """Train the motion pipeline, its two-expert variant and its judge (resuming from `work`).

    Args:
        work (`str` or `Path`): Folder of the stages' checkpoints (created if missing); rerunning with
            the same folder resumes.
        seed (`int`, defaults to 0): Seeds initial weights, clips and noise of every stage.
        recipe (`dict[str, StagePlan]`, *optional*): Per-stage settings; default `RECIPE`.
        log (`Callable[[str], None]`, defaults to `print`): Where progress lines go.

    Returns:
        `(pipeline, experts, judge)`: a diffusers `WanPipeline` with one transformer, the same with
        Wan 2.2's two experts (``transformer_2``, ``boundary_ratio``), both sharing the trained
        UMT5 encoder and VAE; and the `MotionJudge`; all in eval mode.

    Raises:
        ValueError: `recipe` lacks a stage.

    """
    recipe = checked_recipe(recipe, RECIPE)
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    vae = _train_vae(folder, recipe["vae"], seed, log)
    judge = _train_judge(folder, recipe["judge"], vae, seed, log)
    pool = _Pool(_Latents(vae), folder, seed, log)
    transformer, text = _train_t2v(folder, recipe["t2v"], pool, seed, log)
    high = _train_expert("high", folder, recipe["high"], transformer, text, pool, seed, log)
    low = _train_expert("low", folder, recipe["low"], transformer, text, pool, seed, log)
    pipe = build_pipeline(transformer=transformer, vae=vae, text_encoder=text.encoder)
    experts = build_pipeline(transformer=high, vae=vae, text_encoder=text.encoder, transformer_2=low)
    return pipe, experts, judge
