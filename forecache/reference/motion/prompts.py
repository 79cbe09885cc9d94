"""The motion model's fixed prompt sets: calibration, benchmark and held-out, disjoint, shipped as text files.

- ``calibration`` (16 prompts): what `forecache.tune` calibrates on (the first four by default);
  drawn from the training distribution.
- ``benchmark`` (128 prompts): the training distribution, none equal to a calibration prompt.
- ``heldout`` (128 prompts): every prompt has at least one colour-motion pair of
  `HELD_OUT_PAIRS`, which training never showed; the figures of BENCHMARKS.md are on this set.

The files were written once by `write_prompt_sets` (seeded) and are read, never regenerated.
"""

from __future__ import annotations

import random
from pathlib import Path

from forecache.reference.motion.grammar import (
    HELD_OUT_PAIRS,
    ClipSpec,
    MovingObject,
    caption,
    random_clip,
)
from forecache.reference.prompt_files import read_prompt_file, write_prompt_files

__all__ = ["PROMPT_SETS", "prompt_set", "write_prompt_sets"]

PROMPT_SETS: dict[str, int] = {"calibration": 16, "benchmark": 128, "heldout": 128}
"""The sets and their sizes."""

_SEEDS = {"calibration": 11, "benchmark": 12, "heldout": 13}


def prompt_set(name: str) -> list[str]:
    """Return a shipped prompt set.

    Args:
        name (`str`): One of `PROMPT_SETS`: ``"calibration"``, ``"benchmark"`` or ``"heldout"``.

    Returns:
        The prompts, in their fixed order.

    Raises:
        ValueError: `name` is not a set.

    """
    return read_prompt_file("forecache.reference.motion", name, PROMPT_SETS)


def _heldout_clip(rng: random.Random) -> ClipSpec:
    """Draw a clip and give one of its objects a held-out colour-motion pair (a fresh lane)."""
    while True:
        clip = random_clip(rng)
        colour, motion = rng.choice(sorted(HELD_OUT_PAIRS))
        index = rng.randrange(len(clip.objects))
        old = clip.objects[index]
        if any(obj.colour == colour for i, obj in enumerate(clip.objects) if i != index):
            continue
        size = None if motion == "growing" else (old.size or rng.choice(("small", "large")))
        lane = rng.randrange(9 if motion == "growing" else 3)
        objects = list(clip.objects)
        objects[index] = MovingObject(old.shape, colour, size, motion, lane)
        try:
            return ClipSpec(tuple(objects), clip.background, clip.texture)
        except ValueError:  # the new path crosses the other object's: draw again
            continue


def write_prompt_sets(folder: str | Path) -> None:
    """Write the three sets as ``<name>.txt`` into `folder` (how the shipped files were made).

    Calibration first, then benchmark prompts that differ from every calibration prompt, then
    held-out prompts; no set repeats a prompt.
    """

    def draw(name: str, rng: random.Random) -> str:
        return caption(_heldout_clip(rng) if name == "heldout" else random_clip(rng))

    write_prompt_files(folder, PROMPT_SETS, _SEEDS, draw)
