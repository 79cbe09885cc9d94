"""The shipped reference models as objects: how each loads, what it is called with, and how it is judged.

A `ReferenceModel` carries what the harness and the tuner need to run a shipped model the way it
is meant to be run: its pipeline class, the call arguments it needs beside the step count, the
conditions it takes (class labels, or the prompts of a named set), and its `Judge`, which scores
how well each image shows what was asked (adherence), gives FID features and the reference images
of the requested conditions. Adding a reference model is one entry of `REFERENCE_MODELS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

__all__ = [
    "REFERENCE_MODELS",
    "WEIGHTS_DIR",
    "DigitJudge",
    "Judge",
    "MotionJudgeAdapter",
    "ReferenceModel",
    "SceneJudgeAdapter",
    "VideoJudge",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Folder holding one `save_pretrained` directory per shipped model and judge."""


class Judge(Protocol):
    """Scores generated images against what their conditions asked for.

    Attributes:
        note (`str`): What adherence means for this model (shown beside the column).

    """

    note: str

    def adherence(self, images: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return per-sample adherence in [0, 1] of images `(batch, H, W, C)` in [0, 1]."""
        ...

    def feature_extractor(self) -> nn.Module:
        """Return torchmetrics' custom FID feature extractor (uint8 or [0, 1] float images in)."""
        ...

    def real_images(self, conditions: Sequence[Any]) -> tuple[np.ndarray, str]:
        """Return FID's reference images `(N, H, W, C)` in [0, 1] for the requested conditions, and a note."""
        ...


@runtime_checkable
class VideoJudge(Judge, Protocol):
    """A judge of videos `(batch, frames, H, W, C)` in [0, 1]: frame by frame, and the motion.

    Its `adherence` takes videos too (the mean over frames of `frame_adherence`).
    """

    def frame_adherence(self, videos: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return `(batch, frames)` adherence in [0, 1] of each frame to its clip's condition."""
        ...

    def motion_accuracy(self, videos: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return `(batch,)` the fraction of each clip's objects seen moving as its condition says."""
        ...


class DigitJudge:
    """The digit classifier as a judge: adherence is whether the image shows the requested digit."""

    note = "fraction of samples the reference digit classifier reads as the requested digit"

    def __init__(self) -> None:
        from forecache.reference.classifier import DigitClassifier

        self.classifier = DigitClassifier.from_pretrained(WEIGHTS_DIR / "classifier").eval()

    def feature_extractor(self) -> nn.Module:
        """Return the classifier's `DigitFeatureExtractor`."""
        from forecache.reference.classifier import DigitFeatureExtractor

        return DigitFeatureExtractor(self.classifier)

    def adherence(self, images: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return 1.0 where the classifier reads the requested digit, else 0.0."""
        pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            predicted = self.classifier.head(self.feature_extractor()(pixels)).argmax(dim=1)
        wanted = torch.tensor([int(c) for c in conditions[: len(images)]])
        return (predicted == wanted).double().numpy()

    def real_images(self, conditions: Sequence[Any]) -> tuple[np.ndarray, str]:
        """Return the test digits of the requested classes."""
        from forecache.reference.data import load_digits_16

        digits, labels = load_digits_16("test")
        wanted = sorted({int(c) for c in conditions})
        digits = digits[torch.isin(labels, torch.tensor(wanted))]
        return ((digits + 1.0) / 2.0).permute(0, 2, 3, 1).numpy(), (
            f"the {len(digits)} test digits of the requested classes {wanted}"
        )


class SceneJudgeAdapter:
    """The scenes judge: adherence is the fraction of a prompt's attributes found in the image."""

    note = (
        "fraction of each prompt's attributes the scenes judge finds (per object: on its cell, shape, "
        "colour, size; the background's colour and texture), GenEval-like"
    )

    def __init__(self) -> None:
        from forecache.reference.scenes.judge import SceneJudge

        self.judge = SceneJudge.from_pretrained(WEIGHTS_DIR / "scenes-judge").eval()

    def feature_extractor(self) -> nn.Module:
        """Return the judge's `SceneFeatureExtractor`."""
        from forecache.reference.scenes.judge import SceneFeatureExtractor

        return SceneFeatureExtractor(self.judge)

    def adherence(self, images: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return each prompt's fraction of attributes found (`scenes.judge.adherence`)."""
        from forecache.reference.scenes.grammar import parse_caption
        from forecache.reference.scenes.judge import adherence

        reading = self.judge.read_output(images)
        scenes = [parse_caption(str(c)) for c in conditions[: len(images)]]
        return adherence(reading, scenes).numpy()

    def real_images(self, conditions: Sequence[Any]) -> tuple[np.ndarray, str]:
        """Return the generator's own drawings of the requested prompts (seeded jitter, one per prompt)."""
        import random

        from forecache.reference.scenes.grammar import parse_caption
        from forecache.reference.scenes.render import render_batch

        scenes = [parse_caption(str(c)) for c in conditions]
        images = render_batch(scenes, random.Random(0))
        return ((images + 1.0) / 2.0).permute(0, 2, 3, 1).numpy(), (
            f"the scene generator's drawings of the {len(scenes)} requested prompts"
        )


class MotionJudgeAdapter:
    """The motion judge: per-frame adherence to each prompt's objects on their paths, and motion accuracy.

    Args:
        folder (`str` or `Path`, *optional*): A judge saved by the motion training (default: the shipped
            one, ``weights/motion-judge``).

    """

    note = (
        "per frame, the fraction of each prompt's attributes the motion judge finds (per object: "
        "present, shape, size and place on its path at that frame; the background's colour and "
        "texture), mean over frames and clips"
    )

    def __init__(self, folder: str | Path | None = None) -> None:
        from forecache.reference.motion.judge import MotionJudge

        self.judge = MotionJudge.from_pretrained(folder or WEIGHTS_DIR / "motion-judge").eval()

    def feature_extractor(self) -> nn.Module:
        """Return the judge's features of single frames (`MotionJudge.features`)."""
        from forecache.reference.motion.judge import FEATURES
        from forecache.reference.readers import JudgeFeatureExtractor

        return JudgeFeatureExtractor(self.judge, FEATURES)

    def _read(self, videos: np.ndarray, conditions: Sequence[Any]) -> tuple[Any, list[Any], int]:
        from forecache.reference.motion.grammar import parse_caption

        if videos.ndim != 5:
            raise ValueError(f"`videos` must be (batch, frames, H, W, C), got shape {videos.shape}")
        batch, frames = videos.shape[:2]
        pixels = torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32)).reshape(
            batch * frames, *videos.shape[2:]
        )
        reading = self.judge.read(pixels.permute(0, 3, 1, 2) * 2.0 - 1.0)
        return reading, [parse_caption(str(c)) for c in conditions[:batch]], frames

    def frame_adherence(self, videos: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return `(batch, frames)` per-frame adherence (`motion.judge.frame_adherence`)."""
        from forecache.reference.motion.judge import frame_adherence

        return frame_adherence(*self._read(videos, conditions))

    def motion_accuracy(self, videos: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return `(batch,)` the fraction of each clip's objects read moving as asked (`motion.judge`)."""
        from forecache.reference.motion.judge import motion_accuracy

        return motion_accuracy(*self._read(videos, conditions))

    def adherence(self, images: np.ndarray, conditions: Sequence[Any]) -> np.ndarray:
        """Return `(batch,)` each clip's per-frame adherence averaged over its frames (videos only)."""
        return self.frame_adherence(images, conditions).mean(axis=1)

    def real_images(self, conditions: Sequence[Any]) -> tuple[np.ndarray, str]:
        """Return the frames of the generator's own clips of the requested prompts (seeded jitter)."""
        import random

        from forecache.reference.motion.grammar import parse_caption
        from forecache.reference.motion.render import render_clips

        clips = render_clips([parse_caption(str(c)) for c in conditions], random.Random(0))
        frames = clips.permute(0, 2, 3, 4, 1).reshape(-1, *clips.shape[3:], 3)
        return ((frames + 1.0) / 2.0).numpy(), (
            f"the frames of the clip generator's drawings of the {len(conditions)} requested prompts"
        )


_SCENES_DEFAULT_SET = "heldout"


def _digit_conditions(prompts: str | None, count: int) -> tuple[list[Any], str]:
    if prompts is not None:
        raise ValueError(
            f"`prompts` must be None for the digits models (they take class labels), got {prompts!r}"
        )
    return [i % 10 for i in range(count)], "class labels i % 10"


def _prompt_conditions(family: str) -> Callable[[str | None, int], tuple[list[Any], str]]:
    """Return the conditions of a prompted family ("scenes", "motion"): its prompt sets, held-out first."""

    def conditions(prompts: str | None, count: int) -> tuple[list[Any], str]:
        import importlib

        module = importlib.import_module(f"forecache.reference.{family}.prompts")
        name = prompts or _SCENES_DEFAULT_SET
        if name not in module.PROMPT_SETS:
            known = ", ".join(module.PROMPT_SETS)
            raise ValueError(f"`prompts` must be one of {known} for the {family} model, got {name!r}")
        texts = module.prompt_set(name)
        return [texts[i % len(texts)] for i in range(count)], f"the {family} model's {name} prompts"

    return conditions


_scene_conditions = _prompt_conditions("scenes")


def _load_motion_pipeline(path: Path) -> Any:
    from diffusers import WanPipeline

    return WanPipeline.from_pretrained(path)


def _motion_defaults() -> dict[str, Any]:
    from forecache.reference.motion.model import CALL_DEFAULTS

    return dict(CALL_DEFAULTS)


def _load_scenes_pipeline(path: Path) -> Any:
    from diffusers import FluxPipeline

    return FluxPipeline.from_pretrained(path)


def _load_digits_pipeline(name: str) -> Callable[[Path], Any]:
    def load(path: Path) -> Any:
        from forecache.reference.dit_digits import DiTDigitsPipeline
        from forecache.reference.flux_digits import FluxDigitsPipeline

        cls = DiTDigitsPipeline if name.startswith("dit") else FluxDigitsPipeline
        return cls.from_pretrained(path)

    return load


@dataclass(frozen=True)
class ReferenceModel:
    """One shipped reference model.

    Args:
        name (`str`): Its name (the folder under `WEIGHTS_DIR`).
        summary (`str`): One line on what it is.
        load (`Callable[[Path], DiffusionPipeline]`): Loads the pipeline from its folder.
        conditions (`Callable[[str | None, int], tuple[list, str]]`): Given a prompt-set name (or
            None for the default) and a sample count, the per-sample conditions and a description.
            The scenes model's default is its held-out set.
        judge (`Callable[[], Judge]`): Loads its judge.
        call_defaults (`Mapping[str, Any]`): Call arguments it needs beside the steps and conditions.
        prompt_sets (`tuple[str, ...]`): Names `conditions` accepts (empty: class labels only).
        pipeline_class (`str`, *optional*): The name of a pipeline class only this model (or its
            family, which shares judge and conditions) uses, so an instance of it is recognised
            whatever its weights; None for a model in a generic diffusers pipeline.
        calibration_set (`str`, *optional*): The prompt set calibrations draw from (`forecache.tune`,
            the bench's ``tuned`` method), disjoint from the sets it is judged on; None: the
            conditions of the run itself (class labels).

    """

    name: str
    summary: str
    load: Callable[[Path], Any]
    conditions: Callable[[str | None, int], tuple[list[Any], str]]
    judge: Callable[[], Judge]
    call_defaults: Mapping[str, Any] = field(default_factory=dict)
    prompt_sets: tuple[str, ...] = ()
    pipeline_class: str | None = None
    calibration_set: str | None = None

    def calibration_conditions(self, count: int) -> list[Any]:
        """Return the conditions of `count` calibration samples (never the benchmark's prompts)."""
        return self.conditions(self.calibration_set, count)[0]

    @property
    def path(self) -> Path:
        """The model's `save_pretrained` folder."""
        return WEIGHTS_DIR / self.name


def _scenes_defaults() -> dict[str, Any]:
    from forecache.reference.scenes.model import CALL_DEFAULTS

    return dict(CALL_DEFAULTS)


REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "flux-digits": ReferenceModel(
        "flux-digits",
        "FluxTransformer2DModel, 2 double + 4 single blocks, class-conditional 16x16 digits, true CFG",
        _load_digits_pipeline("flux-digits"),
        _digit_conditions,
        DigitJudge,
        pipeline_class="FluxDigitsPipeline",
    ),
    "dit-digits": ReferenceModel(
        "dit-digits",
        "DiTTransformer2DModel, 6 blocks, class-conditional 16x16 digits, DDIM, batched CFG",
        _load_digits_pipeline("dit-digits"),
        _digit_conditions,
        DigitJudge,
        pipeline_class="DiTDigitsPipeline",
    ),
    "flux-digits-deep": ReferenceModel(
        "flux-digits-deep",
        "FluxTransformer2DModel, 4 double + 8 single blocks, class-conditional 16x16 digits, true CFG",
        _load_digits_pipeline("flux-digits-deep"),
        _digit_conditions,
        DigitJudge,
        pipeline_class="FluxDigitsPipeline",
    ),
    "scenes": ReferenceModel(
        "scenes",
        "diffusers' FluxPipeline: 4 double + 8 single blocks, CLIP + T5, 32x32 RGB scenes from text, "
        "guidance-distilled",
        _load_scenes_pipeline,
        _scene_conditions,
        SceneJudgeAdapter,
        call_defaults=_scenes_defaults(),
        prompt_sets=("calibration", "benchmark", "heldout"),
        calibration_set="calibration",
    ),
}
"""Every shipped reference model by name."""
