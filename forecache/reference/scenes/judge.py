"""The scenes judge: a small CNN that reads every cell's object (shape, colour, size) and the background back.

Like GenEval reads a generated image with a detector, `SceneJudge` reads a scene image: for each of
the 3x3 cells, whether it holds an object and which shape, colour and size, and the background's
colour and texture. `adherence` is the fraction of a prompt's attributes found in the image: per
object its presence on its cell, its shape, colour and size; the background's colour and texture.
Its 320-wide penultimate features (`SceneFeatureExtractor`) give FID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from forecache.reference.readers import JudgeFeatureExtractor, background_reader, object_reader
from forecache.reference.scenes.grammar import BACKGROUNDS, COLOURS, SHAPES, SIZES, TEXTURES, SceneSpec

__all__ = ["FEATURES", "SceneFeatureExtractor", "SceneJudge", "SceneReading", "adherence", "targets"]

FEATURES = 320
"""Width of the judge's feature vector (FID features): 32 per cell and 32 for the background."""

_CELLS = 9
_SHAPE_CLASSES = 1 + len(SHAPES)  # class 0: no object
_WINDOW = 16  # pixels of the window read around each cell's centre (a cell is 32 / 3 wide)
_PAD = 4
# Top-left corner of each cell's window in the padded image (row-major cells).
_STARTS = [round((k + 0.5) * 32 / 3 - _WINDOW / 2) + _PAD for k in range(3)]


@dataclass(frozen=True)
class SceneReading:
    """What the judge read from a batch of images (class indices, `SHAPES` etc. order).

    Args:
        shape (`torch.Tensor`): `(batch, 9)`, 0 for an empty cell, else 1 + index into `SHAPES`.
        colour (`torch.Tensor`): `(batch, 9)`, index into `COLOURS` (meaningless on empty cells).
        size (`torch.Tensor`): `(batch, 9)`, index into `SIZES` (meaningless on empty cells).
        background (`torch.Tensor`): `(batch,)`, index into `BACKGROUNDS`.
        texture (`torch.Tensor`): `(batch,)`, index into `TEXTURES`.

    """

    shape: torch.Tensor
    colour: torch.Tensor
    size: torch.Tensor
    background: torch.Tensor
    texture: torch.Tensor


class SceneJudge(ModelMixin, ConfigMixin):
    """Read scenes back from 32x32 RGB images.

    One small CNN, shared by the nine cells, reads a 16x16 window around each cell's centre (an
    object jitters by a pixel and a neighbour may show at the window's edge) into 32 features and
    then its shape (or none), colour and size; a second CNN reads the background's colour and
    texture from the whole image. Sharing the cell reader gives it nine examples per image, which is
    with group norm after each convolution, what makes shapes of 6 pixels learnable in minutes on a
    CPU (without the norm, 300 steps read 65% of the shapes; with it, 99%).

    Args:
        width (`int`, defaults to 32): Channels of the readers' first convolution (doubled once).

    """

    @register_to_config
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.cell = object_reader(3, width)  # a 16x16 window
        self.scene = background_reader(width)
        self.heads = nn.ModuleDict(
            {
                "shape": nn.Linear(32, _SHAPE_CLASSES),
                "colour": nn.Linear(32, len(COLOURS)),
                "size": nn.Linear(32, len(SIZES)),
                "background": nn.Linear(32, len(BACKGROUNDS)),
                "texture": nn.Linear(32, len(TEXTURES)),
            }
        )

    def _parts(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return per-cell features `(batch, 9, 32)` and background features `(batch, 32)`."""
        padded = nn.functional.pad(images, (_PAD,) * 4, value=0.0)
        windows = [
            padded[:, :, top : top + _WINDOW, left : left + _WINDOW] for top in _STARTS for left in _STARTS
        ]
        cells = self.cell(torch.stack(windows, 1).flatten(0, 1)).view(images.shape[0], _CELLS, -1)
        return cells, self.scene(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the `(batch, FEATURES)` features of images of shape `(batch, 3, 32, 32)` in [-1, 1]."""
        cells, scene = self._parts(images)
        return torch.cat([cells.flatten(1), scene], dim=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the logits per attribute.

        Args:
            images (`torch.Tensor`): `(batch, 3, 32, 32)`, float in [-1, 1].

        Returns:
            `dict` with "shape" `(batch, 9, 5)`, "colour" `(batch, 9, 6)`, "size" `(batch, 9, 2)`,
            "background" `(batch, 3)`, "texture" `(batch, 2)`.

        """
        cells, scene = self._parts(images)
        return {
            "shape": self.heads["shape"](cells),
            "colour": self.heads["colour"](cells),
            "size": self.heads["size"](cells),
            "background": self.heads["background"](scene),
            "texture": self.heads["texture"](scene),
        }

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 256) -> SceneReading:
        """Read scenes from images (the argmax of every attribute).

        Args:
            images (`torch.Tensor`): `(batch, 3, 32, 32)` in [-1, 1].
            batch_size (`int`, defaults to 256): Images per forward pass.

        Returns:
            A `SceneReading`.

        """
        parts: dict[str, list[torch.Tensor]] = {}
        for chunk in images.split(batch_size):
            for name, logits in self(chunk.to(self.device, torch.float32)).items():
                parts.setdefault(name, []).append(logits.argmax(-1).cpu())
        return SceneReading(**{name: torch.cat(values) for name, values in parts.items()})

    def read_output(self, images: np.ndarray) -> SceneReading:
        """Read scenes from a pipeline's ``output_type="np"`` images: `(batch, 32, 32, 3)` in [0, 1]."""
        pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
        return self.read(pixels * 2.0 - 1.0)


class SceneFeatureExtractor(JudgeFeatureExtractor):
    """The judge as torchmetrics' custom FID feature extractor (`FrechetInceptionDistance(feature=...)`).

    Takes what torchmetrics passes on unchanged: uint8 in [0, 255] (``normalize=False``) or float in
    [0, 1] (``normalize=True``), shape `(batch, 3, 32, 32)`.

    Args:
        judge (`SceneJudge`): The trained judge; it is put in eval mode.

    """

    def __init__(self, judge: SceneJudge) -> None:
        super().__init__(judge, FEATURES)


def targets(scenes: list[SceneSpec]) -> dict[str, torch.Tensor]:
    """Return the judge's training targets for scenes (-100 marks what an empty cell leaves unsaid).

    Args:
        scenes (`list[SceneSpec]`): The scenes drawn.

    Returns:
        `dict` of int64 tensors: "shape", "colour", "size" `(batch, 9)`; "background", "texture" `(batch,)`.

    """
    batch = len(scenes)
    shape = torch.zeros(batch, _CELLS, dtype=torch.long)
    colour = torch.full((batch, _CELLS), -100, dtype=torch.long)
    size = torch.full((batch, _CELLS), -100, dtype=torch.long)
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            shape[i, obj.cell] = 1 + SHAPES.index(obj.shape)
            colour[i, obj.cell] = colours.index(obj.colour)
            size[i, obj.cell] = SIZES.index(obj.size)
    background = torch.tensor([backgrounds.index(s.background) for s in scenes])
    texture = torch.tensor([TEXTURES.index(s.texture) for s in scenes])
    return {"shape": shape, "colour": colour, "size": size, "background": background, "texture": texture}


def adherence(reading: SceneReading, scenes: list[SceneSpec]) -> torch.Tensor:
    """Fraction of each prompt's attributes the judge found in its image (a GenEval-like score).

    Each object contributes four attributes (an object on its cell, its shape, its colour, its size;
    the last three count only where the object is there), the background two (colour, texture).

    Args:
        reading (`SceneReading`): The judge's reading of the images.
        scenes (`list[SceneSpec]`): What each image's prompt asked for, in the same order.

    Returns:
        `torch.Tensor` of shape `(batch,)`, float64 in [0, 1].

    Raises:
        ValueError: The reading and the scenes differ in length.

    """
    if reading.shape.shape[0] != len(scenes):
        raise ValueError(
            f"`scenes` must have one scene per image ({reading.shape.shape[0]}), got {len(scenes)}"
        )
    want = targets(scenes)
    scores = []
    for i, scene in enumerate(scenes):
        found = int(reading.background[i] == want["background"][i]) + int(
            reading.texture[i] == want["texture"][i]
        )
        for obj in scene.objects:
            c = obj.cell
            present = bool(reading.shape[i, c] != 0)
            found += int(present)
            if present:
                found += int(reading.shape[i, c] == want["shape"][i, c])
                found += int(reading.colour[i, c] == want["colour"][i, c])
                found += int(reading.size[i, c] == want["size"][i, c])
        scores.append(found / (2 + 4 * len(scene.objects)))
    return torch.tensor(scores, dtype=torch.float64)
