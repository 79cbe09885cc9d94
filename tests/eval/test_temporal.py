"""Temporal measures of video rows: flicker on clips with known changes, the worst clip, the report."""

import numpy as np
import pytest

from forecache.eval.report import detail_rows
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.temporal import flicker, notes, video_scores, worst_clip


def _clips(batch=3, frames=5, side=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(batch, frames, side, side, 3))


def test_flicker_is_the_relative_difference_of_frame_to_frame_changes():
    full = _clips()
    assert flicker(full, full).tolist() == [0.0, 0.0, 0.0]
    # a constant offset in every frame changes no frame-to-frame difference: no flicker
    assert np.allclose(flicker(full, full + 0.05), 0.0)
    # an offset in every other frame adds |0.05| to each of the four changes of every pixel
    odd = full.copy()
    odd[:, 1::2] += 0.05
    change = np.abs(np.diff(full, axis=1)).reshape(3, -1).sum(axis=1)
    expected = 0.05 * 4 * 8 * 8 * 3 / change
    np.testing.assert_allclose(flicker(full, odd), expected, rtol=1e-12)
    # a clip that stands still where full compute moves: all of full compute's change is missed
    still = np.repeat(full[:, :1], 5, axis=1)
    np.testing.assert_allclose(flicker(full, still), 1.0)
    # full compute stands still: no flicker when the method does too, infinite when it does not
    frozen = np.repeat(full[:, :1], 5, axis=1)
    assert flicker(frozen, frozen).tolist() == [0.0] * 3 and np.isinf(flicker(frozen, full)).all()
    with pytest.raises(ValueError, match=r"\(batch, frames >= 2, H, W, C\)"):
        flicker(full[:, :1], full[:, :1])


def test_video_scores_without_a_video_judge_give_flicker_only():
    full = _clips()
    odd = full.copy()
    odd[1, 2] += 0.1
    scores = video_scores(full, odd, judge=object(), conditions=["x"] * 3)
    assert set(scores) == {"flicker", "flicker_per_sample"}
    assert scores["flicker_per_sample"][0] == 0.0 and scores["flicker_per_sample"][1] > 0.0
    assert scores["flicker"] == pytest.approx(np.mean(scores["flicker_per_sample"]))
    assert notes()["motion_accuracy"].startswith("unavailable")


class _Judge:
    """A video judge that reads frame f of clip i as (i + f) / 10 and every clip's motion as half right."""

    note = "test"

    def frame_adherence(self, videos, conditions):
        return np.add.outer(np.arange(len(videos)), np.arange(videos.shape[1])) / 10.0

    def motion_accuracy(self, videos, conditions):
        return np.full(len(videos), 0.5)

    def adherence(self, videos, conditions):
        return self.frame_adherence(videos, conditions).mean(axis=1)

    def feature_extractor(self):
        raise NotImplementedError

    def real_images(self, conditions):
        raise NotImplementedError


def test_a_judge_is_a_video_judge_by_the_protocol():
    from forecache.reference.models import DigitJudge, VideoJudge

    assert isinstance(_Judge(), VideoJudge)
    assert not isinstance(object(), VideoJudge) and "frame_adherence" not in dir(DigitJudge)


def test_video_scores_with_a_video_judge():
    full = _clips(batch=2, frames=3)
    scores = video_scores(full, full, _Judge(), ["a", "b"])
    assert scores["adherence_per_frame"] == pytest.approx([0.05, 0.15, 0.25])
    assert scores["adherence"] == pytest.approx(0.15) and scores["motion_accuracy"] == 0.5


def test_worst_clip_is_the_lowest_psnr_of_any_row():
    full = _clips()
    a, b = full.copy(), full.copy()
    a[0] += 0.01
    b[2] += 0.02
    b[1] += 0.005
    assert worst_clip([("a", a), ("b", b)], full) == 2
    assert worst_clip([], full) == 0


def test_the_report_shows_motion_and_flicker_for_video_rows():
    base = MethodResult("baseline", "baseline", "baseline", psnr_db=float("inf"))
    base.psnr_db_per_frame, base.flicker, base.flicker_per_sample = [float("inf")] * 3, 0.0, [0.0, 0.0]
    base.adherence, base.motion_accuracy = 0.93, 0.95
    row = MethodResult("tuned", "tuned", "forecache", psnr_db=41.0, compute_ratio=8.1)
    row.psnr_db_per_sample, row.psnr_db_per_frame = [41.5, 40.2], [42.0, 41.0, 40.0]
    row.flicker, row.flicker_per_sample, row.adherence, row.motion_accuracy = 0.06, [0.04, 0.08], 0.92, 0.95
    result = BenchResult("bench", {}, {}, {}, {}, [base, row], "", "")
    header, lines = detail_rows(result)
    cells = dict(zip(header, lines[1], strict=True))
    assert cells["motion"] == "0.950" and cells["flicker"] == "0.0600" and cells["worst flicker"] == "0.0800"
    assert cells["worst frame dB"] == "40.00" and cells["adherence"] == "0.920"
    assert dict(zip(header, lines[0], strict=True))["flicker"] == "0.0000"
