"""`forecache.tune`: fit the schedule and the forecaster to one model, on the user's own prompts.

1. Record: full-compute generations of the calibration calls, keeping each context's block-stack
   residual at every step (`forecache.calibrate.record`) and the outputs.
2. Search offline: for each two-point forecaster and error weighting, a dynamic programme finds the
   cheapest set of computed steps for the wanted count (`forecache.calibrate.offline`); every candidate
   forecaster is then scored exactly on those schedules.
3. Verify: the best few are run for real on the calibration calls, cached, against the recorded
   full-compute outputs (paired PSNR over all values), and the best verified one is kept. When
   the ratio leaves part of a step unused, schedules with one partial step (all blocks but a span
   run; `forecache.calibrate.partial`) are verified too. Asked to, the chosen schedule is refined
   by real runs, each computed step moved a little (`forecache.calibrate.refine`). Last, each
   stretch's slope damping is fitted (`forecache.calibrate.damping`) and verified the same way.
   Asked to, the choice is then scored on new seeds of the calibration calls, which no choice was
   made on (`forecache.calibrate.validate`): the figure to expect on new prompts.
4. Write: a `CacheConfig` whose `Timeline` policy holds the schedule on the normalised timeline,
   so it transfers to other step counts; a config file for `apply`, ``bench --config`` and the
   notebook; a report of everything tried and a plot of the schedule over the per-step error.

Speed/quality: the schedule is what matters most (sparse where features change slowly, dense
where they do not, per model and scheduler); the tuner costs one recording generation per
calibration call plus ``trials`` cached generations per searched step count, 3 more for the
slope dampings (`damp`) and 2 per validation call (`validate`).

A pipeline with two denoising experts (Wan 2.2's `transformer` and `transformer_2`) has each expert
searched and verified with the other at full compute, then both verified together
(`forecache.calibrate.search`). Video outputs can be scored frame by frame
(`forecache.calibrate.frames`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from forecache.accel.config import CacheConfig
from forecache.accel.forecasters import AdamsBashforth, Forecaster, Hermite, Reuse, Taylor
from forecache.accel.policies import Interval
from forecache.calibrate.flops import ComputeCount, count_flops
from forecache.calibrate.frames import Frames, check_frames, frame_psnr, output
from forecache.calibrate.offline import Trajectory, check_linear
from forecache.calibrate.result import Candidate, TuneResult
from forecache.calibrate.search import Expert, Search, combine
from forecache.calibrate.validate import run_validation

__all__ = ["DEFAULT_FORECASTERS", "Candidate", "TuneResult", "tune", "tune_defaults"]

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


def _experts(pipe: Any) -> list[str]:
    """Return the pipeline's transformer components, in denoising order (Wan 2.2: both experts)."""
    from forecache.api import TRANSFORMER_COMPONENTS

    return [name for name in TRANSFORMER_COMPONENTS if isinstance(getattr(pipe, name, None), torch.nn.Module)]


def _record_all(
    pipe: Any, calls: list[Callable[[], Any]], progress: Any
) -> tuple[list[Expert], list[torch.Tensor]]:
    """Run the calls at full compute: per transformer that ran its recording, and the outputs."""
    from forecache.accel.session import session_of
    from forecache.api import apply, remove  # imports diffusers: on first use, as `forecache` does
    from forecache.calibrate.record import RecordingTarget  # registers the "record" target

    recorder = CacheConfig(policy=Interval(every=1, warmup=1, cooldown=0), target="record")
    components = _experts(pipe)
    outputs: list[torch.Tensor] = []
    flops: dict[str, ComputeCount] = {}
    apply(pipe, recorder)
    try:
        sessions = {name: session_of(getattr(pipe, name)) for name in components}
        for session in sessions.values():
            assert session is not None and isinstance(session.target, RecordingTarget)
        for index, call in enumerate(calls):
            if index == 0:
                with contextlib.ExitStack() as stack:
                    for name, session in sessions.items():
                        flops[name] = stack.enter_context(
                            count_flops(getattr(pipe, name), session.target.blocks)  # type: ignore[union-attr]
                        )
                    outputs.append(output(call()))
            else:
                outputs.append(output(call()))
            progress.update(1)
        records = {name: list(session.target.records) for name, session in sessions.items()}  # type: ignore[union-attr]
    finally:
        remove(pipe)
    experts: list[Expert] = []
    for name in components:
        if not records[name] or not flops[name].per_call:
            continue  # an expert the calls never reached
        for record in records[name]:
            record.finish()
        lengths = [len(r.steps) for r in records[name]]
        n = max(set(lengths), key=lengths.count)
        features = [
            r.streams[0]
            for r in records[name]
            if len(r.steps) == n and r.streams and r.streams[0] is not None
        ]
        timesteps = next(r.timesteps for r in records[name] if len(r.steps) == n)
        count = flops[name]
        full = float(np.mean(count.per_call))
        skip = float(
            np.mean([total - inside for total, inside in zip(count.per_call, count.inside, strict=True)])
        )
        blocks = tuple(float(v) for v in np.mean(np.asarray(count.per_block, dtype=np.float64), axis=0))
        experts.append(Expert(name, Trajectory.from_features(features, timesteps), full, skip, n, blocks))
    # a later expert joins the loop where the earlier ones stop: its calls see the steps left from there,
    # the first one the pipeline's whole count
    total = sum(e.trajectory.length for e in experts)
    for position, expert in enumerate(experts):
        if len(experts) > 1:
            expert.timeline_steps = total - sum(e.trajectory.length for e in experts[:position])
    return experts, outputs


def _record(
    pipe: Any, calls: list[Callable[[], Any]], progress: Any
) -> tuple[Trajectory, list[torch.Tensor], float, float]:
    """Run the calls at full compute: the first transformer's trajectory, the outputs, its FLOPs per call."""
    experts, outputs = _record_all(pipe, calls, progress)
    first = experts[0]
    return first.trajectory, outputs, first.full, first.skip


def tune(
    pipe: Any,
    call_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    ratio: float | None = None,
    budget_db: float | None = None,
    forecasters: Sequence[Forecaster] = DEFAULT_FORECASTERS,
    target: str = "blocks",
    trials: int = 8,
    max_gap: int | None = None,
    seed: int = 0,
    progress: bool = True,
    frames: Frames = "pooled",
    partial: bool = True,
    refine: int = 0,
    damp: bool = True,
    validate: int = 0,
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
        trials: Real cached runs per searched step count (>= 1), the candidates verified against
            full compute (not the `Verify` policy). Default 8: every default
            forecaster once on its best schedule, then the next best schedule. More is safer, slower.
        max_gap: Most steps between two computed ones. Default: a third of the steps.
        seed: Seed of the first calibration call (the others follow). Default 0.
        progress: Show a progress bar. Default True.
        frames: Videos: how the verification weighs the frames (`forecache.calibrate.frames`):
            ``"pooled"`` (every value alike, the default), ``"worst"`` (a candidate scores its worst
            frame's PSNR: safer against one spoiled frame, picks denser schedules) or one weight
            per frame. Other outputs take ``"pooled"`` only.
        partial: With a `ratio`, also try a partial step (`forecache.calibrate.partial`): when the
            ratio leaves part of a step unused, the next step count's schedule with one step that
            runs all but a span of the blocks: which step, then which span, by real runs (at most
            ``2 * trials + 2 * computed steps`` more). Default True. The PSNR budget's bisection
            uses whole steps only.
        refine: Rounds of refinement by real runs (`forecache.calibrate.refine`): each computed
            step but the first of the chosen schedule (with a partial step: of its base) moves by
            up to 3 steps, kept when the verified PSNR rises by more than 0.05 dB; at most
            ``6 * (computed steps - 1)`` runs a round, until no step moves. Worth it on 16 samples
            or more (4 prompts with ``num_images_per_prompt=4``): on the scenes model +1.0 dB on
            held-out prompts at 10x and 50 steps; on 4 samples it fits them. Default 0 (none).
        damp: Last, fit a slope damping to each forecast stretch of the chosen schedule
            (`forecache.Damped`, by least squares on the recording: `forecache.calibrate.damping`),
            run it at 1, 1/2 and 1/4 of the fit for real (3 runs) and keep the best when it gains more
            than 0.05 dB. On the scenes model (64 held-out prompts): at 50 steps and 10x 39.0 ->
            40.4 dB tuned on 4 samples, 40.1 -> 41.8 refined on 16; at 28 steps and 6x 39.3 -> 40.2
            refined on 16 (tuned on 4 samples no scale gained there, so none was kept). Default True.
        validate: Last, run the calibration calls this many times more, each time with seeds the
            search never used, at full compute and with the chosen config
            (`forecache.calibrate.validate`): `TuneResult.validation`, the PSNR to expect on new
            prompts (pooled, its 90 % bootstrap interval and the worst sample). The verified
            figure is the best of many candidates on the same samples and reads high: on the
            scenes model, 4 samples at 28 / 50 steps, 45.1 / 46.3 dB verified, 42.0 / 42.7
            validated with ``validate=16`` (64 samples), 41.0 / 42.4 on 64 held-out prompts.
            It speaks for the calibration prompts: other prompts can be harder to forecast under
            any config (on 512 samples each, the held-out prompts read 1.1 / 0.7 dB under the
            calibration ones, and 1.2 dB for `TimelineConfig()`, which saw no prompt), so calibrate
            on prompts like the ones you will run. Costs 2 generations per call and repeat.
            Default 0 (none).

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
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"tune: `trials` must be an int >= 1, got {trials!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"tune: `refine` must be an int >= 0, got {refine!r}")
    if not isinstance(damp, bool):
        raise ValueError(f"tune: `damp` must be True or False, got {damp!r}")
    if isinstance(validate, bool) or not isinstance(validate, int) or validate < 0:
        raise ValueError(f"tune: `validate` must be an int >= 0, got {validate!r}")
    check_frames(frames)
    from tqdm.auto import tqdm

    calls = _calls(pipe, call_kwargs, seed)
    with tqdm(total=len(calls), desc="forecache tune: recording", disable=not progress, unit="call") as bar:
        experts, reference = _record_all(pipe, calls, bar)
    frame_psnr(reference, reference, frames)  # refuses a frame weighting the outputs cannot take
    for expert in experts:
        coordinates = expert.trajectory.coordinate
        n = expert.trajectory.length
        for forecaster in forecasters:
            if not check_linear(forecaster, [0.0, 1.0, 2.5], 4.0) or not check_linear(
                forecaster, list(coordinates(forecaster)[:3]), float(coordinates(forecaster)[4 % n])
            ):
                raise TypeError(
                    f"tune: `forecasters` must be linear in their features; {forecaster!r} is not"
                )
    search = Search(
        calls,
        reference,
        forecasters,
        target,
        trials,
        max_gap,
        frames,
        progress,
        ratio=ratio,
        budget_db=budget_db,
        partial=partial,
        refine=refine,
        damp=damp,
    )
    if len(experts) == 1:
        result = search.run(experts[0], pipe)
    else:
        results = {
            expert.component: search.run(expert, getattr(pipe, expert.component)) for expert in experts
        }
        result = combine(pipe, search, experts, results)
    if validate:
        listed = [call_kwargs] if isinstance(call_kwargs, Mapping) else list(call_kwargs)
        first = seed + len(calls)  # the calibration calls took seed .. first - 1
        again = _calls(pipe, listed * validate, first)
        seeds = tuple(range(first, first + len(again)))
        result.validation = run_validation(result, pipe, again, seeds, frames, progress)
        if not _accepts(pipe, "generator"):
            result.notes.append(
                "the pipeline takes no `generator`: the validation calls repeat the calibration's samples"
            )
    return result


def tune_defaults() -> dict[str, Any]:
    """Return `tune`'s keyword defaults by name: what the CLI and the bench's ``tuned`` method default to."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(tune).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
