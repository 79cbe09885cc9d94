"""`forecache.tune`: fit the schedule and the forecaster to one model, on the user's own prompts.

1. Record: full-compute generations of the calibration calls, keeping each context's block-stack
   residual at every step (`forecache.tune.record`) and the outputs.
2. Search offline: for each two-point forecaster and error weighting, a dynamic programme finds the
   cheapest set of computed steps for the wanted count (`forecache.tune.offline`); every candidate
   forecaster is then scored exactly on those schedules.
3. Verify: the best few are run for real on the calibration calls, cached, against the recorded
   full-compute outputs (paired PSNR over all values), and the best verified one is kept.
4. Write: a `CacheConfig` whose `Timeline` policy holds the schedule on the normalised timeline,
   so it transfers to other step counts; a config file for `apply`, ``bench --config`` and the
   notebook; a report of everything tried and a plot of the schedule over the per-step error.

Speed/quality: the schedule is what matters most (sparse where features change slowly, dense
where they do not, per model and scheduler); the tuner costs one recording generation per
calibration call plus ``verify`` cached generations per searched step count.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import AdamsBashforth, Forecaster, Hermite, Reuse, Taylor
from forecache.accel.policies import Interval, Timeline
from forecache.tune.frames import Frames, check_frames, frame_psnr
from forecache.tune.offline import (
    Trajectory,
    best_schedules,
    check_linear,
    error_table,
    schedule_cost,
    step_costs,
    step_weights,
)

__all__ = ["DEFAULT_FORECASTERS", "Candidate", "TuneResult", "tune"]

#: Forecasters the tuner tries by default (any registered linear forecaster can be added).
DEFAULT_FORECASTERS: tuple[Forecaster, ...] = (
    Reuse(),
    Taylor(order=1),
    Taylor(order=2),
    AdamsBashforth(order=2),  # Taylor 1 on the timestep coordinate
    AdamsBashforth(order=3),  # Taylor 2 on the timestep coordinate
    Hermite(order=1, sigma=0.5),  # damped slope: best at long intervals on dit-digits
    Hermite(order=2, sigma=0.6),  # best at long intervals on flux-digits
)
"""FoCa is left out (its history steps through the forecast values, which the offline evaluation
does not replay) and DMD too (nonlinear in the features); both can still be applied directly."""
#: The two-point forecasters the dynamic programme searches schedules for.
_SEARCHERS: tuple[Forecaster, ...] = (Reuse(), Taylor(order=1), AdamsBashforth(order=2))
_WEIGHTINGS = ("sensitivity", "uniform", "dt", "late")


@dataclass
class Candidate:
    """One schedule and forecaster the tuner considered.

    Attributes:
        computed: The computed step indices (at the tuned step count).
        forecaster: The forecaster.
        source: How the schedule was found (``"dp:<forecaster>/<weighting>"``).
        offline_cost: Its exact offline error: the relative squared forecast error summed over the
            forecast steps with the ``"sensitivity"`` weights (see `step_weights`).
        ratio: Its compute ratio (linear-layer FLOPs of full compute over its own).
        psnr_db: Verified paired PSNR against full compute; None if not run.

    """

    computed: list[int]
    forecaster: Forecaster
    source: str
    offline_cost: float
    ratio: float
    psnr_db: float | None = None

    def config(self, steps: int, target: str) -> CacheConfig:
        """Return the cache config of this candidate."""
        return CacheConfig(
            policy=Timeline.from_steps(self.computed, steps), forecaster=self.forecaster, target=target
        )


@dataclass
class TuneResult:
    """What `tune` found.

    Attributes:
        config: The chosen config (a `Timeline` schedule, the chosen forecaster, the target).
        steps: The step count it was tuned at.
        chosen: The chosen candidate (its verified PSNR and ratio).
        candidates: Every candidate scored, best offline first; verified ones carry their PSNR.
        step_errors: The per-step offline error of the chosen schedule (0 at computed steps).
        full_flops: Linear-layer FLOPs of one full-compute transformer call.
        skip_flops: FLOPs of a call whose blocks are all forecast (stem and head).
        calls: The number of calibration calls.

    """

    config: CacheConfig
    steps: int
    chosen: Candidate
    candidates: list[Candidate]
    step_errors: list[float]
    full_flops: float
    skip_flops: float
    calls: int
    goal: str = ""
    notes: list[str] = field(default_factory=list)

    def save(self, path: Any, label: str | None = None) -> Any:
        """Write the chosen config as a config file (see `forecache.configfile`); returns the path."""
        from forecache.configfile import save_config

        return save_config(self.config, path, label or f"tuned {self.chosen.ratio:.2f}x")

    def report(self) -> str:
        """Return a markdown report of the goal, the chosen config and every candidate tried."""
        from forecache.tune.report import markdown_report

        return markdown_report(self)

    def plot(self) -> Any:
        """Return a PIL image: the chosen schedule over the per-step offline error."""
        from forecache.tune.report import schedule_plot

        return schedule_plot(self)


def _accepts(pipe: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(pipe.__call__).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _calls(
    pipe: Any, call_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]], seed: int = 0
) -> list[Callable[[], Any]]:
    """One function per calibration call that runs it with a fresh generator of its own seed."""
    if isinstance(call_kwargs, Mapping):
        call_kwargs = [call_kwargs]
    if not call_kwargs or not all(isinstance(kw, Mapping) for kw in call_kwargs):
        raise TypeError(
            f"`call_kwargs` must be a dict of pipeline arguments or a list of them, got {call_kwargs!r}"
        )
    calls: list[Callable[[], Any]] = []
    for position, kwargs in enumerate(call_kwargs):
        kwargs = dict(kwargs)
        if "output_type" not in kwargs and _accepts(pipe, "output_type"):
            kwargs["output_type"] = "np"
        if "generator" in kwargs:
            raise ValueError(
                "`call_kwargs`: leave out `generator` (each call is seeded by its position): a generator "
                "object is consumed by its first run, so the calibration runs would not repeat"
            )
        seeded = _accepts(pipe, "generator")

        def call(kwargs: dict[str, Any] = kwargs, seed: int = seed + position, seeded: bool = seeded) -> Any:
            extra = {"generator": torch.Generator().manual_seed(seed)} if seeded else {}
            return pipe(**kwargs, **extra)

        calls.append(call)
    return calls


def _output(result: Any) -> torch.Tensor:
    """Return the generated values of a pipeline output as a float64 tensor (images, frames or latents)."""
    for name in ("images", "frames", "latents", "audios", "sample"):
        value = getattr(result, name, None)
        if value is not None:
            break
    else:
        value = result[0] if isinstance(result, tuple) else result
    if isinstance(value, list) and value and not isinstance(value[0], (torch.Tensor, np.ndarray)):
        value = np.stack([np.asarray(v) for v in value])
    if isinstance(value, list):
        value = np.stack([np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for v in value])
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    return tensor.detach().to("cpu", torch.float64)


def _psnr(reference: list[torch.Tensor], outputs: list[torch.Tensor], frames: Frames = "pooled") -> float:
    """Return the paired PSNR over all calls (peak 1 for images, else the largest value); see `frame_psnr`."""
    return frame_psnr(reference, outputs, frames)


@contextlib.contextmanager
def _flop_counter(
    transformer: torch.nn.Module, blocks: list[torch.nn.Module]
) -> Iterator[list[tuple[int, int]]]:
    """Count each call's FLOPs and the FLOPs spent inside its block stack (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    calls: list[tuple[int, int]] = []
    mode = FlopCounterMode(display=False)
    marks = [0, 0, 0]

    def start(*_: Any) -> None:
        marks[0] = mode.get_total_flops()

    def enter(*_: Any) -> None:
        marks[1] = mode.get_total_flops()

    def leave(*_: Any) -> None:
        marks[2] = mode.get_total_flops()

    def end(*_: Any) -> None:
        calls.append((mode.get_total_flops() - marks[0], marks[2] - marks[1]))

    handles = [
        transformer.register_forward_pre_hook(start),
        transformer.register_forward_hook(end),
        blocks[0].register_forward_pre_hook(enter),
        blocks[-1].register_forward_hook(leave),
    ]
    try:
        with mode:
            yield calls
    finally:
        for handle in handles:
            handle.remove()


def _record(
    pipe: Any, calls: list[Callable[[], Any]], progress: Any
) -> tuple[Trajectory, list[torch.Tensor], float, float]:
    """Run the calls at full compute: the trajectory, the outputs, FLOPs of a full and a skipped call."""
    import forecache
    from forecache.accel.attach import session_of
    from forecache.tune.record import RecordingTarget  # registers the "record" target

    recorder = CacheConfig(policy=Interval(every=1, warmup=1, cooldown=0), target="record")
    transformer = pipe.transformer
    outputs: list[torch.Tensor] = []
    flops: list[tuple[int, int]] = []
    forecache.apply(pipe, recorder)
    try:
        session = session_of(transformer)
        assert session is not None and isinstance(session.target, RecordingTarget)
        for index, call in enumerate(calls):
            if index == 0:
                with _flop_counter(transformer, session.target.blocks) as counted:
                    outputs.append(_output(call()))
                flops = counted
            else:
                outputs.append(_output(call()))
            progress.update(1)
        records = list(session.target.records)
    finally:
        forecache.remove(pipe)
    for record in records:
        record.finish()
    lengths = [len(r.steps) for r in records]
    n = max(set(lengths), key=lengths.count)
    features = [r.streams[0] for r in records if len(r.steps) == n and r.streams and r.streams[0] is not None]
    timesteps = next(r.timesteps for r in records if len(r.steps) == n)
    full = float(np.mean([total for total, _ in flops]))
    skip = float(np.mean([total - inside for total, inside in flops]))
    return Trajectory.from_features(features, timesteps), outputs, full, skip


def _ratio(n: int, computed: int, full: float, skip: float) -> float:
    return n * full / (computed * full + (n - computed) * skip)


def _count_for_ratio(n: int, ratio: float, full: float, skip: float) -> int:
    """Return the most computed steps whose compute ratio is still at least `ratio`."""
    for m in range(n, 0, -1):
        if _ratio(n, m, full, skip) >= ratio:
            return m
    return 1


def _to_verify(ranked: list[Candidate], count: int) -> list[Candidate]:
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


def tune(
    pipe: Any,
    call_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    ratio: float | None = None,
    budget_db: float | None = None,
    forecasters: Sequence[Forecaster] = DEFAULT_FORECASTERS,
    target: str = "blocks",
    verify: int = 8,
    max_gap: int | None = None,
    seed: int = 0,
    progress: bool = True,
    frames: Frames = "pooled",
) -> TuneResult:
    """Find the schedule and forecaster for this model, for a compute ratio or a quality budget.

    The best quality at a compute ratio, or the highest ratio within an error budget.

    Args:
        pipe: A diffusers pipeline with a `transformer` forecache can lay out.
        call_kwargs: The calibration call(s): a dict of pipeline arguments (prompts or labels,
            ``num_inference_steps``, ...) or a list of them; each runs with its own seed (its
            position in the list); leave out ``generator``. More calls: a steadier choice,
            proportionally longer tuning.
        ratio: Wanted compute ratio (linear-layer FLOPs of full compute over the cached run's,
            > 1). Exactly one of `ratio` and `budget_db`.
        budget_db: Lowest acceptable paired PSNR against full compute, in dB (> 0): the tuner
            returns the highest ratio it verifies at or above it.
        forecasters: Forecasters to consider; each must be linear in its features (all built-in
            ones are). Default `DEFAULT_FORECASTERS`.
        target: The target to tune for; only ``"blocks"`` (the stack residual the recording sees).
        verify: Real cached runs per searched step count (>= 1). Default 8: every default
            forecaster once on its best schedule, then the next best schedule. More is safer, slower.
        max_gap: Most steps between two computed ones. Default: a third of the steps.
        seed: Seed of the first calibration call (the others follow). Default 0.
        progress: Show a progress bar. Default True.
        frames: Videos: how the verification weighs the frames (`forecache.tune.frames`):
            ``"pooled"`` (every value alike, the default), ``"worst"`` (a candidate scores its worst
            frame's PSNR: safer against one spoiled frame, picks denser schedules) or one weight
            per frame. Other outputs take ``"pooled"`` only.

    Returns:
        The `TuneResult`: its `config` is ready for `forecache.apply`; `save`, `report`, `plot`.

    Raises:
        ValueError: Bad goal, target or arguments (naming the field and the value).
        TypeError: `call_kwargs` or a forecaster of the wrong type.

    """
    if (ratio is None) == (budget_db is None):
        raise ValueError(
            f"tune: pass exactly one of `ratio` and `budget_db`, got ratio={ratio!r}, budget_db={budget_db!r}"
        )
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1
    ):
        raise ValueError(f"tune: `ratio` must be a float > 1, got {ratio!r}")
    if budget_db is not None and (
        isinstance(budget_db, bool) or not isinstance(budget_db, (int, float)) or not budget_db > 0
    ):
        raise ValueError(f"tune: `budget_db` must be a float > 0, got {budget_db!r}")
    if target != "blocks":
        raise ValueError(f"tune: `target` must be one of ['blocks'], got {target!r}")
    if isinstance(verify, bool) or not isinstance(verify, int) or verify < 1:
        raise ValueError(f"tune: `verify` must be an int >= 1, got {verify!r}")
    check_frames(frames)
    from tqdm.auto import tqdm

    calls = _calls(pipe, call_kwargs, seed)
    with tqdm(total=len(calls), desc="forecache tune: recording", disable=not progress, unit="call") as bar:
        trajectory, reference, full, skip = _record(pipe, calls, bar)
    frame_psnr(reference, reference, frames)  # refuses a frame weighting the outputs cannot take
    n = trajectory.length
    gap = max_gap or max(2, n // 3)
    for forecaster in forecasters:
        if not check_linear(forecaster, [0.0, 1.0, 2.5], 4.0) or not check_linear(
            forecaster,
            list(trajectory.coordinate(forecaster)[:3]),
            float(trajectory.coordinate(forecaster)[4 % n]),
        ):
            raise TypeError(f"tune: `forecasters` must be linear in their features; {forecaster!r} is not")
    tables: dict[tuple[str, int], np.ndarray] = {}
    ranking = step_weights(trajectory, "sensitivity")

    def candidates_at(count: int) -> list[Candidate]:
        # a gap wide enough for `count` computed steps to cover the trajectory
        widest = max(gap, math.ceil(n / count) + 1)
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
                for forecaster in forecasters:
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
        import forecache

        outputs = []
        with forecache.cached(pipe, candidate.config(n, target)):
            for call in calls:
                outputs.append(_output(call()))
                bar.update(1)
        candidate.psnr_db = _psnr(reference, outputs, frames)
        verified.append(candidate)
        return candidate.psnr_db

    def best_verified(count: int, bar: Any) -> tuple[Candidate | None, list[Candidate]]:
        ranked = candidates_at(count)
        chosen = None
        for candidate in _to_verify(ranked, verify):
            run(candidate, bar)
            if chosen is None or (candidate.psnr_db or -1) > (chosen.psnr_db or -1):
                chosen = candidate
        return chosen, ranked

    notes: list[str] = []
    scored = "" if isinstance(frames, str) and frames == "pooled" else f" (frames scored: {frames!r})"
    if ratio is not None:
        count = _count_for_ratio(n, float(ratio), full, skip)
        with tqdm(
            total=verify * len(calls), desc="forecache tune: verifying", disable=not progress, unit="call"
        ) as bar:
            chosen, ranked = best_verified(count, bar)
        goal = f"compute ratio >= {ratio:g}x" + scored
        if _ratio(n, count, full, skip) < float(ratio):
            reached = _ratio(n, count, full, skip)
            notes.append(f"{ratio:g}x needs fewer computed steps than 1 of {n}; tuned at {reached:.2f}x")
    else:
        budget = float(budget_db or 0.0)
        goal = f"PSNR >= {budget:g} dB" + scored
        low, high = 1, n  # the fewest computed steps (highest ratio) meeting the budget, by bisection
        best: tuple[Candidate, list[Candidate]] | None = None
        rounds = math.ceil(math.log2(n)) + 1
        with tqdm(
            total=rounds * verify * len(calls),
            desc="forecache tune: verifying",
            disable=not progress,
            unit="call",
        ) as bar:
            while low <= high:
                count = (low + high) // 2
                chosen, ranked = best_verified(count, bar)
                if chosen is not None and (chosen.psnr_db or 0.0) >= budget:
                    best, high = (chosen, ranked), count - 1
                else:
                    low = count + 1
        if best is None:
            notes.append(f"no schedule reached {budget_db:g} dB: full compute returned")
            full_steps = list(range(n))
            candidate = Candidate(full_steps, Reuse(), "full compute", 0.0, 1.0, float("inf"))
            chosen, ranked = candidate, [candidate]
        else:
            chosen, ranked = best
    assert chosen is not None
    errors = [float(e) for e in step_costs(trajectory, chosen.forecaster, chosen.computed)]
    seen = {id(c) for c in ranked}
    everything = ranked + [c for c in verified if id(c) not in seen]
    return TuneResult(
        config=chosen.config(n, target),
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
