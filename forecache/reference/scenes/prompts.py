"""The scenes model's fixed prompt sets: calibration, benchmark and held-out, disjoint, shipped as text files.

- ``calibration`` (16 prompts): what `forecache.tune` calibrates on (it takes the first four by
  default); drawn from the training distribution.
- ``benchmark`` (128 prompts): the training distribution, none equal to a calibration prompt.
- ``heldout`` (128 prompts): every prompt has at least one colour-shape pair of
  `HELD_OUT_PAIRS`, which training never showed; the figures of BENCHMARKS.md are on this set.

The files were written once by `write_prompt_sets` (seeded) and are read, never regenerated, so
the sets stay fixed whatever Python's random module does in later releases.
"""

from __future__ import annotations

import random
from pathlib import Path

from forecache.reference.prompt_files import read_prompt_file, write_prompt_files
from forecache.reference.scenes.grammar import (
    HELD_OUT_PAIRS,
    SceneObject,
    SceneSpec,
    caption,
    random_scene,
)

__all__ = ["PROMPT_SETS", "prompt_set", "write_prompt_sets"]

PROMPT_SETS: dict[str, int] = {"calibration": 16, "benchmark": 128, "heldout": 128}
"""The sets and their sizes."""

_SEEDS = {"calibration": 1, "benchmark": 2, "heldout": 3}


def prompt_set(name: str) -> list[str]:
    """Return a shipped prompt set.

    Args:
        name (`str`): One of `PROMPT_SETS`: ``"calibration"``, ``"benchmark"`` or ``"heldout"``.

    Returns:
        The prompts, in their fixed order.

    Raises:
        ValueError: `name` is not a set.

    """
    return read_prompt_file("forecache.reference.scenes", name, PROMPT_SETS)


def _heldout_scene(rng: random.Random) -> SceneSpec:
    """Draw a scene and give one of its objects a held-out colour-shape pair."""
    scene = random_scene(rng)
    colour, shape = rng.choice(sorted(HELD_OUT_PAIRS))
    index = rng.randrange(len(scene.objects))
    first = scene.objects[index]
    objects = list(scene.objects)
    objects[index] = SceneObject(shape, colour, first.size, first.cell)
    return SceneSpec(tuple(objects), scene.background, scene.texture)


def write_prompt_sets(folder: str | Path) -> None:
    """Write the three sets as ``<name>.txt`` into `folder` (how the shipped files were made).

    Calibration first, then benchmark prompts that differ from every calibration prompt, then
    held-out prompts; each set has no repeated prompt.
    """

    def draw(name: str, rng: random.Random) -> str:
        return caption(_heldout_scene(rng) if name == "heldout" else random_scene(rng))

    write_prompt_files(folder, PROMPT_SETS, _SEEDS, draw)
