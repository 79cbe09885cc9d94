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
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from forecache.reference.scenes.grammar import (
    HELD_OUT_PAIRS,
    SceneObject,
    SceneSpec,
    caption,
    parse_caption,
    random_scene,
)

__all__ = ["PROMPT_SETS", "prompt_set", "read_prompt_file", "write_prompt_sets"]

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


def read_prompt_file(package: str, name: str, sets: Iterable[str]) -> list[str]:
    """Return the prompts of ``<package>/prompts/<name>.txt``, one per non-empty line.

    Args:
        package (`str`): The package holding the ``prompts`` folder.
        name (`str`): The set's name; one of `sets`.
        sets (`Iterable[str]`): The names the package ships.

    Raises:
        ValueError: `name` is not one of `sets`.

    """
    known = list(sets)
    if name not in known:
        raise ValueError(f"`prompts` must be one of {', '.join(known)}, got {name!r}")
    text = resources.files(package).joinpath(f"prompts/{name}.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line]


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
    taken: set[str] = set()
    out = Path(folder)
    for name, size in PROMPT_SETS.items():
        rng = random.Random(_SEEDS[name])
        chosen: list[str] = []
        while len(chosen) < size:
            scene = _heldout_scene(rng) if name == "heldout" else random_scene(rng)
            text = caption(scene)
            if text not in taken:
                taken.add(text)
                chosen.append(text)
        (out / f"{name}.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")


def scene_of(prompt: str) -> SceneSpec:
    """Return the scene a prompt of the grammar describes (`parse_caption`)."""
    return parse_caption(prompt)
