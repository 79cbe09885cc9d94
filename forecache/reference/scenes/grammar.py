"""The scenes' vocabulary and caption grammar: objects with a shape, colour, size and place; their captions.

A scene is one to three objects, each on its own cell of a 3x3 grid, on a plain or striped
background. Its caption names every attribute, object by object, in a fixed grammar::

    a large red circle on the left and a small blue triangle at the top, on a grey background
    a small green cross at the bottom right, on a striped black background

`parse_caption` inverts `caption`, so a prompt typed by hand is judged like a generated one. Four
colour-shape pairs (`HELD_OUT_PAIRS`) never appear in training: the held-out prompt set combines
words that the training never showed together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "HELD_OUT_PAIRS",
    "MAX_OBJECTS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "TEXTURES",
    "WORDS",
    "SceneObject",
    "SceneSpec",
    "caption",
    "parse_caption",
    "random_scene",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""Object shapes, in the order of the judge's shape classes (after "none")."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 210, 30),
    "purple": (150, 55, 205),
    "orange": (245, 135, 25),
}
"""Object colours and their RGB values, in the order of the judge's colour classes."""

SIZES: tuple[str, ...] = ("small", "large")
"""Object sizes (diameter about 6 and 10 pixels of the 32x32 image)."""

POSITIONS: tuple[str, ...] = (
    "at the top left",
    "at the top",
    "at the top right",
    "on the left",
    "in the center",
    "on the right",
    "at the bottom left",
    "at the bottom",
    "at the bottom right",
)
"""Position phrases, one per cell of the 3x3 grid in row-major order (cell = 3 * row + column)."""

BACKGROUNDS: dict[str, int] = {"grey": 125, "black": 20, "white": 235}
"""Background colours and their grey level."""

TEXTURES: tuple[str, ...] = ("plain", "striped")
"""Background textures; "plain" is not said in captions."""

MAX_OBJECTS = 3
"""Most objects in one scene."""

HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "cross"), ("green", "circle"), ("yellow", "square")}
)
"""(colour, shape) pairs that training never shows; every held-out prompt has at least one."""

WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        " ".join(
            ["a and on background , striped", *SHAPES, *COLOURS, *SIZES, *POSITIONS, *BACKGROUNDS]
        ).split()
    )
)
"""Every word of the grammar (the tokenizers' vocabulary after their special tokens)."""


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Args:
        shape (`str`): One of `SHAPES`.
        colour (`str`): One of `COLOURS`.
        size (`str`): One of `SIZES`.
        cell (`int`): Grid cell in [0, 8] (row-major; `POSITIONS[cell]` is its phrase).

    """

    shape: str
    colour: str
    size: str
    cell: int

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, tuple(COLOURS)),
            ("size", self.size, SIZES),
        ):
            if value not in allowed:
                raise ValueError(f"`{field}` must be one of {', '.join(allowed)}, got {value!r}")
        if not isinstance(self.cell, int) or isinstance(self.cell, bool) or not 0 <= self.cell < 9:
            raise ValueError(f"`cell` must be an int in [0, 8], got {self.cell!r}")


@dataclass(frozen=True)
class SceneSpec:
    """A scene: its objects (on distinct cells), its background colour and texture.

    Args:
        objects (`tuple[SceneObject, ...]`): One to `MAX_OBJECTS` objects, each on its own cell, in
            the order the caption names them.
        background (`str`): One of `BACKGROUNDS`.
        texture (`str`): One of `TEXTURES`.

    """

    objects: tuple[SceneObject, ...]
    background: str
    texture: str = "plain"

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"`objects` must hold 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        cells = [obj.cell for obj in self.objects]
        if len(set(cells)) != len(cells):
            raise ValueError(f"`objects` must be on distinct cells, got cells {cells}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"`background` must be one of {', '.join(BACKGROUNDS)}, got {self.background!r}")
        if self.texture not in TEXTURES:
            raise ValueError(f"`texture` must be one of {', '.join(TEXTURES)}, got {self.texture!r}")

    def pairs(self) -> set[tuple[str, str]]:
        """Return the scene's (colour, shape) pairs."""
        return {(obj.colour, obj.shape) for obj in self.objects}


def caption(scene: SceneSpec) -> str:
    """Return the scene's caption in the grammar (see the module docstring)."""
    objects = " and ".join(
        f"a {obj.size} {obj.colour} {obj.shape} {POSITIONS[obj.cell]}" for obj in scene.objects
    )
    texture = "striped " if scene.texture == "striped" else ""
    return f"{objects}, on a {texture}{scene.background} background"


def parse_caption(text: str) -> SceneSpec:
    """Invert `caption`: read a prompt of the grammar back into its scene.

    Args:
        text (`str`): A caption as `caption` writes it (spacing around the comma is free).

    Returns:
        The `SceneSpec` the caption describes.

    Raises:
        ValueError: `text` is not a sentence of the grammar; the message names the part that is not.

    """
    head, sep, tail = text.strip().rpartition(",")
    if not sep:
        raise ValueError(f"a scene caption ends with ', on a <colour> background', got {text!r}")
    words = tail.split()
    if len(words) not in (4, 5) or words[:2] != ["on", "a"] or words[-1] != "background":
        raise ValueError(
            f"cannot read the background of {text!r} (expected 'on a [striped] <colour> background')"
        )
    texture = "striped" if len(words) == 5 else "plain"
    if len(words) == 5 and words[2] != "striped":
        raise ValueError(f"unknown background texture {words[2]!r} in {text!r}; known: striped")
    objects = []
    for phrase in head.split(" and "):
        words = phrase.split()
        if len(words) < 5 or words[0] != "a":
            raise ValueError(f"cannot read the object {phrase.strip()!r} of {text!r}")
        position = " ".join(words[4:])
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r} in {text!r}; known: {', '.join(POSITIONS)}")
        objects.append(SceneObject(words[3], words[2], words[1], POSITIONS.index(position)))
    return SceneSpec(tuple(objects), words_background(tail), texture)


def words_background(tail: str) -> str:
    """Return the background colour word of a caption's tail ('on a [striped] <colour> background')."""
    return tail.split()[-2]


def random_scene(rng: random.Random, exclude: frozenset[tuple[str, str]] = HELD_OUT_PAIRS) -> SceneSpec:
    """Draw a scene uniformly over the grammar, without the excluded (colour, shape) pairs.

    Args:
        rng (`random.Random`): The source of randomness (seed it for a fixed scene).
        exclude (`frozenset[tuple[str, str]]`, defaults to `HELD_OUT_PAIRS`): Pairs no object may have.

    Returns:
        A `SceneSpec` of one to three objects (equally likely counts) on distinct cells.

    """
    count = rng.randint(1, MAX_OBJECTS)
    cells = rng.sample(range(9), count)
    objects = []
    for cell in cells:
        while True:
            shape, colour = rng.choice(SHAPES), rng.choice(tuple(COLOURS))
            if (colour, shape) not in exclude:
                break
        objects.append(SceneObject(shape, colour, rng.choice(SIZES), cell))
    return SceneSpec(tuple(objects), rng.choice(tuple(BACKGROUNDS)), rng.choice(TEXTURES))
