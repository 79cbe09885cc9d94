"""Temporal quality of generated videos: flicker against full compute, the judge's frame-by-frame readings.

Videos are numpy arrays ``(batch, frames, H, W, C)`` in [0, 1]. A cache that forecasts features
errs differently from one frame to the next; in a video that shows as flicker (the change from one
frame to the next is not the change full compute makes) and as drift (objects leave their path),
which a mean PSNR over frames hides. Three measures, for every video row:

- **flicker** (`flicker`): for clip ``X`` and the full-compute clip ``Y`` of the same seed, with
  ``dX[t] = X[t] - X[t-1]`` the change from frame ``t - 1`` to frame ``t``::

      flicker(X, Y) = sum_t sum_pixels |dX[t] - dY[t]| / sum_t sum_pixels |dY[t]|

  over frames ``t = 1 .. F-1`` and all pixels and channels: how much the cached clip's
  frame-to-frame change differs from full compute's, as a fraction of full compute's change
  (0 for full compute itself; 0.10: the changes differ by a tenth of what full compute changes).
  An error that stays the same in every frame (a constant offset) is no flicker; one that differs
  from frame to frame is. A row reports the mean over clips and the worst clip.
- **per-frame adherence**: the reference model's judge reads every frame (the motion judge:
  each object's presence, shape, size and place on its path at that frame, and the background);
  a row reports the mean and the mean of each frame over the clips.
- **motion accuracy**: per clip, the fraction of its objects whose motion the judge reads from its
  per-frame readings as the prompt says (`forecache.reference.motion.judge.motion_accuracy`);
  a row reports the mean over clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from forecache.reference.models import VideoJudge

__all__ = ["flicker", "notes", "video_scores", "worst_clip"]


def flicker(reference: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Return each clip's flicker against the full-compute clip of the same seed (see the module docstring).

    Args:
        reference: Full compute's clips ``(batch, frames, H, W, C)``.
        videos: The method's clips, same shape.

    Returns:
        ``(batch,)`` float64, >= 0; 0 where both clips stand still, ``inf`` where only full
        compute's does.

    Raises:
        ValueError: The shapes differ or the clips have fewer than two frames.

    """
    if reference.shape != videos.shape or reference.ndim != 5 or reference.shape[1] < 2:
        raise ValueError(
            "`videos` must match `reference`, both (batch, frames >= 2, H, W, C); "
            f"got {videos.shape} and {reference.shape}"
        )
    ref = np.diff(reference.astype(np.float64), axis=1)
    out = np.diff(videos.astype(np.float64), axis=1)
    change = np.abs(ref).reshape(len(ref), -1).sum(axis=1)
    differ = np.abs(out - ref).reshape(len(ref), -1).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            change > 0, differ / np.where(change > 0, change, 1.0), np.where(differ > 0, np.inf, 0.0)
        )


def notes(judge: Any = None) -> dict[str, str]:
    """Return the report's notes on the temporal measures (motion only with a video judge)."""
    out = {
        "flicker": "sum over frames and pixels of |(X[t] - X[t-1]) - (Y[t] - Y[t-1])| over the sum of "
        "|Y[t] - Y[t-1]|, X the row's clip, Y the baseline's of the same seed (forecache.eval.temporal); "
        "mean over clips, the worst clip beside it; 0 for the baseline"
    }
    if isinstance(judge, VideoJudge):
        out["motion_accuracy"] = (
            "per clip, the fraction of its objects whose track (the judge's per-frame readings) is nearest "
            "the motion its prompt names; mean over clips"
        )
    else:
        out["motion_accuracy"] = "unavailable: needs a shipped video reference model (its judge)"
    return out


def video_scores(
    reference: np.ndarray, videos: np.ndarray, judge: Any = None, conditions: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Return a video row's temporal scores: flicker, and with a video judge per-frame adherence and motion.

    Args:
        reference: Full compute's clips ``(batch, frames, H, W, C)`` in [0, 1].
        videos: The method's clips, same shape.
        judge: The reference model's judge; used when it reads videos
            (`forecache.reference.models.VideoJudge`). Default None.
        conditions: The prompt of each clip (judged only with them).

    Returns:
        ``flicker`` (mean over clips), ``flicker_per_sample``; with a video judge also
        ``adherence`` (mean over frames and clips), ``adherence_per_frame`` (each frame's mean over
        the clips) and ``motion_accuracy`` (per clip the fraction of its objects read moving as
        asked, averaged over the clips).

    """
    per_clip = flicker(reference, videos)
    scores: dict[str, Any] = {"flicker": float(per_clip.mean()), "flicker_per_sample": per_clip.tolist()}
    if conditions is None or not isinstance(judge, VideoJudge):
        return scores
    asked = list(conditions)[: len(videos)]
    frames = np.asarray(judge.frame_adherence(videos, asked))
    scores["adherence"] = float(frames.mean())
    scores["adherence_per_frame"] = frames.mean(axis=0).tolist()
    scores["motion_accuracy"] = float(np.mean(judge.motion_accuracy(videos, asked)))
    return scores


def worst_clip(rows: Sequence[tuple[str, np.ndarray]], reference: np.ndarray) -> int:
    """Return the index of the clip with the lowest PSNR against full compute in any of the rows.

    Args:
        rows: ``(label, clips)`` of the methods (not full compute), clips ``(batch, frames, H, W, C)``.
        reference: Full compute's clips.

    Returns:
        The clip's index (0 without rows or when every row equals full compute).

    """
    worst, index = np.inf, 0
    for _, clips in rows:
        if clips.shape != reference.shape:
            continue
        mse = ((clips.astype(np.float64) - reference.astype(np.float64)) ** 2).reshape(len(clips), -1).mean(1)
        i = int(np.argmax(mse))
        psnr = np.inf if mse[i] == 0 else -10.0 * np.log10(mse[i])
        if psnr < worst:
            worst, index = psnr, i
    return index
