"""The shipped scenes model: diffusers' own FluxPipeline, its judge, and forecache on it (issue 19's floors).

Reduced cost, same floors: 16 held-out prompts (colour-shape pairs training never showed) at 28
steps, FLUX.1-dev's default; the full measurement (64 prompts, 28 and 50 steps) is
`benchmarks/scenes_quality.py`, its figures in BENCHMARKS.md. The two lines that hold by about
1 dB on the 64 prompts (`TimelineConfig()` at 5x and the tuner at 6x, both at 28 steps) are
measured on those 64, since the first 16 read 1-2 dB under them (a 16-sample figure spreads by
about 0.85 dB around the 64's on this model: BENCHMARKS.md, Scenes, "Validation").

`TimelineConfig()` holds 40 dB at 5x untuned at 28 steps with its partial lead step and the slope
across it. At 6x on 28 steps the tuner's default (4 samples) holds 40 dB; at 10x on 50 steps the
damped slopes hold 40 dB tuned on 4 samples.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

import forecache
from forecache.calibrate.flops import count_flops
from forecache.eval import metrics
from forecache.eval.metrics import psnr
from forecache.reference import REFERENCE_MODELS, load_reference, reference_path
from forecache.reference.scenes.checks import word_changes, word_test
from forecache.reference.scenes.grammar import HELD_OUT_PAIRS, parse_caption, random_scene
from forecache.reference.scenes.judge import adherence, targets
from forecache.reference.scenes.prompts import prompt_set
from forecache.reference.scenes.render import render_batch

pytestmark = pytest.mark.eval

STEPS = 28
HELD_OUT = prompt_set("heldout")[:16]
SEEDS = list(range(len(HELD_OUT)))
HELD_OUT_64 = prompt_set("heldout")[:64]  # BENCHMARKS.md's 64, seeds 0-63
SEEDS_64 = list(range(len(HELD_OUT_64)))
DEFAULTS = dict(REFERENCE_MODELS["scenes"].call_defaults)
MAX_WEIGHT_BYTES = 25 * 2**20


@pytest.fixture(scope="module")
def pipe(one_thread):
    loaded = load_reference("scenes")
    loaded.set_progress_bar_config(disable=True)
    return loaded


@pytest.fixture(scope="module")
def judge():
    return REFERENCE_MODELS["scenes"].judge()


def generate(pipe, prompts, seeds, config=None, steps=STEPS):
    """Images (N, 32, 32, 3) in [0, 1] and the linear-layer FLOPs run."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    kwargs = {"num_inference_steps": steps, "generator": generators, "output_type": "np", **DEFAULTS}
    with count_flops(pipe.transformer) as flops:
        if config is None:
            images = pipe(list(prompts), **kwargs).images
        else:
            with forecache.cached(pipe, config):
                images = pipe(list(prompts), **kwargs).images
    return images, flops.total


@pytest.fixture(scope="module")
def full(pipe):
    return generate(pipe, HELD_OUT, SEEDS)


@pytest.fixture(scope="module")
def full_64(pipe):
    return generate(pipe, HELD_OUT_64, SEEDS_64)


def test_loads_in_diffusers_own_flux_pipeline_within_the_size_budget():
    folder = reference_path("scenes")
    loaded = FluxPipeline.from_pretrained(folder)
    assert type(loaded) is FluxPipeline
    config = loaded.transformer.config
    assert (config.num_layers, config.num_single_layers, config.guidance_embeds) == (4, 8, True)
    files = [*folder.rglob("*.safetensors"), *(folder.parent / "scenes-judge").rglob("*.safetensors")]
    total = sum(f.stat().st_size for f in files)
    assert total <= MAX_WEIGHT_BYTES, f"{total / 2**20:.1f} MiB of weights"


def test_the_judge_reads_drawn_scenes(judge):
    rng = random.Random(12345)
    scenes = [random_scene(rng, frozenset()) for _ in range(256)]
    images = render_batch(scenes, rng)
    score = adherence(judge.judge.read(images), scenes)
    assert score.mean() >= 0.99, f"judge adherence on drawn scenes {score.mean():.4f}"
    # the same drawings as a pipeline's ``output_type="np"`` gives them
    as_output = judge.judge.read_output(((images + 1.0) / 2.0).permute(0, 2, 3, 1).numpy())
    assert torch.equal(adherence(as_output, scenes), score)


def test_the_pooled_clip_vector_has_no_effect(pipe):
    """Training cut it (its projection's weight is zero): colours come through the T5 tokens."""
    assert torch.count_nonzero(pipe.transformer.time_text_embed.text_embedder.linear_1.weight) == 0
    kwargs = {"num_inference_steps": 4, "output_type": "np", **DEFAULTS}
    kwargs.pop("max_sequence_length")
    embeds, pooled, _ = pipe.encode_prompt(
        HELD_OUT[:2], None, max_sequence_length=DEFAULTS["max_sequence_length"]
    )
    images = [
        pipe(
            prompt_embeds=embeds,
            pooled_prompt_embeds=vector,
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )
        for vector in (pooled, pooled.flip(0), torch.zeros_like(pooled))
    ]
    assert all(np.array_equal(images[0].images, other.images) for other in images[1:])


def test_full_compute_follows_held_out_prompts(full, judge):
    assert all(parse_caption(p).pairs() & HELD_OUT_PAIRS for p in HELD_OUT)
    score = judge.adherence(full[0], HELD_OUT)
    assert score.mean() >= 0.9, f"adherence {score.mean():.3f} at {STEPS} steps"


def test_colour_and_position_words_change_the_image(pipe, judge):
    changes = word_changes(HELD_OUT, 20)
    images, _ = generate(pipe, [c.prompt for c in changes], [SEEDS[c.source] for c in changes])
    hits = word_test(judge.judge, images, changes)
    rate = np.mean(hits["colour"] + hits["position"])
    assert rate >= 0.95, f"word test {rate:.3f} ({hits})"


def test_full_compute_draws_objects_colours_and_backgrounds_asked(full, judge):
    """Every object on its cell in its own colour (no colour drawn on another object), the background."""
    scenes = [parse_caption(p) for p in HELD_OUT]
    reading, wanted = judge.judge.read_output(full[0]), targets(scenes)
    on_cell = wanted["shape"] > 0
    present = (reading.shape[on_cell] > 0).float().mean().item()
    colours = (reading.colour[on_cell] == wanted["colour"][on_cell]).float().mean().item()
    backgrounds = (reading.background == wanted["background"]).float().mean().item()
    print(f"present {present:.3f}, colour {colours:.3f}, background {backgrounds:.3f}")
    assert present >= 0.95 and backgrounds >= 0.95 and colours >= 0.95, (present, colours, backgrounds)


def test_judge_fid_of_64_samples_tells_the_prompts_drawn_from_others(full_64, judge, monkeypatch):
    """The judge's features give FID on 64 samples (issue 19), against the drawings of the same prompts.

    Measured (64 held-out prompts, 28 steps): the model at full compute 1011 (1010 at 50 steps);
    the generator's drawings of the same prompts with other jitter 320-364; the model on the next
    64 held-out prompts 4276 and their drawings 4030; uniform noise 17802. A judge FID scores how
    well a set of images matches its prompts' distribution, on the judge's scale, not Inception's.
    """
    monkeypatch.setattr(metrics, "_hub_checkpoint", lambda name: None)  # the judge's, even beside Inception
    real, note = judge.real_images(HELD_OUT_64)
    scorer = metrics.QualityScorer(real_images=real, real_note=note, conditions=HELD_OUT_64, judge=judge)
    assert "judge's features (SceneFeatureExtractor, 320-d)" in scorer.notes["fid"]

    def drawings(prompts, seed):
        images = render_batch([parse_caption(p) for p in prompts], random.Random(seed))
        return ((images + 1.0) / 2.0).permute(0, 2, 3, 1).numpy()

    model = scorer.fid(full_64[0]).value
    same = scorer.fid(drawings(HELD_OUT_64, 1)).value
    others = scorer.fid(drawings(prompt_set("heldout")[64:128], 1)).value
    noise = scorer.fid(np.random.default_rng(0).random((64, 32, 32, 3)).astype(np.float32)).value
    print(f"judge FID: model {model:.0f}, same prompts {same:.0f}, others {others:.0f}, noise {noise:.0f}")
    assert same < 500 < model < 1500 < 3000 < others < 10_000 < noise, (same, model, others, noise)


def test_timeline_config_untuned_keeps_40_db_at_5x(pipe, full_64):
    """64 prompts: 41.13 dB (worst 31.6) at 5.03x; reuse across the lead 37.12; no lead 34.06 (5.52x)."""
    images, flops = generate(pipe, HELD_OUT_64, SEEDS_64, forecache.TimelineConfig())
    ratio = full_64[1] / flops
    pooled, per_sample = psnr(full_64[0], images)
    print(f"TimelineConfig(): {ratio:.2f}x at {pooled:.2f} dB (worst {min(per_sample):.2f})")
    assert ratio >= 5.0 and pooled >= 40.0, f"{ratio:.2f}x at {pooled:.2f} dB (worst {min(per_sample):.2f})"
    reuse = forecache.Damped((0.0, 0.0, 0.8))
    reuse_across = dataclasses.replace(forecache.TimelineConfig(), forecaster=reuse)
    before, _ = generate(pipe, HELD_OUT_64, SEEDS_64, forecache.TimelineConfig(ratio=5.5, lead=1))
    across, _ = generate(pipe, HELD_OUT_64, SEEDS_64, reuse_across)
    gains = pooled - psnr(full_64[0], before)[0], pooled - psnr(full_64[0], across)[0]
    print(f"over no lead: {gains[0]:+.2f} dB, over reuse across the lead: {gains[1]:+.2f} dB")
    assert gains[0] >= 4.0 and gains[1] >= 3.0, gains  # measured: +7.07, +4.01 dB


def test_timeline_config_with_a_whole_lead_step_keeps_40_db_at_5x_untuned(pipe, full):
    """The second step computed, reused until the next (64 held-out prompts: 40.6 dB, worst 35.0)."""
    images, flops = generate(pipe, HELD_OUT, SEEDS, forecache.TimelineConfig(ratio=5.5, lead=2, order=0))
    ratio = full[1] / flops
    pooled, per_sample = psnr(full[0], images)
    assert ratio >= 5.0 and pooled >= 40.0, f"{ratio:.2f}x at {pooled:.2f} dB (worst {min(per_sample):.2f})"


def tune_and_generate(pipe, goal, trials, steps=STEPS, call=None, held_out=HELD_OUT, **tuning):
    """Tune on the first 4 calibration prompts (`call`: more call arguments), generate the held-out ones."""
    call = {"prompt": prompt_set("calibration")[:4], "num_inference_steps": steps, **DEFAULTS, **(call or {})}
    result = forecache.tune(pipe, call, ratio=goal, trials=trials, seed=100_000, progress=False, **tuning)
    return result, *generate(pipe, held_out, list(range(len(held_out))), result.config, steps)


@pytest.fixture(scope="module")
def tuned_6x(pipe):
    """The default tuning (4 samples), what BENCHMARKS.md measured, on the 64 held-out prompts."""
    return tune_and_generate(pipe, 6.0, trials=8, held_out=HELD_OUT_64)


def test_tuned_for_6x_spends_the_budget_on_a_partial_step_and_keeps_adherence(full_64, judge, tuned_6x):
    """4 of 28 steps computed are 6.9x, 5 are 5.5x: the tuner makes one of 5 a partial step (6.0x)."""
    result, images, flops = tuned_6x
    ratio = full_64[1] / flops
    assert 6.0 <= ratio < 6.5 and len(result.chosen.computed) == 4 and len(result.chosen.partial) == 1
    assert ratio == pytest.approx(result.chosen.ratio, rel=1e-3)
    drop = judge.adherence(full_64[0], HELD_OUT_64).mean() - judge.adherence(images, HELD_OUT_64).mean()
    assert drop <= 0.01, f"adherence fell by {drop:.3f}"


def test_tuned_for_6x_holds_40_db_on_held_out_prompts(full_64, tuned_6x):
    """40.96 dB (worst 32.7) at 6.02x on the 64 held-out prompts, slopes damped."""
    result, images, flops = tuned_6x
    ratio = full_64[1] / flops
    pooled, per_sample = psnr(full_64[0], images)
    assert ratio >= 6.0 and pooled >= 40.0, f"{ratio:.2f}x at {pooled:.2f} dB, worst {min(per_sample):.2f} dB"
    assert isinstance(result.config.forecaster, forecache.Damped)


def test_damped_slopes_hold_40_db_at_10x_and_50_steps_tuned_on_4_samples(pipe, judge):
    """16 prompts: 39.8 dB undamped, 41.8 (worst 37.5) damped at 10.06x (64: 42.36, worst 36.8).

    The worst sample holds issue 19's 35 dB too. The tuner's figure on its 4 samples reads 46.3 dB;
    its validation on 64 new samples of the same prompts 42.7.
    """
    full, full_flops = generate(pipe, HELD_OUT, SEEDS, steps=50)
    _, plain, _ = tune_and_generate(pipe, 10.0, trials=8, steps=50, damp=False)
    result, images, flops = tune_and_generate(pipe, 10.0, trials=8, steps=50, validate=16)
    ratio = full_flops / flops
    before, (after, per_sample) = psnr(full, plain)[0], psnr(full, images)
    assert ratio >= 10.0 and after >= 40.0 and min(per_sample) >= 35.0 and after >= before + 1.0, (
        f"{ratio:.2f}x: {before:.2f} -> {after:.2f} dB (worst {min(per_sample):.2f})"
    )
    validated, verified = result.validation.psnr_db, result.chosen.psnr_db
    print(f"10x: {before:.2f} -> {after:.2f} dB (worst {min(per_sample):.2f}); validated {validated:.2f}")
    assert result.validation.samples == 64
    assert abs(validated - after) <= 1.0 < verified - after, (
        f"held out {after:.2f} dB, validated {validated:.2f}, verified {verified:.2f}"
    )
    assert isinstance(result.config.forecaster, forecache.Damped) and result.chosen.partial
    drop = judge.adherence(full, HELD_OUT).mean() - judge.adherence(images, HELD_OUT).mean()
    assert drop <= 0.01, f"adherence fell by {drop:.3f}"


def test_tuned_for_3_5x_holds_40_db_and_adherence_on_held_out_prompts(pipe, full, judge):
    """The 4x cell of `make bench` (16 held-out prompts): 4.01x at 49.8 dB mean, 45.3 dB worst."""
    _, images, flops = tune_and_generate(pipe, 3.5, trials=2)
    ratio = full[1] / flops
    pooled, per_sample = psnr(full[0], images)
    assert ratio >= 3.5, f"tuned ratio {ratio:.2f}x"
    assert pooled >= 40.0 and min(per_sample) >= 35.0, f"{pooled:.2f} dB, worst {min(per_sample):.2f} dB"
    drop = judge.adherence(full[0], HELD_OUT).mean() - judge.adherence(images, HELD_OUT).mean()
    assert drop <= 0.01, f"adherence fell by {drop:.3f}"
