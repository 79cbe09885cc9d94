"""The scenes model's parts, without trained weights: grammar, drawing, prompt sets, tokenizer, judge."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from forecache.reference.scenes import grammar
from forecache.reference.scenes.grammar import (
    COLOURS,
    HELD_OUT_PAIRS,
    SceneObject,
    SceneSpec,
    caption,
    parse_caption,
    random_scene,
)
from forecache.reference.scenes.judge import SceneReading, adherence
from forecache.reference.scenes.model import MAX_TOKENS, build_tokenizer
from forecache.reference.scenes.prompts import PROMPT_SETS, prompt_set
from forecache.reference.scenes.render import IMAGE_SIZE, render

pytestmark = pytest.mark.eval


def test_caption_and_parse_are_inverse_over_random_scenes():
    rng = random.Random(0)
    for _ in range(500):
        scene = random_scene(rng)
        assert parse_caption(caption(scene)) == scene
        assert not scene.pairs() & HELD_OUT_PAIRS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a large red circle on the left", "ends with ', on a <colour> background'"),
        ("a large red circle nowhere, on a grey background", "unknown position 'nowhere'"),
        (
            "a huge red circle on the left, on a grey background",
            "`size` must be one of small, large, got 'huge'",
        ),
        (
            "a large red circle on the left, on a dotted grey background",
            "unknown background texture 'dotted'",
        ),
        ("a large red circle on the left, on a pink background", "`background` must be one of grey, black"),
    ],
)
def test_parse_caption_names_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


def test_scene_checks_name_the_field():
    with pytest.raises(ValueError, match=r"`cell` must be an int in \[0, 8\], got 9"):
        SceneObject("circle", "red", "small", 9)
    obj = SceneObject("circle", "red", "small", 4)
    with pytest.raises(ValueError, match=r"distinct cells, got cells \[4, 4\]"):
        SceneSpec((obj, obj), "grey")
    with pytest.raises(ValueError, match="1 to 3 objects, got 0"):
        SceneSpec((), "grey")


def test_render_draws_each_object_in_its_colour_on_its_cell():
    scene = SceneSpec(
        (SceneObject("square", "red", "large", 0), SceneObject("circle", "blue", "large", 8)), "grey"
    )
    image = render(scene)
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and image.dtype == np.float32
    pixel = ((image + 1.0) * 127.5).round()
    centre = IMAGE_SIZE // 6
    assert tuple(pixel[:, centre, centre]) == COLOURS["red"]
    assert tuple(pixel[:, IMAGE_SIZE - 1 - centre, IMAGE_SIZE - 1 - centre]) == COLOURS["blue"]
    assert tuple(pixel[:, IMAGE_SIZE // 2, IMAGE_SIZE // 2]) == (125, 125, 125)  # the empty centre cell
    again = render(scene, random.Random(7))
    assert np.array_equal(again, render(scene, random.Random(7)))
    assert not np.array_equal(again, render(scene, random.Random(8)))  # jitter


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
    with pytest.raises(ValueError, match="`prompts` must be one of calibration, benchmark, heldout, got 'x'"):
        prompt_set("x")


def test_tokenizer_knows_every_word_and_fits_the_longest_caption():
    tokenizer = build_tokenizer()
    longest = caption(
        SceneSpec(
            tuple(SceneObject("triangle", "purple", "small", cell) for cell in (0, 2, 6)), "black", "striped"
        )
    )
    ids = tokenizer(longest).input_ids
    assert len(ids) <= MAX_TOKENS
    assert 2 not in ids  # no unknown word
    every = " ".join(grammar.WORDS)
    assert 2 not in tokenizer(every).input_ids
    assert tokenizer("a zebra").input_ids[1] == 2


def test_adherence_counts_each_attribute():
    scene = SceneSpec(
        (SceneObject("circle", "red", "large", 3), SceneObject("cross", "blue", "small", 5)),
        "white",
        "striped",
    )
    shape = torch.zeros(1, 9, dtype=torch.long)
    colour = torch.zeros(1, 9, dtype=torch.long)
    size = torch.zeros(1, 9, dtype=torch.long)
    shape[0, 3] = 1  # circle, right
    colour[0, 3] = 2  # blue, wrong (red is 0)
    size[0, 3] = 1  # large, right
    # cell 5 left empty: the cross is missing (none of its four attributes)
    reading = SceneReading(shape, colour, size, torch.tensor([2]), torch.tensor([0]))
    # found: background colour (white = 2) 1, texture 0, object 1: present, shape, size = 3 -> 4 of 10
    assert adherence(reading, [scene]).tolist() == [0.4]
    with pytest.raises(ValueError, match="one scene per image"):
        adherence(reading, [scene, scene])
