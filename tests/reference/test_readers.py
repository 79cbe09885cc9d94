"""The judges' shared blocks: the scenes judge's weights keep their names, the motion judge reuses them."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from forecache.reference.motion.judge import FEATURES as MOTION_FEATURES
from forecache.reference.motion.judge import MotionJudge
from forecache.reference.readers import JudgeFeatureExtractor, conv_norm, object_reader
from forecache.reference.scenes.grammar import COLOURS
from forecache.reference.scenes.judge import FEATURES as SCENE_FEATURES
from forecache.reference.scenes.judge import SceneFeatureExtractor, SceneJudge

pytestmark = pytest.mark.eval


def _layout(module: nn.Module) -> str:
    return "\n".join(f"{key} {tuple(value.shape)}" for key, value in module.state_dict().items())


def test_the_scenes_judge_keeps_its_state_dict_keys_and_shapes():
    # main's SceneJudge (group-normed cell reader and background reader, FEATURES 320) as the
    # scenes training writes it: its checkpoints and saved judges load into this one
    layout = _layout(SceneJudge())
    assert layout.count("\n") + 1 == 44
    assert layout.startswith("cell.0.weight (32, 3, 3, 3)\ncell.0.bias (32,)\ncell.1.weight (32,)\n")
    assert "cell.13.weight (128, 4096)" in layout and "scene.11.weight (32, 32)" in layout
    assert hashlib.sha256(layout.encode()).hexdigest()[:16] == "4fc57180dfc19623"
    assert SCENE_FEATURES == 320


def test_the_motion_judge_reads_each_colour_with_the_scenes_cell_reader():
    scenes, motion = SceneJudge(), MotionJudge()
    # the same blocks in the same order; the motion reader takes 7 channels over a whole 32x32 frame
    assert [type(m) for m in motion.object] == [type(m) for m in scenes.cell]
    assert (
        [type(m) for m in motion.scene]
        == [type(m) for m in motion.texture]
        == [type(m) for m in scenes.scene]
    )
    assert motion.object[0].in_channels == 7 and motion.object[0].stride == (2, 2)
    assert sum(isinstance(m, nn.GroupNorm) for m in motion.modules()) == 4 + 3 + 3
    # the colour table is derived, not stored: a saved judge holds weights only
    assert "colours" not in motion.state_dict() and motion.colours.shape == (len(COLOURS), 3)
    frames = torch.rand(5, 3, 32, 32) * 2 - 1
    out = motion(frames)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "present": (5, 6),
        "shape": (5, 6, 4),
        "place": (5, 6, 3),
        "background": (5, 3),
        "texture": (5, 2),
    }
    features = motion.features(frames)
    assert features.shape == (5, MOTION_FEATURES) == (5, 8 * 32)
    # each colour asked for reads the frame differently (the query is part of the reader's input)
    per_colour = features[:, :192].view(5, 6, 32)
    assert (per_colour[:, 0] - per_colour[:, 1]).abs().max() > 1e-3


def test_feature_extractors_take_uint8_and_unit_floats_alike():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    for extractor, width in (
        (SceneFeatureExtractor(SceneJudge()), SCENE_FEATURES),
        (JudgeFeatureExtractor(MotionJudge(), MOTION_FEATURES), MOTION_FEATURES),
    ):
        assert extractor.num_features == width and not extractor.judge.training
        from_uint8, from_float = extractor(images), extractor(images.float() / 255.0)
        assert from_uint8.shape == (3, width)
        torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=1e-6)


def test_reader_blocks_halve_the_side_where_they_say():
    block = nn.Sequential(*conv_norm(3, 16, stride=2))
    assert block(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 16, 16)
    assert object_reader(3, 8)(torch.zeros(2, 3, 16, 16)).shape == (2, 32)
    assert object_reader(5, 8, stride=2)(torch.zeros(2, 5, 32, 32)).shape == (2, 32)
