"""Partial steps for the tuner: spend the compute a ratio leaves between whole step counts.

At 28 steps, 4 computed steps are 6.9x and 5 are 5.5x: a 6x goal leaves most of a fifth step
unused. A partial step (`forecache.accel.policies.Timeline`'s ``partial``) runs every block of the
stack but a span, whose residual it forecasts, and feeds the forecast histories like a computed
step. Which span matters: on the scenes model (28 steps, 6.0x, 32 held-out prompts) the same
partial step forecasting the stack's first five blocks gave 31.7 dB, its last five 35.0 dB, and
blocks 4-8 39.0 dB, against 32.8 dB for the four full steps alone. The offline error of
`forecache.calibrate.offline` cannot score a span (it records the stack's residual, not each
block's), so the tuner picks by real runs: the step that is partial with a span in the middle of
the stack, then up to ``trials`` spans of the length the ratio needs at that step, spread over the
stack (`spans_for`, `spread`), then the step again if the span moved.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["middle", "partial_ratio", "saving_needed", "spans_for", "spread"]


def saving_needed(n: int, count: int, full: float, skip: float, ratio: float) -> float:
    """Return the FLOPs one partial step must leave out for `count` full steps to reach `ratio`.

    Args:
        n: Steps.
        count: Full computed steps (the partial one not among them).
        full: FLOPs of a computed call.
        skip: FLOPs of a forecast call.
        ratio: The goal.

    """
    return count * full + full + (n - count - 1) * skip - n * full / ratio


def partial_ratio(n: int, count: int, full: float, skip: float, saved: float) -> float:
    """Return the ratio of `count` full steps, one partial step leaving out `saved` FLOPs, forecasts."""
    return n * full / (count * full + (full - saved) + (n - count - 1) * skip)


def spans_for(blocks: Sequence[float], need: float) -> list[tuple[int, int]]:
    """Return, for each first block, the shortest span ``(first, end)`` whose FLOPs reach `need`.

    A span leaves at least one block to run; none is returned when no such span saves enough.

    Args:
        blocks: FLOPs of each block of the stack per call.
        need: FLOPs the span must hold (`saving_needed`); at most 0 needs no partial step.

    """
    spans: list[tuple[int, int]] = []
    if need <= 0:
        return spans
    for first in range(len(blocks)):
        held = 0.0
        for end in range(first + 1, len(blocks) + 1):
            held += blocks[end - 1]
            if end - first >= len(blocks):
                break
            if held >= need:
                spans.append((first, end))
                break
    return spans


def middle(spans: Sequence[tuple[int, int]], length: int) -> tuple[int, int]:
    """Return the span whose centre is nearest the middle of a stack of `length` blocks."""
    return min(spans, key=lambda span: (abs(span[0] + span[1] - length), span[0]))


def spread(spans: Sequence[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """Return at most `count` of `spans`, evenly spread over them (the first and the last included)."""
    if len(spans) <= count:
        return list(spans)
    if count == 1:
        return [spans[len(spans) // 2]]
    picks = sorted({round(i * (len(spans) - 1) / (count - 1)) for i in range(count)})
    return [spans[i] for i in picks]
