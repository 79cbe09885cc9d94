"""The word test: changing one colour or position word of a prompt must change that attribute in the image.

For each try, one object of a prompt gets another colour, or moves to a free cell, and the same
seed is generated again; the try succeeds when the judge reads the new colour on that object's cell,
or the object on its new cell with its old cell empty. A model that reads its prompt passes nearly
every try; one that draws from habit keeps the colour or the place of the original.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from forecache.reference.scenes.grammar import COLOURS, SceneObject, SceneSpec, caption, parse_caption
from forecache.reference.scenes.judge import SceneJudge

__all__ = ["WordChange", "word_changes", "word_test"]


@dataclass(frozen=True)
class WordChange:
    """One try of the word test.

    Args:
        source (`int`): Index of the original prompt (its seed is reused).
        prompt (`str`): The prompt with one word changed.
        kind (`str`): ``"colour"`` or ``"position"``.
        cell (`int`): The changed object's cell (its new cell for a position change).
        old_cell (`int`): The object's cell before the change (equal to `cell` for a colour change).
        colour (`int`): The new colour's index in `COLOURS` (its unchanged one for a position change).

    """

    source: int
    prompt: str
    kind: str
    cell: int
    old_cell: int
    colour: int


def word_changes(prompts: list[str], tries: int, seed: int = 0) -> list[WordChange]:
    """Make `tries` single-word changes, alternating colour and position, cycling over `prompts`.

    Args:
        prompts (`list[str]`): Prompts of the grammar.
        tries (`int`): How many changes.
        seed (`int`, defaults to 0): Which object, colour and cell each change picks.

    Returns:
        The changes, in order.

    """
    rng = random.Random(seed)
    colours = list(COLOURS)
    changes = []
    for t in range(tries):
        index = t % len(prompts)
        scene = parse_caption(prompts[index])
        k = rng.randrange(len(scene.objects))
        obj = scene.objects[k]
        objects = list(scene.objects)
        if t % 2 == 0:
            colour = rng.choice([c for c in colours if c != obj.colour])
            objects[k] = SceneObject(obj.shape, colour, obj.size, obj.cell)
            kind, cell = "colour", obj.cell
        else:
            colour = obj.colour
            cell = rng.choice([c for c in range(9) if c not in {o.cell for o in scene.objects}])
            objects[k] = SceneObject(obj.shape, obj.colour, obj.size, cell)
            kind = "position"
        text = caption(SceneSpec(tuple(objects), scene.background, scene.texture))
        changes.append(WordChange(index, text, kind, cell, obj.cell, colours.index(colour)))
    return changes


def word_test(judge: SceneJudge, images: np.ndarray, changes: list[WordChange]) -> dict[str, list[bool]]:
    """Score generated images of the changed prompts.

    Args:
        judge (`SceneJudge`): The scenes judge.
        images (`np.ndarray`): `(len(changes), 32, 32, 3)` in [0, 1], image i made from `changes[i]`.
        changes (`list[WordChange]`): What each image's prompt changed.

    Returns:
        `{"colour": [...], "position": [...]}`: per try, whether the image shows the change.

    """
    reading = judge.read_output(images)
    hits: dict[str, list[bool]] = {"colour": [], "position": []}
    for i, change in enumerate(changes):
        there = bool(reading.shape[i, change.cell] != 0)
        if change.kind == "colour":
            hits["colour"].append(there and int(reading.colour[i, change.cell]) == change.colour)
        else:
            hits["position"].append(there and int(reading.shape[i, change.old_cell]) == 0)
    return hits
