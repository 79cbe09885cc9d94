"""The motion model's parts, untrained: grammar, paths, drawing, prompt sets, tokenizer, judge rules."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from forecache.reference.motion import grammar
from forecache.reference.motion.grammar import (
    DIRECTIONS,
    FRAMES,
    HELD_OUT_PAIRS,
    MOTIONS,
    ClipSpec,
    MovingObject,
    caption,
    parse_caption,
    path,
    random_clip,
)
from forecache.reference.motion.judge import (
    FrameReading,
    frame_adherence,
    motion_accuracy,
    read_motion,
)
from forecache.reference.motion.model import CALL_DEFAULTS, MAX_TOKENS, build_pipeline, build_tokenizer
from forecache.reference.motion.prompts import PROMPT_SETS, prompt_set
from forecache.reference.motion.render import render_clip, render_clips, tracks
from forecache.reference.scenes.grammar import COLOURS, SHAPES

pytestmark = pytest.mark.eval


def test_caption_and_parse_are_inverse_and_clips_keep_their_rules():
    rng = random.Random(0)
    for _ in range(2000):
        clip = random_clip(rng)
        assert parse_caption(caption(clip)) == clip
        assert not clip.pairs() & HELD_OUT_PAIRS
        cells = [obj.cells() for obj in clip.objects]
        assert sum(len(c) for c in cells) == len(frozenset().union(*cells))  # disjoint paths
    assert caption(ClipSpec((MovingObject("cross", "orange", None, "growing", 4),), "black", "striped")) == (
        "an orange cross growing in the center, on a striped black background"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a small red circle rising on the left", "ends with ', on a \\[striped\\] <colour> background'"),
        ("a small red circle flying on the left, on a grey background", "unknown motion"),
        ("a small red circle rising at the top, on a grey background", "unknown lane 'at the top' for 'ris"),
        ("a red circle growing nowhere, on a grey background", "unknown position 'nowhere'"),
        ("a huge red circle rising on the left, on a grey background", "`size` must be one of small, large"),
        ("a small red circle rising on the left, on a dotted grey background", "unknown background texture"),
    ],
)
def test_parse_caption_names_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


def test_clip_checks_name_the_field():
    with pytest.raises(ValueError, match=r"`lane` must be an int in \[0, 2\] for 'rising', got 3"):
        MovingObject("circle", "red", "small", "rising", 3)
    with pytest.raises(ValueError, match="`size` must be None for a growing object, got 'small'"):
        MovingObject("circle", "red", "small", "growing", 3)
    right = MovingObject("circle", "red", "small", "moving to the right", 0)
    fall = MovingObject("square", "blue", "large", "falling", 1)
    with pytest.raises(ValueError, match=r"disjoint cells; blue square falling crosses cells \[1\]"):
        ClipSpec((right, fall), "grey")
    with pytest.raises(ValueError, match=r"distinct colours, got \['red', 'red'\]"):
        ClipSpec((right, MovingObject("square", "red", "large", "moving to the left", 2)), "grey")


def test_paths_start_end_and_bounce_where_the_caption_says():
    near, middle, far = 32 / 6, 16.0, 32 - 32 / 6

    def at(motion: str, lane: int, tau: float, size: str | None = "large") -> list[float]:
        return [round(v, 6) for v in path(MovingObject("circle", "red", size, motion, lane), tau)]

    near, far = round(near, 6), round(far, 6)
    assert at("moving to the right", 0, 0.0, "small") == [near, near, 3.0]
    assert at("moving to the right", 0, 1.0, "small") == [far, near, 3.0]
    assert at("moving to the left", 2, 0.0) == [far, far, 5.0] and at("moving to the left", 2, 1.0)[0] == near
    assert at("rising", 2, 0.0) == [far, far, 5.0] and at("rising", 2, 1.0) == [far, near, 5.0]
    assert at("falling", 0, 0.0)[1] == near and at("falling", 0, 1.0)[1] == far
    assert [at("bouncing", 1, t)[1] for t in (0.0, 0.5, 1.0)] == [near, far, near]
    assert at("growing", 4, 0.0, None) == [middle, middle, 2.0] and at("growing", 4, 1.0, None)[2] == 5.5


def test_render_draws_each_frame_on_its_path_with_seeded_jitter():
    clip = ClipSpec((MovingObject("square", "red", "large", "moving to the right", 1),), "grey")
    drawn = render_clip(clip)
    assert drawn.video.shape == (FRAMES, 3, 32, 32) and drawn.video.dtype == np.float32
    pixels = ((drawn.video + 1.0) * 127.5).round()
    for f in range(FRAMES):
        cx, cy, _ = drawn.tracks[0, f]
        assert tuple(pixels[f, :, int(cy), int(cx)]) == COLOURS["red"], f
    assert drawn.objects.max() == 1.0 and drawn.objects[0, 0, 0] == 0.0
    np.testing.assert_array_equal(drawn.tracks, tracks(clip))
    again = render_clip(clip, random.Random(7))
    assert np.array_equal(again.video, render_clip(clip, random.Random(7)).video)
    shift = again.tracks - drawn.tracks
    assert np.abs(shift).max() <= 1.0 and np.ptp(shift[0, :, :2], axis=0).max() < 1e-12  # one offset a path
    assert render_clips([clip, clip]).shape == (2, 3, FRAMES, 32, 32)


def test_render_is_deterministic_to_the_pixel():
    clip = ClipSpec(
        (
            MovingObject("square", "red", "large", "moving to the right", 1),
            MovingObject("cross", "blue", None, "growing", 0),
        ),
        "black",
        "striped",
    )
    drawn = render_clip(clip, random.Random(7))
    # whole pixels the objects cover, frame by frame: the square's (about 8.5 px wide) plus the
    # cross's, which grows from a radius of 2 to 5.5 px
    assert (drawn.objects == 1.0).sum(axis=(1, 2)).tolist() == [69, 72, 73, 74, 77, 88, 109, 109, 118]
    assert round(float(drawn.video.astype(np.float64).sum()), 3) == -20054.131
    assert np.array_equal(render_clip(clip, random.Random(7)).video, drawn.video)


def test_prompt_sets_are_fixed_disjoint_and_held_out_combines_unseen_pairs():
    sets = {name: prompt_set(name) for name in PROMPT_SETS}
    assert {name: len(p) for name, p in sets.items()} == PROMPT_SETS
    for name, prompts in sets.items():
        assert len(set(prompts)) == len(prompts), name
    assert not set(sets["calibration"]) & set(sets["benchmark"])
    assert not (set(sets["calibration"]) | set(sets["benchmark"])) & set(sets["heldout"])
    for name, prompts in sets.items():
        for prompt in prompts:
            unseen = parse_caption(prompt).pairs() & HELD_OUT_PAIRS
            assert bool(unseen) == (name == "heldout"), prompt
    motions = {obj.motion for p in sets["heldout"] for obj in parse_caption(p).objects}
    assert motions == set(MOTIONS)
    with pytest.raises(ValueError, match="`prompts` must be one of calibration, benchmark, heldout, got 'x'"):
        prompt_set("x")


def test_tokenizer_knows_every_word_and_fits_the_longest_caption():
    tokenizer = build_tokenizer()
    longest = caption(
        ClipSpec(
            (
                MovingObject("triangle", "purple", "small", "moving to the right", 0),
                MovingObject("triangle", "orange", "large", "moving to the left", 2),
            ),
            "black",
            "striped",
        )
    )
    ids = tokenizer(longest).input_ids
    assert len(ids) <= MAX_TOKENS and 2 not in ids
    assert 2 not in tokenizer(" ".join(grammar.WORDS)).input_ids
    assert tokenizer("a zebra").input_ids[1] == 2


def test_training_encodes_prompts_as_the_pipeline_does(one_thread):
    from forecache.reference.motion.train import TextEncoder

    torch.manual_seed(0)
    pipe = build_pipeline()
    prompts = [prompt_set("heldout")[0], ""]
    ours = TextEncoder(pipe.text_encoder)(prompts)
    theirs = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=MAX_TOKENS)[0]
    assert torch.equal(ours, theirs)


def test_an_untrained_pipeline_makes_clips_of_the_advertised_shape(one_thread):
    torch.manual_seed(0)
    pipe = build_pipeline(transformer_2=build_pipeline().transformer)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(prompt=prompt_set("calibration")[:1], num_inference_steps=2, **CALL_DEFAULTS).frames
    assert frames.shape == (1, FRAMES, 32, 32, 3) and pipe.config.boundary_ratio == 0.875


@pytest.mark.parametrize("experts", [1, 2])
def test_the_untrained_model_runs_in_wan_pipeline_cached_and_uncached_bitwise(experts, one_thread):
    import forecache

    torch.manual_seed(0)
    pipe = build_pipeline(transformer_2=build_pipeline().transformer if experts == 2 else None)
    pipe.set_progress_bar_config(disable=True)

    def generate():
        return pipe(
            prompt=prompt_set("calibration")[:2],
            num_inference_steps=10,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
            **CALL_DEFAULTS,
        ).frames

    full = generate()
    forecache.apply(pipe, forecache.TaylorSeerConfig(interval=3, warmup=2, cooldown=1))
    try:
        cached = generate()
        stats = forecache.stats(pipe)
    finally:
        forecache.remove(pipe)
    # guidance in two calls per step ("cond", "uncond"); two experts: the high-noise one takes the
    # first 3 of 10 steps (timesteps >= 875 on the shift-3 grid), each expert its own contexts
    expected = (
        {"cond": "CCCFFCFFCC", "uncond": "CCCFFCFFCC"}
        if experts == 1
        else {
            "cond": "CCC",
            "uncond": "CCC",
            "transformer_2/cond": "CCCFFCC",
            "transformer_2/uncond": "CCCFFCC",
        }
    )
    assert {key: "".join(ctx.decisions) for key, ctx in stats.contexts.items()} == expected
    assert stats.compute_ratio == pytest.approx(20 / 12 if experts == 1 else 20 / 16)
    assert np.isfinite(cached).all() and not np.array_equal(cached, full)
    assert np.array_equal(generate(), full)  # removed: bitwise what it computed before


def test_the_experts_are_saved_in_half_precision_and_load_beside_the_shared_parts(tmp_path, one_thread):
    from forecache.reference.motion.model import load_experts, save_experts

    torch.manual_seed(0)
    pipe = build_pipeline(transformer_2=build_pipeline().transformer)
    pipe.save_pretrained(tmp_path / "motion")
    save_experts(pipe, tmp_path / "experts")
    assert sorted(p.name for p in (tmp_path / "experts").iterdir()) == ["transformer", "transformer_2"]
    loaded = load_experts(tmp_path / "experts", tmp_path / "motion")
    assert loaded.config.boundary_ratio == 0.875 and loaded.name_or_path == str(tmp_path / "experts")
    for name in ("transformer", "transformer_2"):
        saved = getattr(pipe, name).state_dict()
        for key, value in getattr(loaded, name).state_dict().items():
            assert value.dtype == torch.float32 and torch.equal(value, saved[key].half().float()), key
    assert torch.equal(loaded.vae.decoder.conv_out.weight, pipe.vae.decoder.conv_out.weight)
    size = sum(f.stat().st_size for f in (tmp_path / "experts").rglob("*.safetensors"))
    one = sum(f.stat().st_size for f in (tmp_path / "motion" / "transformer").rglob("*.safetensors"))
    assert size < 1.01 * one  # two experts in half precision: the size of one transformer in float32
    with pytest.raises(ValueError, match="two experts"):
        save_experts(build_pipeline(), tmp_path / "one")


def _reading(clips: list[ClipSpec], frames: int, jitter: float = 0.0) -> FrameReading:
    """The reading a perfect judge would make of undistorted clips (plus a constant offset)."""
    batch = len(clips) * frames
    present = torch.zeros(batch, len(COLOURS), dtype=torch.bool)
    shape = torch.zeros(batch, len(COLOURS), dtype=torch.long)
    place = torch.zeros(batch, len(COLOURS), 3)
    for i, clip in enumerate(clips):
        for obj, track in zip(clip.objects, tracks(clip, frames=frames), strict=True):
            c = list(COLOURS).index(obj.colour)
            rows = slice(i * frames, (i + 1) * frames)
            present[rows, c] = True
            shape[rows, c] = SHAPES.index(obj.shape)
            place[rows, c] = torch.tensor(track, dtype=torch.float32) + jitter
    grounds = ["grey", "black", "white"]
    background = torch.tensor([grounds.index(c.background) for c in clips]).repeat_interleave(frames)
    texture = torch.tensor([["plain", "striped"].index(c.texture) for c in clips]).repeat_interleave(frames)
    return FrameReading(present, shape, place, background, texture)


def test_a_perfect_reading_scores_one_and_every_motion_is_told_apart():
    rng = random.Random(3)
    clips = [random_clip(rng, frozenset()) for _ in range(64)]
    reading = _reading(clips, FRAMES, jitter=0.9)
    assert frame_adherence(reading, clips, FRAMES).min() == 1.0
    assert motion_accuracy(reading, clips, FRAMES).min() == 1.0
    for motion, direction in zip(MOTIONS, DIRECTIONS, strict=True):
        obj = MovingObject("circle", "red", None if motion == "growing" else "large", motion, 1)
        track = np.array([path(obj, f / (FRAMES - 1)) for f in range(FRAMES)])
        assert read_motion(track, np.ones(FRAMES, bool)) == direction
        seen = np.ones(FRAMES, bool)
        seen[::2] = False
        assert read_motion(track, seen) == direction  # from every other frame
    still = np.tile([16.0, 16.0, 4.0], (FRAMES, 1))
    assert read_motion(still, np.ones(FRAMES, bool)) == "still"
    assert read_motion(still, np.eye(FRAMES, dtype=bool)[0]) == "unseen"


def test_adherence_counts_each_attribute_per_frame():
    clip = ClipSpec((MovingObject("circle", "red", "large", "falling", 0),), "white", "striped")
    reading = _reading([clip], FRAMES)
    reading.place[4:, 0, 0] += 3.5  # from frame 4 on the circle is 3.5 px off its path: not in place
    reading.place[:2, 0, 2] = 3.0  # frames 0-1: read small: wrong size
    reading.present[8, 0] = False  # frame 8: not found (nor its shape, size, place)
    reading.texture[:] = 0  # plain, wrong in every frame
    scores = frame_adherence(reading, [clip], FRAMES)[0]
    # of 6 attributes: background 1, texture 0, presence 1, shape 1, size, place
    expected = [4, 4, 5, 5, 4, 4, 4, 4, 1]
    assert scores.tolist() == [e / 6 for e in expected]
    with pytest.raises(ValueError, match="one clip per 9 frames read"):
        frame_adherence(reading, [clip, clip], FRAMES)


def test_the_shipped_prompt_files_are_what_the_seeded_writers_write(tmp_path):
    from importlib import resources

    from forecache.reference.motion.prompts import write_prompt_sets as write_motion
    from forecache.reference.scenes.prompts import write_prompt_sets as write_scenes

    for family, write in (("motion", write_motion), ("scenes", write_scenes)):
        folder = tmp_path / family
        folder.mkdir()
        write(folder)
        shipped = resources.files(f"forecache.reference.{family}").joinpath("prompts")
        for name in PROMPT_SETS:
            assert (folder / f"{name}.txt").read_text("utf-8") == shipped.joinpath(f"{name}.txt").read_text(
                "utf-8"
            ), (family, name)


def test_wan_cannot_place_anything_from_text_alone(one_thread):
    """Why the model misses its places (BENCHMARKS.md, Motion): Wan's video tokens carry no absolute position.

    Positions enter only as rotary offsets between video tokens, and the text through cross-attention
    without positions, so on an input the same at every token the output is the same at every token,
    in every frame, whatever the prompt says: at the sampler's first, nearly pure-noise steps only the
    noise tells the model where and when an object is. (FLUX's text tokens sit at rotary position 0,
    an anchor the scenes model has.)
    """
    torch.manual_seed(0)
    transformer = build_pipeline().transformer.eval()
    states = torch.randn(1, MAX_TOKENS, transformer.config.text_dim)
    uniform = torch.full((1, transformer.config.in_channels, 5, 16, 16), 0.3)
    with torch.no_grad():
        out = transformer(uniform, torch.tensor([987.0]), states, return_dict=False)[0]
    patches = out.unfold(3, 4, 4).unfold(4, 4, 4)  # (1, channels, frames, 4, 4, 4, 4): one per token
    first = patches[:, :, :1, :1, :1]
    assert out.abs().mean() > 0.01
    assert (patches - first).abs().max() < 1e-4 * out.abs().max()


def test_the_judge_adapter_loads_a_judge_from_a_training_folder(tmp_path):
    from forecache.reference.models import MotionJudgeAdapter
    from forecache.reference.motion.judge import MotionJudge

    torch.manual_seed(0)
    MotionJudge().save_pretrained(tmp_path / "judge")
    saved = MotionJudge.from_pretrained(tmp_path / "judge").state_dict()
    loaded = MotionJudgeAdapter(tmp_path / "judge").judge
    assert not loaded.training
    assert all(torch.equal(saved[k], v) for k, v in loaded.state_dict().items())
