"""Serving: threads sharing one cached transformer, pipelines made from one another, silent full compute.

Two worker threads, each with its own pipeline (and scheduler) around one transformer, run in
lockstep (a barrier at every scheduler step makes their transformer calls interleave): each
must get exactly the image and decisions it gets alone. A pipeline made with `from_pipe` from
the one forecache was applied to follows its own scheduler. A generation whose every call starts
over (constant time, time running the other way, a schedule set at every call) warns once.
"""

import threading
import warnings

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import forecache
from forecache import CacheConfig, ConfidenceGateConfig, Interval, TaylorSeerConfig, TimelineConfig
from tests.fixtures.catalog import build_tiny
from tests.fixtures.sampler import TinyPipeline

STEPS = 10
CONFIGS = {
    "taylorseer": TaylorSeerConfig(interval=3, warmup=2),
    "gate": ConfidenceGateConfig(threshold=0.3),
    "timeline": TimelineConfig(ratio=3.0),
}
# (guidance_scale, guidance_mode, seed) of the two workers
WORKERS = [(2.0, "named", 1), (2.0, "unnamed", 2)]


def pipeline_around(tiny, transformer=None):
    pipe = TinyPipeline(transformer or tiny.model, FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.tiny = tiny
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, guidance_scale, guidance_mode, seed):
    generator = torch.Generator().manual_seed(seed)
    latents = pipe(STEPS, guidance_scale, guidance_mode, generator=generator).latents
    stats = forecache.stats(pipe)
    return latents, {name: "".join(c.decisions) for name, c in stats.contexts.items()}


def in_lockstep(pipes):
    """Make every scheduler step of the pipes wait for the others' (their calls interleave)."""
    barrier = threading.Barrier(len(pipes), timeout=60)
    for pipe in pipes:
        step = pipe.scheduler.step

        def waiting(*args, _step=step, **kwargs):
            barrier.wait()
            return _step(*args, **kwargs)

        pipe.scheduler.step = waiting  # this instance only


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_threads_on_one_transformer_get_their_sequential_results(one_thread, name):
    tiny = build_tiny("FluxTransformer2DModel")
    first = pipeline_around(tiny)
    second = pipeline_around(tiny)
    forecache.apply(first, CONFIGS[name])
    try:
        alone = [generate(pipe, *worker) for pipe, worker in zip((first, second), WORKERS, strict=True)]
        in_lockstep([first, second])
        together, errors = [None, None], []

        def work(i, pipe):
            try:
                together[i] = generate(pipe, *WORKERS[i])
            except BaseException as err:  # reported below, with the thread's own error
                errors.append(err)

        threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate((first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        forecache.remove(first)
    assert not errors, errors
    for (latents, decisions), (again, decisions_again) in zip(alone, together, strict=True):
        assert decisions_again == decisions and "F" in "".join(decisions.values()), (
            decisions,
            decisions_again,
        )
        assert torch.equal(again, latents), (again - latents).abs().max()


def test_stats_from_another_thread_report_the_last_generation(one_thread):
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    with forecache.cached(pipe, TaylorSeerConfig(interval=3, warmup=2)):
        worker = threading.Thread(target=pipe, kwargs={"num_inference_steps": STEPS})
        worker.start()
        worker.join()
        decisions = forecache.stats(pipe).contexts["branch0"].decisions
    assert "".join(decisions) == "CCCFFCFFCC"


@pytest.mark.parametrize("own_scheduler", [False, True])
def test_a_pipeline_made_with_from_pipe_follows_its_own_scheduler(one_thread, own_scheduler):
    config = TaylorSeerConfig(interval=3, warmup=2)
    first = TinyPipeline.from_tiny("FluxTransformer2DModel")
    first.set_progress_bar_config(disable=True)
    extra = {"scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0)} if own_scheduler else {}
    second = TinyPipeline.from_pipe(first, transformer=first.transformer, **extra)
    second.tiny = first.tiny
    second.set_progress_bar_config(disable=True)
    assert (
        second.transformer is first.transformer and (second.scheduler is not first.scheduler) == own_scheduler
    )
    # the reference: the same weights in a pipeline of their own
    alone = TinyPipeline.from_tiny("FluxTransformer2DModel")
    alone.set_progress_bar_config(disable=True)
    with forecache.cached(alone, config):
        expected = [
            alone(steps, generator=torch.Generator().manual_seed(0)).latents for steps in (10, 12, 10)
        ]
    forecache.apply(first, config)
    try:
        got, decisions = [], []
        for pipe, steps in ((first, 10), (second, 12), (first, 10)):
            got.append(pipe(steps, generator=torch.Generator().manual_seed(0)).latents)
            decisions.append("".join(forecache.stats(pipe).contexts["branch0"].decisions))
    finally:
        forecache.remove(first)
    assert decisions == ["CCCFFCFFCC", "CCCFFCFFCFFC", "CCCFFCFFCC"]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


# --------------------------------------------------------------------------- silent full compute


def stall_warnings(record):
    return [str(w.message) for w in record if "started a new context" in str(w.message)]


def bare_calls(times, config=None):
    tiny = build_tiny("FluxTransformer2DModel")
    inputs = tiny.make_inputs(1, torch.Generator().manual_seed(0))
    config = config or CacheConfig(Interval(every=2, warmup=2))
    with (
        forecache.cached(tiny.model, config, num_inference_steps=len(times)),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        for t in times:
            tiny.model(**inputs, timestep=torch.tensor([t * tiny.timestep_scale]), return_dict=False)
        stats = forecache.stats(tiny.model)
    return stall_warnings(record), stats


@pytest.mark.parametrize(
    ("times", "cause"),
    [([500.0] * STEPS, "constant time"), ([100.0 * i for i in range(STEPS)], "runs the other way")],
)
def test_calls_that_all_start_over_warn_once_naming_the_cause(one_thread, times, cause):
    found, stats = bare_calls(times)
    assert stats.forecast_steps == 0
    assert len(found) == 1 and cause in found[0], found


def test_a_healthy_generation_does_not_warn(one_thread):
    found, stats = bare_calls([1000.0 - 100.0 * i for i in range(STEPS)])
    assert found == [] and stats.forecast_steps > 0


def test_a_policy_that_would_not_forecast_does_not_warn(one_thread):
    found, stats = bare_calls([500.0] * STEPS, CacheConfig(Interval(every=1, warmup=1)))
    assert found == [] and stats.forecast_steps == 0


class ResettingPipeline(TinyPipeline):
    """Sets the scheduler's schedule anew before every step: every call is a new generation to the clock."""

    def _call_transformer(self, inputs, t):
        self.scheduler.set_timesteps(self.scheduler.num_inference_steps)
        return super()._call_transformer(inputs, t)


def test_a_schedule_set_at_every_call_warns_once_naming_the_clock(one_thread):
    tiny = build_tiny("FluxTransformer2DModel")
    pipe = ResettingPipeline(tiny.model, FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.tiny = tiny
    pipe.set_progress_bar_config(disable=True)
    with (
        forecache.cached(pipe, TaylorSeerConfig(interval=3, warmup=2)),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        pipe(STEPS)
        stats = forecache.stats(pipe)
    found = stall_warnings(record)
    assert stats.forecast_steps == 0
    assert len(found) == 1 and "do not follow the scheduler's clock" in found[0], found


class RisingPipeline(TinyPipeline):
    """Passes a time that rises over the generation to a model whose layout says it falls."""

    def _call_transformer(self, inputs, t):
        return super()._call_transformer(inputs, 1000.0 - t)


def test_a_rising_time_warns_once_per_pipeline_call(one_thread):
    tiny = build_tiny("FluxTransformer2DModel")
    pipe = RisingPipeline(tiny.model, FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.tiny = tiny
    pipe.set_progress_bar_config(disable=True)
    with (
        forecache.cached(pipe, TaylorSeerConfig(interval=3, warmup=2)),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        pipe(STEPS)
        pipe(STEPS)
    found = stall_warnings(record)
    assert len(found) == 2 and all("runs the other way" in f for f in found), found
