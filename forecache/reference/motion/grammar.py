"""The motion clips' vocabulary and caption grammar: objects that move, each along a path its caption names.

A clip is one or two objects on a plain or striped background, each with a shape and a colour of
the scenes grammar (`forecache.reference.scenes.grammar`) and one of six motions. Movers keep
their size and travel across the frame along a lane; a growing object stays on its cell::

    a small red circle moving to the right at the top and a large blue square falling on the left,
    on a grey background
    an orange cross growing in the center, on a striped black background

- "moving to the right" / "moving to the left": along a row ("at the top", "in the middle", "at the
  bottom"), from one outer cell's centre to the other's;
- "rising" / "falling": along a column ("on the left", "in the center", "on the right");
- "bouncing": along a column, dropped from the top, reaching the bottom at mid-clip and back up
  (a parabola in time, like a ball under gravity);
- "growing": on one of the nine cells, its radius from 2 to 5.5 pixels (no size word).

Two objects of a clip never share a colour (the judge reads objects by colour) nor a cell of their
paths (so they never overlap). Four colour-motion pairs (`HELD_OUT_PAIRS`) never appear in
training: every held-out prompt has at least one. `parse_caption` inverts `caption`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from forecache.reference.scenes.grammar import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES, TEXTURES

__all__ = [
    "COLUMNS",
    "DIRECTIONS",
    "FRAMES",
    "HELD_OUT_PAIRS",
    "MAX_OBJECTS",
    "MOTIONS",
    "ROWS",
    "WORDS",
    "ClipSpec",
    "MovingObject",
    "caption",
    "parse_caption",
    "path",
    "random_clip",
]

MOTIONS: tuple[str, ...] = (
    "moving to the right",
    "moving to the left",
    "rising",
    "falling",
    "bouncing",
    "growing",
)
"""Motion phrases, in the order of `DIRECTIONS` (the judge's motion classes)."""

DIRECTIONS: tuple[str, ...] = ("right", "left", "up", "down", "bounce", "grow")
"""Short names of the motions (same order as `MOTIONS`)."""

ROWS: tuple[str, ...] = ("at the top", "in the middle", "at the bottom")
"""Lanes of horizontal movers, top to bottom."""

COLUMNS: tuple[str, ...] = ("on the left", "in the center", "on the right")
"""Lanes of vertical movers and bouncing objects, left to right."""

FRAMES = 9
"""Frames per clip (WanPipeline's ``num_frames``: 1 + 4k for a VAE with temporal compression 4)."""

MAX_OBJECTS = 2
"""Most objects in one clip."""

HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("red", "falling"), ("blue", "moving to the left"), ("green", "growing"), ("yellow", "bouncing")}
)
"""(colour, motion) pairs that training never shows; every held-out prompt has at least one."""

WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        " ".join(
            [
                "a an and on background , striped",
                *SHAPES,
                *COLOURS,
                *SIZES,
                *MOTIONS,
                *ROWS,
                *COLUMNS,
                *POSITIONS,
                *BACKGROUNDS,
            ]
        ).split()
    )
)
"""Every word of the grammar (the tokenizer's vocabulary after its special tokens)."""

_SIZE = 32.0  # frame side in pixels
_CELL = _SIZE / 3
_RADIUS = {"small": 3.0, "large": 5.0}
_GROW = (2.0, 5.5)


def _centre(index: int) -> float:
    """Return the pixel coordinate of the centre of grid row or column `index`."""
    return (index + 0.5) * _CELL


@dataclass(frozen=True)
class MovingObject:
    """One object of a clip and its motion.

    Args:
        shape (`str`): One of `SHAPES`.
        colour (`str`): One of `COLOURS`.
        size (`str` or `None`): One of `SIZES` for movers; None for a growing object.
        motion (`str`): One of `MOTIONS`.
        lane (`int`): The row (0-2, `ROWS`) of a horizontal mover, the column (0-2, `COLUMNS`) of a
            rising, falling or bouncing one, the cell (0-8, row-major, `POSITIONS`) of a growing one.

    """

    shape: str
    colour: str
    size: str | None
    motion: str
    lane: int

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, tuple(COLOURS)),
            ("motion", self.motion, MOTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}")
        growing = self.motion == "growing"
        if growing and self.size is not None:
            raise ValueError(f"`size` must be None for a growing object, got {self.size!r}")
        if not growing and self.size not in SIZES:
            raise ValueError(f"`size` must be one of {', '.join(SIZES)} for a mover, got {self.size!r}")
        lanes = 9 if growing else 3
        if not isinstance(self.lane, int) or isinstance(self.lane, bool) or not 0 <= self.lane < lanes:
            raise ValueError(
                f"`lane` must be an int in [0, {lanes - 1}] for {self.motion!r}, got {self.lane!r}"
            )

    @property
    def direction(self) -> str:
        """The motion's short name (`DIRECTIONS`)."""
        return DIRECTIONS[MOTIONS.index(self.motion)]

    def cells(self) -> frozenset[int]:
        """Return the grid cells its path crosses."""
        if self.motion == "growing":
            return frozenset({self.lane})
        if self.direction in ("right", "left"):
            return frozenset(3 * self.lane + c for c in range(3))
        return frozenset(3 * r + self.lane for r in range(3))


@dataclass(frozen=True)
class ClipSpec:
    """A clip: its objects (distinct colours, disjoint paths), its background colour and texture.

    Args:
        objects (`tuple[MovingObject, ...]`): One to `MAX_OBJECTS` objects, in caption order.
        background (`str`): One of `BACKGROUNDS`.
        texture (`str`): One of `TEXTURES`.

    """

    objects: tuple[MovingObject, ...]
    background: str
    texture: str = "plain"

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"`objects` must hold 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        colours = [obj.colour for obj in self.objects]
        if len(set(colours)) != len(colours):
            raise ValueError(f"`objects` must have distinct colours, got {colours}")
        seen: set[int] = set()
        for obj in self.objects:
            if seen & obj.cells():
                raise ValueError(
                    f"`objects` must have paths on disjoint cells; {obj.colour} {obj.shape} {obj.motion} "
                    f"crosses cells {sorted(seen & obj.cells())} of another object"
                )
            seen |= obj.cells()
        if self.background not in BACKGROUNDS:
            raise ValueError(f"`background` must be one of {', '.join(BACKGROUNDS)}, got {self.background!r}")
        if self.texture not in TEXTURES:
            raise ValueError(f"`texture` must be one of {', '.join(TEXTURES)}, got {self.texture!r}")

    def pairs(self) -> set[tuple[str, str]]:
        """Return the clip's (colour, motion) pairs."""
        return {(obj.colour, obj.motion) for obj in self.objects}


def path(obj: MovingObject, tau: float) -> tuple[float, float, float]:
    """Return where an object is at clip time `tau`: its centre and radius in pixels.

    Args:
        obj (`MovingObject`): The object.
        tau (`float`): Clip time in [0, 1] (frame f of F is at f / (F - 1)).

    Returns:
        `(cx, cy, r)`: centre from the left and top edges, radius; without jitter.

    """
    near, far = _centre(0), _centre(2)
    direction = obj.direction
    if direction == "grow":
        row, col = divmod(obj.lane, 3)
        return _centre(col), _centre(row), _GROW[0] + (_GROW[1] - _GROW[0]) * tau
    r = _RADIUS[obj.size or "small"]
    lane = _centre(obj.lane)
    travel = {
        "right": near + (far - near) * tau,
        "left": far - (far - near) * tau,
        "up": far - (far - near) * tau,
        "down": near + (far - near) * tau,
        "bounce": far - (far - near) * (2.0 * tau - 1.0) ** 2,
    }[direction]
    return (travel, lane, r) if direction in ("right", "left") else (lane, travel, r)


def caption(clip: ClipSpec) -> str:
    """Return the clip's caption in the grammar (see the module docstring)."""
    parts = []
    for obj in clip.objects:
        if obj.motion == "growing":
            article = "an" if obj.colour[0] in "aeiou" else "a"
            parts.append(f"{article} {obj.colour} {obj.shape} growing {POSITIONS[obj.lane]}")
        else:
            lanes = ROWS if obj.direction in ("right", "left") else COLUMNS
            parts.append(f"a {obj.size} {obj.colour} {obj.shape} {obj.motion} {lanes[obj.lane]}")
    texture = "striped " if clip.texture == "striped" else ""
    return f"{' and '.join(parts)}, on a {texture}{clip.background} background"


def _object(phrase: str, text: str) -> MovingObject:
    """Read one object phrase of `text` (see `parse_caption`)."""
    words = phrase.split()
    if len(words) >= 4 and words[0] in ("a", "an") and words[3] == "growing":
        position = " ".join(words[4:])
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r} in {text!r}; known: {', '.join(POSITIONS)}")
        return MovingObject(words[2], words[1], None, "growing", POSITIONS.index(position))
    if len(words) < 6 or words[0] != "a":
        raise ValueError(f"cannot read the object {phrase.strip()!r} of {text!r}")
    rest = " ".join(words[4:])
    motion = next((m for m in MOTIONS if rest.startswith(m + " ")), None)
    if motion is None:
        raise ValueError(f"unknown motion in {phrase.strip()!r} of {text!r}; known: {', '.join(MOTIONS)}")
    lane = rest[len(motion) + 1 :]
    lanes = ROWS if motion.startswith("moving") else COLUMNS
    if lane not in lanes:
        raise ValueError(f"unknown lane {lane!r} for {motion!r} in {text!r}; known: {', '.join(lanes)}")
    return MovingObject(words[3], words[2], words[1], motion, lanes.index(lane))


def parse_caption(text: str) -> ClipSpec:
    """Invert `caption`: read a prompt of the grammar back into its clip.

    Args:
        text (`str`): A caption as `caption` writes it.

    Returns:
        The `ClipSpec` the caption describes.

    Raises:
        ValueError: `text` is not a sentence of the grammar; the message names the part that is not.

    """
    head, sep, tail = text.strip().rpartition(",")
    words = tail.split()
    if not sep or len(words) not in (4, 5) or words[:2] != ["on", "a"] or words[-1] != "background":
        raise ValueError(f"a motion caption ends with ', on a [striped] <colour> background', got {text!r}")
    if len(words) == 5 and words[2] != "striped":
        raise ValueError(f"unknown background texture {words[2]!r} in {text!r}; known: striped")
    objects = tuple(_object(phrase, text) for phrase in head.split(" and "))
    return ClipSpec(objects, words[-2], "striped" if len(words) == 5 else "plain")


def _random_object(
    rng: random.Random, colours: list[str], exclude: frozenset[tuple[str, str]]
) -> MovingObject:
    """Draw one object uniformly over the grammar with a colour from `colours`, avoiding `exclude`."""
    while True:
        motion, colour = rng.choice(MOTIONS), rng.choice(colours)
        if (colour, motion) not in exclude:
            break
    shape = rng.choice(SHAPES)
    if motion == "growing":
        return MovingObject(shape, colour, None, motion, rng.randrange(9))
    return MovingObject(shape, colour, rng.choice(SIZES), motion, rng.randrange(3))


def random_clip(rng: random.Random, exclude: frozenset[tuple[str, str]] = HELD_OUT_PAIRS) -> ClipSpec:
    """Draw a clip uniformly over the grammar, without the excluded (colour, motion) pairs.

    Args:
        rng (`random.Random`): The source of randomness (seed it for a fixed clip).
        exclude (`frozenset[tuple[str, str]]`, defaults to `HELD_OUT_PAIRS`): Pairs no object may have.

    Returns:
        A `ClipSpec` of one or two objects (equally likely counts); a second object whose path
        would cross the first's is drawn again.

    """
    count = rng.randint(1, MAX_OBJECTS)
    objects: list[MovingObject] = []
    taken: set[int] = set()
    while len(objects) < count:
        colours = [c for c in COLOURS if c not in {obj.colour for obj in objects}]
        obj = _random_object(rng, colours, exclude)
        if not taken & obj.cells():
            objects.append(obj)
            taken |= obj.cells()
    return ClipSpec(tuple(objects), rng.choice(tuple(BACKGROUNDS)), rng.choice(TEXTURES))
