"""The motion judge: reads every frame's objects by colour (shape, centre, radius); adherence, motion.

`MotionJudge` reads every frame once per colour with one shared, group-normed reader (the scenes
judge's building blocks, `forecache.reference.readers`): whether an object of that colour is in
the frame, its shape, its centre and radius in pixels; and the background's colour and texture. A
clip's objects have distinct colours, so a colour names an object in every frame. Its features
(`FEATURES` wide, `forecache.reference.readers.JudgeFeatureExtractor`) give FID on frames.

- `frame_adherence`: per frame, the fraction of the prompt's attributes found, as in the scenes
  judge: per object its presence, its shape, its size (radius within `SIZE_TOLERANCE` pixels of
  the path's at that frame) and its place (centre within `PLACE_TOLERANCE` pixels of the path's);
  the background's colour and texture.
- `motion_accuracy`: per object, the judge's track of its centre and radius over the frames is
  matched against the displacement pattern of every motion (`DIRECTIONS`, plus standing still),
  position-free (each track centred on its mean); the motion is read right when the nearest
  pattern is the caption's. Reading motion from the per-frame readings rather than from a motion
  head keeps one judge, checked frame by frame, whose every step can be inspected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from forecache.reference.motion.grammar import DIRECTIONS, MOTIONS, ClipSpec, MovingObject, path
from forecache.reference.readers import READ_FEATURES, background_reader, object_reader
from forecache.reference.scenes.grammar import BACKGROUNDS, COLOURS, SHAPES, TEXTURES

__all__ = [
    "FEATURES",
    "PLACE_TOLERANCE",
    "SIZE_TOLERANCE",
    "FrameReading",
    "MotionJudge",
    "frame_adherence",
    "frame_targets",
    "motion_accuracy",
    "read_motion",
]

PLACE_TOLERANCE = 3.0
"""Largest distance in pixels (per axis) between a read centre and the path's for "in its place"."""

SIZE_TOLERANCE = 1.0
"""Largest difference in pixels between a read radius and the path's for "its size"."""

_COLOURS = tuple(COLOURS)
FEATURES = (len(_COLOURS) + 2) * READ_FEATURES
"""Width of the judge's feature vector (FID features): 32 per colour, 32 for the background's colour
and 32 for its texture."""

_SCALE = torch.tensor([32.0, 32.0, 8.0])  # place read-out units: centre / 32, radius / 8
_STILL = "still"
_RADIUS_WEIGHT = 4.0  # a growing object's radius changes 3.5 px, a mover travels 21 px
_QUERY = 7  # reader input channels: the frame (3), the colour asked for (3), the distance to it (1)


@dataclass(frozen=True)
class FrameReading:
    """What the judge read from a batch of frames (per colour, in `COLOURS` order).

    Args:
        present (`torch.Tensor`): `(batch, 6)` bool, an object of that colour is in the frame.
        shape (`torch.Tensor`): `(batch, 6)` index into `SHAPES`.
        place (`torch.Tensor`): `(batch, 6, 3)` centre x, y and radius in pixels.
        background (`torch.Tensor`): `(batch,)` index into `BACKGROUNDS`.
        texture (`torch.Tensor`): `(batch,)` index into `TEXTURES`.

    """

    present: torch.Tensor
    shape: torch.Tensor
    place: torch.Tensor
    background: torch.Tensor
    texture: torch.Tensor


class MotionJudge(ModelMixin, ConfigMixin):
    """Read each frame's objects by colour from 32x32 RGB frames.

    One reader (`forecache.reference.readers.object_reader`, group-normed), shared by the six
    colours, reads the whole frame with the colour asked for stacked on it (its RGB value and each
    pixel's squared distance to it) into 32 features, then whether an object of that colour is
    there, its shape, centre and radius. A moving object can be anywhere, so the reader sees the
    whole frame rather than a cell's window; sharing it over the colours gives it one example per
    colour per frame, as the scenes judge's cell reader gets one per cell.

    Two `background_reader`s read the background: its colour from the frame, its texture from the
    frame less its mean colour. The group norm after a reader's first convolution scales what it
    sees by its spread, and on a black or white ground (a level of -0.84 or 0.84) the stripes'
    swing (0.05) is lost beside the ground's level: one reader of the frame read the stripes of
    grey grounds only (measured after 1200 steps: 0 % of the black and white grounds' textures
    right, 100 % of the grey ones'); of the frame less its mean, every ground's (100 % after 400).

    Args:
        width (`int`, defaults to 32): Channels of the readers' first convolution (doubled once).

    """

    @register_to_config
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.object = object_reader(_QUERY, width, stride=2)  # a whole 32x32 frame
        self.scene = background_reader(width)
        self.texture = background_reader(width)
        rgb = torch.tensor([COLOURS[c] for c in _COLOURS], dtype=torch.float32) / 127.5 - 1.0
        self.register_buffer("colours", rgb, persistent=False)  # (6, 3) in [-1, 1]
        self.heads = nn.ModuleDict(
            {
                "present": nn.Linear(READ_FEATURES, 1),
                "shape": nn.Linear(READ_FEATURES, len(SHAPES)),
                "place": nn.Linear(READ_FEATURES, 3),
                "background": nn.Linear(READ_FEATURES, len(BACKGROUNDS)),
                "texture": nn.Linear(READ_FEATURES, len(TEXTURES)),
            }
        )

    def _parts(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return per-colour features `(batch, 6, 32)`, the background's `(batch, 32)` and its texture's."""
        batch, _, height, width = frames.shape
        colours = self.colours.to(frames.dtype)
        asked = colours.view(1, -1, 3, 1, 1).expand(batch, -1, 3, height, width)
        pixels = frames.unsqueeze(1).expand_as(asked)
        distance = (pixels - asked).pow(2).sum(2, keepdim=True)
        query = torch.cat([pixels, asked, distance], dim=2).flatten(0, 1)
        objects = self.object(query).view(batch, len(_COLOURS), -1)
        texture = self.texture(frames - frames.mean(dim=(2, 3), keepdim=True))
        return objects, self.scene(frames), texture

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Return the `(batch, FEATURES)` features of frames `(batch, 3, 32, 32)` in [-1, 1]."""
        objects, scene, texture = self._parts(frames)
        return torch.cat([objects.flatten(1), scene, texture], dim=1)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the read-outs.

        Args:
            frames (`torch.Tensor`): `(batch, 3, 32, 32)`, float in [-1, 1].

        Returns:
            `dict` with "present" logits `(batch, 6)`, "shape" logits `(batch, 6, 4)`, "place"
            `(batch, 6, 3)` (centre / 32, radius / 8), "background" `(batch, 3)`, "texture" `(batch, 2)`.

        """
        objects, scene, texture = self._parts(frames)
        return {
            "present": self.heads["present"](objects).squeeze(-1),
            "shape": self.heads["shape"](objects),
            "place": self.heads["place"](objects),
            "background": self.heads["background"](scene),
            "texture": self.heads["texture"](texture),
        }

    @torch.no_grad()
    def read(self, frames: torch.Tensor, batch_size: int = 256) -> FrameReading:
        """Read frames `(batch, 3, 32, 32)` in [-1, 1] (presence above one half, argmax classes)."""
        parts: dict[str, list[torch.Tensor]] = {}
        for chunk in frames.split(batch_size):
            out = self(chunk.to(self.device, torch.float32))
            values = {
                "present": out["present"] > 0,
                "shape": out["shape"].argmax(-1),
                "place": out["place"] * _SCALE.to(out["place"].device),
                "background": out["background"].argmax(-1),
                "texture": out["texture"].argmax(-1),
            }
            for name, value in values.items():
                parts.setdefault(name, []).append(value.cpu())
        return FrameReading(**{name: torch.cat(values) for name, values in parts.items()})


def frame_targets(
    clips: list[ClipSpec], tracks: list[np.ndarray], frame: list[int]
) -> dict[str, torch.Tensor]:
    """Return the judge's training targets for one frame of each clip.

    Args:
        clips (`list[ClipSpec]`): The clips drawn.
        tracks (`list[np.ndarray]`): Their drawn tracks, `(objects, frames, 3)` each
            (`forecache.reference.motion.render.render_clip`).
        frame (`list[int]`): The frame of each clip.

    Returns:
        `dict`: "present" float `(batch, 6)`, "shape" int64 `(batch, 6)` (-100 where absent), "place"
        float `(batch, 6, 3)` (centre / 32, radius / 8), "background" and "texture" int64 `(batch,)`.

    """
    batch, colours = len(clips), len(_COLOURS)
    present = torch.zeros(batch, colours)
    shape = torch.full((batch, colours), -100, dtype=torch.long)
    place = torch.zeros(batch, colours, 3)
    for i, (clip, track) in enumerate(zip(clips, tracks, strict=True)):
        for obj, where in zip(clip.objects, track, strict=True):
            c = _COLOURS.index(obj.colour)
            present[i, c] = 1.0
            shape[i, c] = SHAPES.index(obj.shape)
            place[i, c] = torch.tensor(where[frame[i]], dtype=torch.float32) / _SCALE
    background = torch.tensor([tuple(BACKGROUNDS).index(c.background) for c in clips])
    texture = torch.tensor([TEXTURES.index(c.texture) for c in clips])
    return {"present": present, "shape": shape, "place": place, "background": background, "texture": texture}


def _expected(obj: MovingObject, frames: int) -> np.ndarray:
    """Return the path's centre and radius at each of `frames` frames, `(frames, 3)`."""
    return np.array([path(obj, f / (frames - 1)) for f in range(frames)])


def frame_adherence(reading: FrameReading, clips: list[ClipSpec], frames: int) -> np.ndarray:
    """Fraction of each prompt's attributes the judge found, frame by frame.

    Args:
        reading (`FrameReading`): The judge's reading of all frames, clip after clip
            (`batch * frames` rows).
        clips (`list[ClipSpec]`): What each clip's prompt asked for.
        frames (`int`): Frames per clip.

    Returns:
        `np.ndarray` of shape `(batch, frames)`, float64 in [0, 1]: per object presence, shape, size
        and place (the last three only where present), and the background's colour and texture,
        over `2 + 4 * objects`.

    Raises:
        ValueError: The reading does not hold `len(clips) * frames` frames.

    """
    if reading.present.shape[0] != len(clips) * frames:
        raise ValueError(
            f"`clips` must have one clip per {frames} frames read ({reading.present.shape[0]} frames), "
            f"got {len(clips)}"
        )
    scores = np.zeros((len(clips), frames))
    for i, clip in enumerate(clips):
        rows = slice(i * frames, (i + 1) * frames)
        found = (reading.background[rows] == tuple(BACKGROUNDS).index(clip.background)).double()
        found += (reading.texture[rows] == TEXTURES.index(clip.texture)).double()
        for obj in clip.objects:
            c = _COLOURS.index(obj.colour)
            want = torch.from_numpy(_expected(obj, frames))
            present = reading.present[rows, c]
            place = reading.place[rows, c].double()
            near = ((place[:, :2] - want[:, :2]).abs() <= PLACE_TOLERANCE).all(-1)
            sized = (place[:, 2] - want[:, 2]).abs() <= SIZE_TOLERANCE
            shaped = reading.shape[rows, c] == SHAPES.index(obj.shape)
            found += present.double() * (1.0 + shaped.double() + sized.double() + near.double())
        scores[i] = (found / (2 + 4 * len(clip.objects))).numpy()
    return scores


def _pattern(direction: str, frames: int) -> np.ndarray:
    """Return the centred, weighted `(frames, 3)` displacement pattern of a motion (or of standing still)."""
    if direction == _STILL:
        return np.zeros((frames, 3))
    motion = MOTIONS[DIRECTIONS.index(direction)]
    obj = MovingObject("circle", "red", None if motion == "growing" else "small", motion, 1)
    track = _expected(obj, frames) * np.array([1.0, 1.0, _RADIUS_WEIGHT])
    return track - track.mean(axis=0)


def read_motion(track: np.ndarray, seen: np.ndarray) -> str:
    """Return the motion a track shows: the nearest pattern of `DIRECTIONS` or ``"still"``.

    Args:
        track (`np.ndarray`): `(frames, 3)` read centre x, y and radius per frame.
        seen (`np.ndarray`): `(frames,)` bool, frames where the object was found; at least two.

    Returns:
        One of `DIRECTIONS` or ``"still"`` (``"unseen"`` when found in fewer than two frames).

    """
    if seen.sum() < 2:
        return "unseen"
    frames = len(track)
    points = track[seen] * np.array([1.0, 1.0, _RADIUS_WEIGHT])
    points = points - points.mean(axis=0)
    costs = {}
    for direction in (*DIRECTIONS, _STILL):
        pattern = _pattern(direction, frames)[seen]
        pattern = pattern - pattern.mean(axis=0)
        costs[direction] = float(((points - pattern) ** 2).sum())
    return min(costs, key=lambda d: costs[d])


def motion_accuracy(reading: FrameReading, clips: list[ClipSpec], frames: int) -> np.ndarray:
    """Fraction of each clip's objects whose motion the judge reads as the caption says (`read_motion`).

    Args:
        reading (`FrameReading`): The judge's reading of all frames, clip after clip.
        clips (`list[ClipSpec]`): What each clip's prompt asked for.
        frames (`int`): Frames per clip.

    Returns:
        `np.ndarray` of shape `(batch,)`, float64 in [0, 1].

    """
    out = np.zeros(len(clips))
    for i, clip in enumerate(clips):
        rows = slice(i * frames, (i + 1) * frames)
        right = 0
        for obj in clip.objects:
            c = _COLOURS.index(obj.colour)
            seen = reading.present[rows, c].numpy()
            right += read_motion(reading.place[rows, c].double().numpy(), seen) == obj.direction
        out[i] = right / len(clip.objects)
    return out
