"""The search of one transformer's schedule and its verification; two experts' results combined.

`Search.run` takes one transformer's recording (`Expert`): for the step count the goal asks for (a
compute ratio) or for each count of a bisection (a PSNR budget), the dynamic programme of
`forecache.calibrate.offline` proposes schedules, every forecaster is scored on them exactly offline, and
the best few run for real on the calibration calls, cached, against full compute's outputs. For a
pipeline with two experts (Wan 2.2) each expert is searched with the other at full compute, then
`combine` verifies both tuned schedules at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from forecache.accel.forecasters import AdamsBashforth, Damped, Forecaster, Reuse, Taylor
from forecache.calibrate.damping import DAMPING_SCALES, fit_damping
from forecache.calibrate.frames import Frames, frame_psnr, output
from forecache.calibrate.offline import (
    Trajectory,
    best_schedules,
    error_table,
    schedule_cost,
    step_costs,
    step_weights,
)
from forecache.calibrate.partial import middle, partial_ratio, saving_needed, spans_for, spread
from forecache.calibrate.refine import MIN_GAIN_DB, REACH, moves
from forecache.calibrate.result import Candidate, TuneResult

__all__ = ["Expert", "Search", "combine", "count_for_ratio"]

#: The two-point forecasters the dynamic programme searches schedules for.
_SEARCHERS: tuple[Forecaster, ...] = (Reuse(), Taylor(order=1), AdamsBashforth(order=2))
_WEIGHTINGS = ("sensitivity", "uniform", "dt", "late")
#: Fewer verified samples than this get a note: their pooled PSNR overstates what new prompts get.
_STEADY_SAMPLES = 16


@dataclass
class Expert:
    """One transformer's recording: its trajectory and FLOPs, and the step count its calls see."""

    component: str
    trajectory: Trajectory
    full: float
    skip: float
    timeline_steps: int
    blocks: tuple[float, ...] = ()
    """FLOPs of each block of the stack per call (what a partial step saves); empty: not measured."""


def _ratio(n: int, computed: int, full: float, skip: float) -> float:
    return n * full / (computed * full + (n - computed) * skip)


def count_for_ratio(n: int, ratio: float, full: float, skip: float) -> int:
    """Return the most computed steps whose compute ratio is still at least `ratio`."""
    for m in range(n, 0, -1):
        if _ratio(n, m, full, skip) >= ratio:
            return m
    return 1


def _verified(candidate: Candidate) -> float:
    """Return the candidate's verified PSNR, -inf if it was not run (the sort key of the best)."""
    return -math.inf if candidate.psnr_db is None else candidate.psnr_db


def _best(candidates: list[Candidate]) -> Candidate | None:
    """Return the candidate of highest verified PSNR (the first of equals), None of none."""
    return max(candidates, key=_verified, default=None)


def _to_try(ranked: list[Candidate], count: int) -> list[Candidate]:
    """Return the candidates to run for real: each forecaster's best first, then new schedules.

    The offline error ranks schedules well but forecasters less so (a higher-order forecaster's
    errors can matter less in the image than its offline error says), so every forecaster gets a
    real run on its best schedule before any gets a second. Forecasters that predict alike on this
    trajectory (Taylor 1 and Adams-Bashforth 2 on a uniform grid) are run once.
    """

    def same(a: Candidate, b: Candidate) -> bool:
        return a.computed == b.computed and math.isclose(a.offline_cost, b.offline_cost, rel_tol=1e-5)

    best_each = []
    for forecaster in dict.fromkeys(repr(c.forecaster) for c in ranked):
        best_each.append(next(c for c in ranked if repr(c.forecaster) == forecaster))
    picked: list[Candidate] = []
    for candidate in sorted(best_each, key=lambda c: c.offline_cost):
        if len(picked) < count and not any(same(candidate, p) for p in picked):
            picked.append(candidate)
    schedules = {tuple(c.computed) for c in picked}
    for candidate in ranked:
        if len(picked) >= count:
            break
        if tuple(candidate.computed) not in schedules:
            picked.append(candidate)
            schedules.add(tuple(candidate.computed))
    return picked


@dataclass
class Search:
    """The search and verification of one transformer's schedule (see `tune`)."""

    calls: list[Callable[[], Any]]
    reference: list[torch.Tensor]
    forecasters: Sequence[Forecaster]
    target: str
    trials: int
    max_gap: int | None
    frames: Frames
    progress: bool
    ratio: float | None = None
    budget_db: float | None = None
    partial: bool = True
    refine: int = 0
    damp: bool = True

    @property
    def scored(self) -> str:
        """What the goal says about frame scoring (nothing when pooled)."""
        pooled = isinstance(self.frames, str) and self.frames == "pooled"
        return "" if pooled else f" (frames scored: {self.frames!r})"

    def run(self, expert: Expert, applied: Any) -> TuneResult:
        """Search `expert`'s schedules and verify them with real cached runs of `applied`.

        Args:
            expert: The recording of the transformer being tuned.
            applied: What the candidates are applied to: the pipeline (one transformer), or the
                expert's transformer (the other expert then runs at full compute).

        """
        from tqdm.auto import tqdm

        trajectory, full, skip = expert.trajectory, expert.full, expert.skip
        n, steps, target, calls = trajectory.length, expert.timeline_steps, self.target, self.calls
        gap = self.max_gap or max(2, n // 3)
        tables: dict[tuple[str, int], np.ndarray] = {}
        ranking = step_weights(trajectory, "sensitivity")
        name = (
            "" if applied is not None and not isinstance(applied, torch.nn.Module) else f" {expert.component}"
        )

        def widest_for(count: int) -> int:
            # a gap wide enough for `count` computed steps to cover the trajectory
            return max(gap, math.ceil(n / count) + 1)

        def candidates_at(count: int) -> list[Candidate]:
            widest = widest_for(count)
            found: dict[tuple[tuple[int, ...], str], Candidate] = {}
            for searcher in _SEARCHERS:
                table_key = (str(searcher), widest)
                if table_key not in tables:
                    tables[table_key] = error_table(trajectory, searcher, widest)
                table = tables[table_key]
                for weighting in _WEIGHTINGS:
                    schedules = best_schedules(table, step_weights(trajectory, weighting), [count], widest)
                    if count not in schedules:
                        continue
                    computed = [int(step) for step in schedules[count][1]]
                    for forecaster in self.forecasters:
                        key = (tuple(computed), repr(forecaster))
                        if key in found:
                            continue
                        cost = schedule_cost(trajectory, forecaster, computed, ranking)
                        source = f"dp:{type(searcher).__name__}/{weighting}"
                        found[key] = Candidate(
                            list(computed), forecaster, source, cost, _ratio(n, count, full, skip)
                        )
            return sorted(found.values(), key=lambda c: c.offline_cost)

        verified: list[Candidate] = []

        def run(candidate: Candidate, bar: Any) -> float:
            from forecache.api import cached

            outputs = []
            with cached(applied, candidate.config(steps, target)):
                for call in calls:
                    outputs.append(output(call()))
                    bar.update(1)
            candidate.psnr_db = frame_psnr(self.reference, outputs, self.frames)
            verified.append(candidate)
            return candidate.psnr_db

        def best_verified(count: int, bar: Any) -> tuple[Candidate | None, list[Candidate]]:
            ranked = candidates_at(count)
            tried = _to_try(ranked, self.trials)
            for candidate in tried:
                run(candidate, bar)
            return _best(tried), ranked

        def refined(candidate: Candidate, bar: Any) -> Candidate:
            # coordinate descent by real runs (`forecache.calibrate.refine`), `self.refine` rounds at most
            count = len(candidate.computed)
            widest = widest_for(count)
            best = candidate
            seen = {tuple(candidate.computed): candidate}  # a schedule met again is not run again

            def verified(schedule: list[int]) -> Candidate:
                if tuple(schedule) not in seen:
                    cost = schedule_cost(trajectory, candidate.forecaster, schedule, ranking)
                    moved = Candidate(
                        schedule, candidate.forecaster, f"{candidate.source} + refined", cost, candidate.ratio
                    )
                    run(moved, bar)
                    seen[tuple(schedule)] = moved
                return seen[tuple(schedule)]

            for _ in range(self.refine):
                start = best
                for position in range(1, count):
                    top = _best([verified(s) for s in moves(best.computed, position, n, widest)])
                    if top is not None and _verified(top) > _verified(best) + MIN_GAIN_DB:
                        best = top
                if best is start:
                    break
            return best

        def damped(candidate: Candidate, bar: Any) -> Candidate:
            # the chosen schedule with each stretch's slope damping fitted offline and scaled down
            # (`forecache.calibrate.damping`), each scale run for real; the best kept when it gains
            # more than MIN_GAIN_DB
            done = candidate.fed
            if not self.damp or len(done) < 2 or len(done) == n:
                return candidate
            fitted = fit_damping(trajectory, done, ranking, candidate.forecaster)
            tried = []
            for scale in DAMPING_SCALES:
                forecaster = Damped(
                    tuple(round(scale * d, 4) for d in fitted), candidate.forecaster.coordinate
                )
                tried.append(
                    dataclasses.replace(
                        candidate,
                        forecaster=forecaster,
                        source=f"{candidate.source} + damped x{scale:g}",
                        offline_cost=schedule_cost(trajectory, forecaster, done, ranking),
                        psnr_db=None,
                    )
                )
                run(tried[-1], bar)
            top = _best(tried)
            return (
                top if top is not None and _verified(top) > _verified(candidate) + MIN_GAIN_DB else candidate
            )

        def with_partial(count: int, spans: list[tuple[int, int]], bar: Any) -> list[Candidate]:
            # the next count's schedule as the tuner would choose it (verified, over the ratio, refined
            # if asked), then one of its steps partial: which step with a span in the middle of the
            # stack, which span there, and (if the span moved) which step with that span
            base, ranked = best_verified(count + 1, bar)
            assert base is not None
            base = refined(base, bar)
            source, blocks = base.source, expert.blocks
            for other in ranked:
                if other.psnr_db is not None:
                    other.source += " (partial steps' base, over the ratio)"

            def partial(step: int, span: tuple[int, int]) -> Candidate:
                candidate = Candidate(
                    [c for c in base.computed if c != step],
                    base.forecaster,
                    f"{source} + partial step",
                    base.offline_cost,  # the offline error counts a partial step as computed
                    partial_ratio(n, count, full, skip, sum(blocks[span[0] : span[1]])),
                    partial=[step],
                    span=span,
                )
                run(candidate, bar)
                return candidate

            centre = middle(spans, len(blocks))
            found = [partial(step, centre) for step in base.computed[1:]]
            step = max(found, key=_verified).partial[0]
            found += [partial(step, span) for span in spread(spans, self.trials) if span != centre]
            span = max(found, key=_verified).span
            if span != centre:
                found += [partial(other, span) for other in base.computed[1:] if other != step]
            return found

        notes: list[str] = []
        samples = sum(int(r.shape[0]) for r in self.reference)
        if samples < _STEADY_SAMPLES:
            notes.append(
                f"verified on {samples} sample(s): a PSNR pooled over so few reads high (the scenes model's "
                "4 read 1.8-1.9 dB above 64 held-out prompts; BENCHMARKS.md, Scenes); more calibration "
                "calls or num_images_per_prompt give a steadier choice, validate= a figure no choice "
                "was made on"
            )
        if self.refine and samples < _STEADY_SAMPLES:
            notes.append(
                f"refined on {samples} sample(s): with fewer than {_STEADY_SAMPLES} the moves fit those "
                "samples (on the scenes model, held out: 4 samples +0.3 / -0.2 dB, 16 samples +1.0 / +0.5 dB)"
            )
        desc = f"forecache tune:{name} verifying"
        if self.ratio is not None:
            ratio = float(self.ratio)
            count = count_for_ratio(n, ratio, full, skip)
            spans: list[tuple[int, int]] = []
            if self.partial and expert.blocks and count + 1 < n:
                spans = spans_for(expert.blocks, saving_needed(n, count, full, skip, ratio))
            refining = self.refine * 2 * REACH * (count if spans else count - 1)  # at most
            runs = (
                self.trials
                + (2 * self.trials + 2 * count if spans else 0)
                + refining
                + len(DAMPING_SCALES) * self.damp
            )
            with tqdm(total=runs * len(calls), desc=desc, disable=not self.progress, unit="call") as bar:
                chosen, ranked = best_verified(count, bar)
                if spans:
                    whole = [] if chosen is None else [chosen]
                    chosen = _best([*whole, *with_partial(count, spans, bar)])
                elif chosen is not None:
                    chosen = refined(chosen, bar)
                if chosen is not None:
                    chosen = damped(chosen, bar)
            goal = f"compute ratio >= {ratio:g}x" + self.scored
            if _ratio(n, count, full, skip) < ratio:
                reached = _ratio(n, count, full, skip)
                notes.append(f"{ratio:g}x needs fewer computed steps than 1 of {n}; tuned at {reached:.2f}x")
        else:
            budget = float(self.budget_db or 0.0)
            goal = f"PSNR >= {budget:g} dB" + self.scored
            low, high = 1, n  # the fewest computed steps (highest ratio) meeting the budget, by bisection
            best: tuple[Candidate, list[Candidate]] | None = None
            rounds = math.ceil(math.log2(n)) + 1
            total = rounds * self.trials * len(calls)
            with tqdm(total=total, desc=desc, disable=not self.progress, unit="call") as bar:
                while low <= high:
                    count = (low + high) // 2
                    chosen, ranked = best_verified(count, bar)
                    if chosen is not None and (chosen.psnr_db or 0.0) >= budget:
                        best, high = (chosen, ranked), count - 1
                    else:
                        low = count + 1
                if best is not None and self.refine:
                    bar.total += self.refine * 2 * REACH * (len(best[0].computed) - 1) * len(calls)
                    best = (refined(best[0], bar), best[1])
                if best is not None and self.damp:
                    bar.total += len(DAMPING_SCALES) * len(calls)
                    best = (damped(best[0], bar), best[1])
            if best is None:
                notes.append(f"no schedule reached {budget:g} dB: full compute returned")
                full_steps = list(range(n))
                candidate = Candidate(full_steps, Reuse(), "full compute", 0.0, 1.0, float("inf"))
                chosen, ranked = candidate, [candidate]
            else:
                chosen, ranked = best
        assert chosen is not None
        done = chosen.fed  # a partial step counted as computed
        errors = [float(e) for e in step_costs(trajectory, chosen.forecaster, done)]
        seen = {id(c) for c in ranked}
        everything = ranked + [c for c in verified if id(c) not in seen]
        return TuneResult(
            config=chosen.config(steps, target),
            steps=n,
            chosen=chosen,
            candidates=everything,
            step_errors=errors,
            full_flops=full,
            skip_flops=skip,
            calls=len(calls),
            goal=goal,
            notes=notes,
        )


def combine(pipe: Any, search: Search, experts: list[Expert], results: dict[str, TuneResult]) -> TuneResult:
    """Verify every expert's tuned schedule at once; the pipeline's result, with each expert's inside."""
    from forecache.api import cached

    outputs = []
    with contextlib.ExitStack() as stack:
        for component, result in results.items():
            stack.enter_context(cached(getattr(pipe, component), result.config))
        for call in search.calls:
            outputs.append(output(call()))
    full = sum(e.trajectory.length * e.full for e in experts)
    spent = sum(
        e.trajectory.length * e.full / r.chosen.ratio for e, r in zip(experts, results.values(), strict=True)
    )
    first = next(iter(results.values()))
    notes = [f"{component}: {note}" for component, result in results.items() for note in result.notes]
    return dataclasses.replace(
        first,
        calls=len(search.calls),
        goal=f"{first.goal}, each of {len(results)} experts",
        notes=notes,
        experts=results,
        psnr_db=frame_psnr(search.reference, outputs, search.frames),
        ratio=full / spent,
    )
