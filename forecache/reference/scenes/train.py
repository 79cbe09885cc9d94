"""Reproducible, resumable training of the scenes model and its judge, on one CPU thread, in five stages.

1. ``vae``: the `AutoencoderKL` on rendered scenes (L1 + L2 reconstruction, a light KL term); its
   latents' mean and spread become the VAE's ``shift_factor`` and ``scaling_factor``.
2. ``judge``: `SceneJudge` on scenes of every colour-shape pair (held-out ones included: it is the
   examiner, not the student), half of them passed through the VAE so it reads decoded images
   (1500 steps: it reads 100 % of drawn scenes' attributes, 99.8 % through the VAE; at 600 steps
   96 %).
3. ``t2i``: the FLUX transformer with its CLIP and T5 encoders, from new weights, by rectified flow
   on scenes without the held-out pairs, 10% of the prompts emptied; guidance input fixed at 1.
   Noise levels are drawn as a shift-3 sampler spaces them (mostly high noise: layout and colour
   first). It binds each colour and shape to its object from the first step. Trained with CLIP's
   pooled vector, the model put a two- or three-object prompt's colours on its objects at random:
   the pooled vector modulates every image token alike, and the T5 encoder marked each object's
   size word with its place but hardly its colour word (`benchmarks/scenes_binding.py`). So the
   pooled vector is cut (the weight of the transformer's pooled projection set to zero and its
   input zero, so the weight's gradient is zero and it stays zero; at inference the pooled vector
   has no effect), and a linear head on the T5 states learns each word's object place
   (cross-entropy, weight `PLACE_WEIGHT`; the head is not shipped): the colour and shape words then
   carry their object's place, as the size words did.
4. ``detail``: the same, continued from stage 3's average with noise levels drawn uniformly (shift
   1, a new place head): as many low-noise samples as high, where shapes form.
5. ``distill``: FLUX.1-dev's guidance distillation: the transformer learns, from the frozen stage-4
   model, to give in one call what classifier-free guidance at scale g gives in two, for g in [1, 5]
   (the pooled vector still cut).

The transformer stages run at batch 16: a step's time is about linear in the batch, so twice the
steps at half the batch cost the same time, and the model follows its prompts better and is easier
to forecast (BENCHMARKS.md, Scenes: tuned for 6x at 28 steps, 40.96 dB against 37.18 at batch 32
with half the steps). Binding from the first step replaced a separate bind stage after ``detail``
(six stages, 4.9 h in all; about 2 h now).

Every step draws its scenes and noise from (seed, stage, step) alone and checkpoints are written
atomically every 100 steps, so an interrupted run resumed from its work folder ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from forecache.reference.inputs import flux_image_ids, flux_pack
from forecache.reference.scenes.grammar import POSITIONS, caption, random_scene
from forecache.reference.scenes.judge import SceneJudge, targets
from forecache.reference.scenes.model import (
    MAX_TOKENS,
    build_clip,
    build_pipeline,
    build_t5,
    build_tokenizer,
    build_transformer,
    build_vae,
)
from forecache.reference.scenes.render import render_batch
from forecache.reference.training import StagePlan, checked_recipe, run_stage, step_randomness

__all__ = ["RECIPE", "StagePlan", "train_scenes"]

_CHECK_SCENES = 512  # scenes for the VAE's statistics and the stages' closing checks
PLACE_WEIGHT = 0.1
"""Weight of the place loss on the T5 states, beside the flow loss (about 0.2)."""


RECIPE: dict[str, StagePlan] = {
    "vae": StagePlan(steps=800, batch=32, lr=1e-3, warmup=80, ema=0.0),
    "judge": StagePlan(steps=1500, batch=64, lr=1e-3, warmup=100, ema=0.0),
    "t2i": StagePlan(steps=6000, batch=16, lr=5e-4, warmup=400, ema=0.999, shift=3.0),
    "detail": StagePlan(steps=2800, batch=16, lr=3e-4, warmup=200, ema=0.999, shift=1.0),
    "distill": StagePlan(steps=800, batch=16, lr=1e-4, warmup=80, ema=0.995, shift=1.0),
}
"""The shipped model's recipe (its training time on one CPU thread: BENCHMARKS.md, Scenes)."""


def _cut_pooled(transformer: Any) -> None:
    """Zero the weight of the transformer's pooled projection: the pooled vector no longer has an effect.

    Trained with a zero pooled input, the weight's gradient is zero, so AdamW (no weight decay)
    leaves it zero and the projection gives its bias, whatever CLIP says, in training and in
    `FluxPipeline` alike.
    """
    with torch.no_grad():
        transformer.time_text_embed.text_embedder.linear_1.weight.zero_()


def _place_labels(scenes: list[Any], emptied: list[bool]) -> torch.Tensor:
    """Each caption token's object place (its cell, 0-8), -100 for the others (in the T5 tokenizer's order).

    A caption is ``a <size> <colour> <shape> <position>`` per object, joined by ``and``, then
    ``, on a [striped] <colour> background`` and the end-of-text token; an emptied prompt has no
    object words.
    """
    labels = torch.full((len(scenes), MAX_TOKENS), -100, dtype=torch.long)
    for row, (scene, empty) in enumerate(zip(scenes, emptied, strict=True)):
        if empty:
            continue
        at = 0
        for obj in scene.objects:
            words = 4 + len(POSITIONS[obj.cell].split())
            labels[row, at : at + words] = obj.cell
            at += words + 1  # and the joining "and"
    return labels


def _sigmas(batch: int, gen: torch.Generator, shift: float) -> torch.Tensor:
    """Draw flow-matching noise levels as a sampler with this shift spreads them."""
    u = torch.rand(batch, generator=gen)
    return shift * u / (1 + (shift - 1) * u)


class _Latents:
    """Scenes to packed, normalised FLUX latents through the frozen VAE."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae
        self.img_ids = flux_image_ids(8, 8)
        self.txt_ids = torch.zeros(MAX_TOKENS, 3)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        config = self.vae.config
        z = self.vae.encode(images).latent_dist.mean
        z = (z - config["shift_factor"]) * config["scaling_factor"]
        return flux_pack(z)


class _TextEncoders(nn.Module):
    """The pipeline's two text encoders, trained and saved together; a call gives the T5 token states.

    CLIP is not run: its pooled vector is cut in every transformer stage (`_cut_pooled`), so it
    never got a gradient and ships with its initial weights. Running it (as before 2026-12-06) gave
    bitwise the same weights (BENCHMARKS.md, Scenes, "Training time").
    """

    def __init__(self, clip: nn.Module, t5: nn.Module) -> None:
        super().__init__()
        self.clip, self.t5 = clip, t5
        self.tokenizer = build_tokenizer()

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        return self.t5(ids)[0]


def _scenes(rng: Any, batch: int, exclude: frozenset[tuple[str, str]] | None = None) -> list[Any]:
    """Draw `batch` scenes (without the held-out pairs unless `exclude` says otherwise)."""
    if exclude is None:
        return [random_scene(rng) for _ in range(batch)]
    return [random_scene(rng, exclude) for _ in range(batch)]


def _train_vae(work: Path, plan: StagePlan, seed: int, log: Callable[[str], None]) -> Any:
    """Stage 1: the VAE, then its latent normalisation."""
    torch.manual_seed(seed)
    vae = build_vae()

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        images = render_batch(_scenes(rng, batch, frozenset()), rng)
        posterior = vae.encode(images).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        kl = posterior.kl().mean() / images[0].numel()
        return F.l1_loss(recon, images) + F.mse_loss(recon, images) + 1e-4 * kl

    vae = run_stage("vae", vae, plan, loss_fn, work, seed, log)
    rng, _ = step_randomness(seed, "vae-stats", 0)
    images = render_batch(_scenes(rng, _CHECK_SCENES, frozenset()), rng)
    with torch.no_grad():
        z = vae.encode(images).latent_dist.mean
        recon = vae.decode(z).sample.clamp(-1, 1)
    psnr = 10 * torch.log10(4.0 / F.mse_loss(recon, images)).item()
    vae.register_to_config(
        shift_factor=round(z.mean().item(), 4), scaling_factor=round(1.0 / z.std().item(), 4)
    )
    log(
        f"[vae] reconstruction PSNR {psnr:.2f} dB; shift {vae.config['shift_factor']}, "
        f"scale {vae.config['scaling_factor']}"
    )
    return vae


def _train_judge(work: Path, plan: StagePlan, vae: Any, seed: int, log: Callable[[str], None]) -> SceneJudge:
    """Stage 2: the judge, on scenes of every pair, half of them through the VAE, with light noise."""
    torch.manual_seed(seed)
    judge = SceneJudge()

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        scenes = _scenes(rng, batch, frozenset())
        images = render_batch(scenes, rng)
        with torch.no_grad():
            half = batch // 2
            decoded = vae.decode(vae.encode(images[:half]).latent_dist.sample(generator=gen)).sample
            images = torch.cat([decoded.clamp(-1, 1), images[half:]])
            images = images + torch.rand(batch, 1, 1, 1, generator=gen) * 0.08 * torch.randn(
                images.shape, generator=gen
            )
        logits, want = judge(images), targets(scenes)
        return sum(
            (
                F.cross_entropy(
                    logits[k].reshape(-1, logits[k].shape[-1]), want[k].reshape(-1), ignore_index=-100
                )
                for k in logits
            ),
            torch.zeros(()),
        )

    judge = run_stage("judge", judge, plan, loss_fn, work, seed, log)
    rng, _ = step_randomness(seed, "judge-test", 0)
    scenes = _scenes(rng, _CHECK_SCENES, frozenset())
    images = render_batch(scenes, rng)
    with torch.no_grad():
        decoded = vae.decode(vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)
    from forecache.reference.scenes.judge import adherence

    for label, batch in (("rendered", images), ("through the VAE", decoded)):
        score = adherence(judge.read(batch), scenes).mean().item()
        log(f"[judge] adherence of {label} scenes ({len(scenes)} unseen): {score:.4f}")
    return judge


def _train_t2i(
    work: Path,
    plan: StagePlan,
    latents: _Latents,
    seed: int,
    log: Callable[[str], None],
    name: str = "t2i",
    start: nn.ModuleDict | None = None,
) -> nn.ModuleDict:
    """Stages 3 and 4: the transformer and both text encoders by rectified flow, 10% of prompts emptied.

    Starts from new weights, or from a copy of `start` (stage 4 from stage 3's average). The pooled
    vector is cut (`_cut_pooled`, a zero pooled input) and a new linear head ``place`` on the T5
    states learns each object word's place (`_place_labels`).
    """
    if start is None:
        torch.manual_seed(seed)
        models = nn.ModuleDict(
            {"transformer": build_transformer(), "text": _TextEncoders(build_clip(), build_t5())}
        )
    else:
        models = copy.deepcopy(start).train().requires_grad_(True)
    transformer: Any = models["transformer"]
    _cut_pooled(transformer)
    torch.manual_seed(seed)
    models["place"] = nn.Linear(transformer.config.joint_attention_dim, len(POSITIONS))

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        scenes = _scenes(rng, batch)
        prompts = ["" if rng.random() < 0.1 else caption(scene) for scene in scenes]
        x0 = latents(render_batch(scenes, rng))
        tokens = models["text"](prompts)
        noise = torch.randn(x0.shape, generator=gen)
        sigma = _sigmas(batch, gen, plan.shift)
        s = sigma.view(-1, 1, 1)
        pred = models["transformer"](
            hidden_states=(1 - s) * x0 + s * noise,
            timestep=sigma,
            guidance=torch.ones(batch),
            pooled_projections=torch.zeros(batch, transformer.config.pooled_projection_dim),
            encoder_hidden_states=tokens,
            txt_ids=latents.txt_ids,
            img_ids=latents.img_ids,
            return_dict=False,
        )[0]
        loss = F.mse_loss(pred, noise - x0)
        labels = _place_labels(scenes, [not p for p in prompts])
        logits = models["place"](tokens)
        return loss + PLACE_WEIGHT * F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    return run_stage(name, models, plan, loss_fn, work, seed, log)


def _distill(
    work: Path,
    plan: StagePlan,
    teacher: nn.Module,
    text: _TextEncoders,
    latents: _Latents,
    seed: int,
    log: Callable[[str], None],
) -> nn.Module:
    """Stage 5: guidance distillation of the transformer (text encoders frozen), g uniform in [1, 5].

    The pooled vector stays cut: both calls get a zero pooled input (the teacher's projection weight
    is zero already, the student's gradient for it is then zero).
    """
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    with torch.no_grad():
        null_tokens = text([""])
    width = int(cast(Any, teacher).config.pooled_projection_dim)

    def loss_fn(batch: int, rng: Any, gen: torch.Generator) -> torch.Tensor:
        scenes = _scenes(rng, batch)
        x0 = latents(render_batch(scenes, rng))
        noise = torch.randn(x0.shape, generator=gen)
        sigma = _sigmas(batch, gen, plan.shift)
        scale = 1.0 + 4.0 * torch.rand(batch, generator=gen)
        s = sigma.view(-1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        with torch.no_grad():
            tokens = text([caption(scene) for scene in scenes])
            pooled = torch.zeros(batch, width)
            both = teacher(
                hidden_states=torch.cat([x_t, x_t]),
                timestep=torch.cat([sigma, sigma]),
                guidance=torch.ones(2 * batch),
                pooled_projections=torch.cat([pooled, pooled]),
                encoder_hidden_states=torch.cat([tokens, null_tokens.expand(batch, -1, -1)]),
                txt_ids=latents.txt_ids,
                img_ids=latents.img_ids,
                return_dict=False,
            )[0]
            cond, uncond = both.chunk(2)
            target = uncond + scale.view(-1, 1, 1) * (cond - uncond)
        pred = student(
            hidden_states=x_t,
            timestep=sigma,
            guidance=scale,
            pooled_projections=pooled,
            encoder_hidden_states=tokens,
            txt_ids=latents.txt_ids,
            img_ids=latents.img_ids,
            return_dict=False,
        )[0]
        return F.mse_loss(pred, target)

    return run_stage("distill", student, plan, loss_fn, work, seed, log)


def train_scenes(
    work: str | Path,
    seed: int = 0,
    recipe: dict[str, StagePlan] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Any, SceneJudge]:
    """Train the scenes pipeline and its judge (resuming from `work` where a checkpoint is there).

    Args:
        work (`str` or `Path`): Folder of the stages' checkpoints (created if missing); rerunning with
            the same folder resumes.
        seed (`int`, defaults to 0): Seeds initial weights, scenes and noise of every stage.
        recipe (`dict[str, StagePlan]`, *optional*): Per-stage settings; default `RECIPE`.
        log (`Callable[[str], None]`, defaults to `print`): Where progress lines go.

    Returns:
        `(pipeline, judge)`: a diffusers `FluxPipeline` (guidance-distilled transformer, trained
        encoders and VAE) and the `SceneJudge`, both in eval mode.

    """
    recipe = checked_recipe(recipe, RECIPE)
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    vae = _train_vae(folder, recipe["vae"], seed, log)
    judge = _train_judge(folder, recipe["judge"], vae, seed, log)
    latents = _Latents(vae)
    base = _train_t2i(folder, recipe["t2i"], latents, seed, log)
    tuned = _train_t2i(folder, recipe["detail"], latents, seed, log, name="detail", start=base)
    teacher, text = tuned["transformer"], cast(_TextEncoders, tuned["text"])
    student = _distill(folder, recipe["distill"], teacher, text, latents, seed, log)
    pipe = build_pipeline(transformer=student, vae=vae, text_encoder=text.clip, text_encoder_2=text.t5)
    return pipe, judge
