"""The tuned config scored on samples the search never saw: the figure to expect on new prompts.

The tuner keeps the candidate of highest PSNR on its calibration samples, so the winner's figure
there is the largest of many noisy estimates and reads high: tuned on 4 samples of the scenes model,
45.1 / 46.3 dB against 41.0 / 42.4 dB on 64 held-out prompts (28 steps and 6x / 50 steps and
10x). `run_validation` runs the calibration calls again with seeds the search did not use, at full
compute and with the chosen config, and scores those: no choice was made on them. On 64 such
samples (``validate=16`` with 4 prompts) the scenes model read 42.0 / 42.7 dB: within 1.0 / 0.3 dB
of the held-out figures. It is the figure for the calibration prompts: on 512 samples each, the
held-out prompts read 1.1 / 0.7 dB under them, and as much with a config that saw no prompt
(`TimelineConfig()`: 1.2 dB at 28 steps), so the rest is how hard the prompts are to forecast.

A PSNR pooled over samples is ruled by its worst few (the mean squared error of one sample at 30 dB
outweighs ten at 40), so a small draw reads high more often than low and draws of the same size
spread widely: on the six-stage scenes model fresh draws of 16 samples of the same prompts read
37.9-40.2 dB, of 64 samples 37.3-38.9 dB (28 steps). `Validation.interval_db`, a bootstrap interval over the
samples, says how wide that spread is for the samples at hand. Cost: two generations per validation
call (full compute, cached), no search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from forecache.calibrate.frames import Errors, Frames, output

__all__ = ["COVERAGE", "RESAMPLES", "Validation", "bootstrap_interval", "run_validation"]


#: Bootstrap resamples of the validation samples behind `Validation.interval_db`.
RESAMPLES = 1000
#: The interval's coverage: the 5th and the 95th percentile.
COVERAGE = 0.9


@dataclass(frozen=True)
class Validation:
    """The chosen config's PSNR against full compute on samples the search never saw.

    Attributes:
        psnr_db: Paired PSNR pooled over every validation sample (scored as the search scored,
            `frames`).
        worst_db: The worst sample's PSNR (each sample of each call scored alone).
        samples: How many samples (the calls' batches together).
        seeds: The seeds of the validation calls.
        per_sample_db: Each sample's PSNR, call by call.
        interval_db: The pooled PSNR's 90 % bootstrap interval over the samples (`RESAMPLES`
            resamples, seeded): how far another draw of as many samples could read. It covers the
            spread of samples, not prompts unlike the calibration prompts, and understates it when
            the samples miss a rare bad one (on the scenes model two draws of 64 samples of the
            same prompts read up to 3 dB apart, each interval about 1.5 dB wide).

    """

    psnr_db: float
    worst_db: float
    samples: int
    seeds: tuple[int, ...]
    per_sample_db: tuple[float, ...]
    interval_db: tuple[float, float]


def bootstrap_interval(errors: Errors, frames: Frames = "pooled", seed: int = 0) -> tuple[float, float]:
    """Return the `COVERAGE` percentile interval of the PSNR over `RESAMPLES` resamples of the samples."""
    count = int(errors.squared.shape[0])
    rows = torch.randint(count, (RESAMPLES, count), generator=torch.Generator().manual_seed(seed))
    scores = sorted(errors.pick(row).psnr(frames) for row in rows)
    tail = (1.0 - COVERAGE) / 2
    return scores[round(tail * (RESAMPLES - 1))], scores[round((1.0 - tail) * (RESAMPLES - 1))]


def run_validation(
    result: Any,
    pipe: Any,
    calls: list[Callable[[], Any]],
    seeds: tuple[int, ...],
    frames: Frames = "pooled",
    progress: bool = True,
) -> Validation:
    """Run `calls` at full compute and with `result`'s configs; score the cached outputs against those.

    Args:
        result: The `TuneResult` to validate (one transformer, or each expert its own config).
        pipe: The pipeline it was tuned on, with nothing applied.
        calls: The validation calls (the calibration calls with other seeds), each seeded anew on
            every run.
        seeds: Their seeds, reported.
        frames: How frames are scored, as in the search. Default ``"pooled"``.
        progress: Show a progress bar. Default True.

    Returns:
        The `Validation`.

    """
    from tqdm.auto import tqdm

    from forecache.api import remove

    parts: list[Errors] = []  # call by call: no call's outputs are kept (a video's can be large)
    with tqdm(
        total=2 * len(calls), desc="forecache tune: validating", disable=not progress, unit="call"
    ) as bar:
        for call in calls:
            reference = output(call())
            bar.update(1)
            result.apply(pipe)
            try:
                cached = output(call())
            finally:
                remove(pipe)
            bar.update(1)
            parts.append(Errors.of([reference], [cached]))
    errors = Errors.joined(parts)
    each = tuple(errors.pick(torch.tensor([i])).psnr(frames) for i in range(int(errors.squared.shape[0])))
    return Validation(
        errors.psnr(frames), min(each), len(each), seeds, each, bootstrap_interval(errors, frames)
    )
