"""Unmodified diffusers pipelines, saved and loaded from disk, run end to end through their own __call__.

Each tiny pipeline of `tests.fixtures.pipelines` (every component built offline from a
config) is written with ``save_pretrained``, read back with ``DiffusionPipeline.from_pretrained``
and called as a user would. With forecache applied: the output is repeatable, fewer cached units
run (counted by the weights operations use, and equal to `forecache.stats`), and after
`forecache.remove` the output is bitwise the pipeline's own.
"""

import diffusers
import pytest
import torch

import forecache
from tests.fixtures.engage import UnitCounter, units_of

pytest.importorskip(
    "transformers", reason="the pipelines' text encoders need transformers (not a core dependency)"
)

from tests.fixtures.pipelines import TINY_PIPELINES, save_tiny_pipeline

CONFIG = forecache.TaylorSeerConfig(interval=3, warmup=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def _load(name, tmp_path):
    spec = TINY_PIPELINES[name]
    if not hasattr(diffusers, spec.pipeline):
        pytest.skip(f"{spec.pipeline} is not in diffusers {diffusers.__version__}")
    pipe = diffusers.DiffusionPipeline.from_pretrained(save_tiny_pipeline(name, tmp_path / name))
    assert type(pipe).__name__ == spec.pipeline
    pipe.set_progress_bar_config(disable=True)
    return pipe, spec


def _counted_run(pipe, spec, config):
    """One call of the pipeline; units executed per transformer call counted by the weights used."""
    experts = [getattr(pipe, name) for name in spec.experts]
    counter = UnitCounter([unit for expert in experts for unit in units_of(expert, config)])
    with counter.around(experts):
        output = pipe(prompt="a photo of a cat", generator=torch.Generator().manual_seed(0), **spec.call)[0]
    return output, counter.executed


@pytest.mark.parametrize("name", sorted(TINY_PIPELINES))
def test_a_saved_pipeline_run_with_its_own_call(name, tmp_path):
    pipe, spec = _load(name, tmp_path)
    baseline, _ = _counted_run(pipe, spec, CONFIG)
    forecache.apply(pipe, CONFIG)
    first, executed = _counted_run(pipe, spec, CONFIG)
    stats = forecache.stats(pipe)
    second, _ = _counted_run(pipe, spec, CONFIG)
    again = forecache.stats(pipe)
    forecache.remove(pipe)
    after, _ = _counted_run(pipe, spec, CONFIG)

    assert torch.equal(first, second), "not repeatable"
    assert {k: c.decisions for k, c in stats.contexts.items()} == {
        k: c.decisions for k, c in again.contexts.items()
    }
    executed_units = sum(c.executed_units for c in stats.contexts.values())
    total_units = sum(c.total_units for c in stats.contexts.values())
    assert executed == executed_units < total_units, (executed, executed_units, total_units, stats.summary())
    assert torch.isfinite(first).all() and not torch.equal(first, baseline)
    assert torch.equal(after, baseline), "not bitwise after remove"
    experts = {
        key.split("/")[0] if "/" in key else "transformer"
        for key, c in stats.contexts.items()
        if c.forecast_steps
    }
    assert experts == set(spec.experts), stats.summary()
