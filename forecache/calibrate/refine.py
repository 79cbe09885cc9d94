"""Refining a verified schedule by real runs: each computed step moved a little, kept when it helps.

The offline search ranks schedules by the forecast error of the recorded stack residual, which
sees neither what the final norm and projection discard nor how an early error grows in the
image; with a handful of computed steps its best schedule is close to, but not, the best image.
Coordinate descent by real runs closes some of that: each computed step but the first, in turn,
moves by up to `REACH` steps, every move verified on the calibration calls, and the best move is
kept when it gains more than `MIN_GAIN_DB`; rounds repeat until no step moves.

Speed/quality: at most ``2 * REACH * (computed steps - 1)`` real runs per round. It pays only on
enough samples: on the scenes model (4 calibration prompts, 3 rounds; 64 held-out prompts), refined
on 16 samples (the 4 prompts x 4 images) the tuned schedule gained 1.0 dB at 10x and 50 steps
(40.1 dB) and 0.5 dB at 6x and 28; on 4 samples, +0.3 and -0.2 dB, the worst sample -1.8 dB at 28
steps: the moves fit the samples (BENCHMARKS.md, "Refining by real runs").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["MIN_GAIN_DB", "REACH", "moves"]

#: The farthest a computed step moves in one try, in steps (either way).
REACH = 3
#: A move is kept when its verified PSNR beats the schedule's by more than this (dB).
MIN_GAIN_DB = 0.05


def moves(computed: list[int], position: int, n: int, widest: int) -> Iterator[list[int]]:
    """Yield the schedules with ``computed[position]`` moved by 1 to `REACH` steps either way.

    Only valid ones: inside ``(0, n)``, not onto another computed step, and no stretch of more
    than `widest` steps (between two computed steps, or from the last one to the end).

    Args:
        computed: Increasing computed step indices, 0 first.
        position: Which of them moves (>= 1: the first step always stays).
        n: Steps.
        widest: The longest stretch allowed.

    """
    for shift in (d for r in range(1, REACH + 1) for d in (-r, r)):
        step = computed[position] + shift
        if not 0 < step < n or step in computed:
            continue
        moved = sorted([*computed[:position], step, *computed[position + 1 :]])
        stretches = [b - a for a, b in itertools.pairwise(moved)] + [n - moved[-1]]
        if max(stretches) <= widest:
            yield moved
