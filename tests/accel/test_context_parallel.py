"""Context parallelism: two CPU ranks (gloo) under diffusers' Ulysses attention, every kind of config.

Each rank holds half of the sequence (``enable_parallelism(config=ContextParallelConfig(
ulysses_degree=2))``); the forecasts are element-wise and need nothing, and the policies that judge
(the gate, `Verify`) and the ``"recompute"`` fallback reduce over the context-parallel ranks by
themselves. For every preset, `TimelineConfig`, a tuned (saved `Timeline`) config file and
`Verify`: decisions identical on both ranks and equal to the single-process run's, the gate's
errors those of the whole sequence, outputs within float32 rounding of the single process, and
`remove` gives back the parallel model's own output bitwise. The recompute fallback: identical
decisions on both ranks (the guard's limit is each rank's shard's running peak, so it refuses at
least where one process does). Data-parallel replicas (a whole sequence per rank, no
context-parallel config) each judge alone.

diffusers divides by ``torch.accelerator.device_count()`` when it builds the mesh, which is 0 on a
CPU: the ranks report one device. Ring attention (``ring_degree=2``) fails on CPU: the native
attention backend returns no log-sum-exp (``return_lse``), which the ring merge needs. Tensor
parallelism (``TensorParallelConfig``) is refused on CPU by diffusers itself ("not supported on
device type 'cpu'").
"""

import os
import tempfile
from datetime import timedelta

import diffusers
import pytest
import torch
import torch.distributed as dist

import forecache
from forecache import (
    AdamsBashforthConfig,
    CacheConfig,
    ConfidenceGateConfig,
    Interval,
    Taylor,
    TaylorSeerConfig,
    TimelineConfig,
    Verify,
)
from forecache.accel.forecasters import Hermite
from forecache.accel.policies import Timeline
from forecache.configfile import save_config
from tests.fixtures.ranks import run_two_ranks, write_result

pytestmark = pytest.mark.skipif(
    not hasattr(diffusers, "ContextParallelConfig") or not hasattr(torch, "accelerator"),
    reason="needs diffusers' parallel API (enable_parallelism, ContextParallelConfig: diffusers >= 0.36) "
    "and torch.accelerator (torch >= 2.6); the floor run has neither",
)

STEPS, TOKENS, TEXT = 12, 16, 6  # both sequences split evenly over 2 ranks
CONFIGS = {
    "taylorseer": TaylorSeerConfig(interval=3, warmup=2),
    "ab": AdamsBashforthConfig(),
    "cg": ConfidenceGateConfig(threshold=0.15),
    "timeline": TimelineConfig(ratio=3.0),
    "tuned": "tuned.json",  # a config file as forecache.tune writes it
    "verify": CacheConfig(Verify(threshold=0.05, probe_blocks=0), Taylor(order=1)),
    "recompute": CacheConfig(
        Interval(every=3, warmup=2), Taylor(order=2), "blocks", fallback_margin=1.05, fallback="recompute"
    ),
}


def tiny_flux():
    torch.manual_seed(0)
    model = diffusers.FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=24,
        axes_dims_rope=(4, 2, 2),
    )
    return model.eval()


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    return {
        "hidden_states": torch.randn(1, TOKENS, 4, generator=g),
        "encoder_hidden_states": torch.randn(1, TEXT, 32, generator=g),
        "pooled_projections": torch.randn(1, 24, generator=g),
        "img_ids": torch.stack([torch.zeros(TOKENS), rows.flatten(), cols.flatten()], dim=1),
        "txt_ids": torch.zeros(TEXT, 3),
    }


@torch.no_grad()
def sample(model, scheduler, seed=0):
    """A flow-matching loop of STEPS calls (FLUX passes timestep / 1000)."""
    args = inputs(seed)
    latents = args.pop("hidden_states")
    scheduler.set_timesteps(STEPS)
    for t in scheduler.timesteps:
        pred = model(hidden_states=latents, timestep=(t / 1000).expand(1), return_dict=False, **args)[0]
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
    return latents


def run_all(model, folder, seed=0):
    """Per config: the cached output, decisions and gate errors; the output after `remove`; the baseline."""
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    baseline = sample(model, scheduler, seed)
    out = {"baseline": baseline.tolist()}
    for name, config in CONFIGS.items():
        config = os.path.join(folder, config) if isinstance(config, str) else config
        with forecache.cached(model, config, scheduler=scheduler):
            cached = sample(model, scheduler, seed)
            stats = forecache.stats(model)
        ctx = stats.contexts["branch0"]
        after = sample(model, scheduler, seed)
        out[name] = {
            "output": cached.tolist(),
            "decisions": "".join(ctx.decisions),
            "gate_errors": [e for _, e in ctx.gate_errors],
            "removed_bitwise": bool(torch.equal(after, baseline)),
        }
    return out


def worker(rank, folder):
    torch.set_num_threads(1)
    torch.accelerator.device_count = lambda: 1  # diffusers builds the mesh with rank % device_count
    # ranks that decide differently wait for each other's collectives: fail after a minute, never hang
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2, timeout=timedelta(seconds=60)
    )
    try:
        parallel = tiny_flux()
        parallel.enable_parallelism(config=diffusers.ContextParallelConfig(ulysses_degree=2))
        result = {"cp": run_all(parallel, folder)}
        # data parallelism: a whole model and a sequence of its own per rank, no parallel config
        alone = tiny_flux()
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
        with forecache.cached(alone, CONFIGS["cg"], scheduler=scheduler):
            sample(alone, scheduler, seed=10 + rank)
            result["dp_gate_errors"] = [e for _, e in forecache.stats(alone).contexts["branch0"].gate_errors]
        write_result(folder, rank, result)  # before teardown (see tests/fixtures/ranks.py)
    finally:
        dist.destroy_process_group()


def single_gate_errors(seed):
    model = tiny_flux()
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    with forecache.cached(model, CONFIGS["cg"], scheduler=scheduler):
        sample(model, scheduler, seed)
        return [e for _, e in forecache.stats(model).contexts["branch0"].gate_errors]


def test_every_config_under_ulysses_attention_on_two_cpu_ranks(one_thread):
    with tempfile.TemporaryDirectory() as folder:
        positions = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
        tuned = CacheConfig(Timeline(positions=positions, steps=STEPS), Hermite(order=1))
        save_config(tuned, os.path.join(folder, "tuned.json"), label="tuned 2x")
        single = run_all(tiny_flux(), folder)
        ranks = run_two_ranks(worker, (folder,), folder)
    cp = [r["cp"] for r in ranks]
    scale = torch.tensor(single["baseline"]).abs().max().item()
    for name in CONFIGS:
        want, got = single[name], [c[name] for c in cp]
        if name == "recompute":
            # every rank recomputes alike; each rank's guard limit is its shard's peak (<= the whole
            # sequence's), so it refuses at least where one process does: a superset of its steps
            assert got[0]["decisions"] == got[1]["decisions"], (got[0]["decisions"], got[1]["decisions"])
            computed = [i for i, d in enumerate(want["decisions"]) if d == "C"]
            assert all(got[0]["decisions"][i] == "C" for i in computed), (want, got[0]["decisions"])
            assert got[0]["decisions"] != want["decisions"] and "F" in got[0]["decisions"]
            assert got[0]["removed_bitwise"] and got[1]["removed_bitwise"]
            continue
        assert got[0]["decisions"] == got[1]["decisions"] == want["decisions"], (name, want, got)
        assert "F" in want["decisions"], (name, want["decisions"])
        assert got[0]["gate_errors"] == got[1]["gate_errors"], name
        assert got[0]["gate_errors"] == pytest.approx(want["gate_errors"], rel=1e-4, abs=1e-6), name
        for rank in range(2):
            diff = (torch.tensor(got[rank]["output"]) - torch.tensor(want["output"])).abs().max().item()
            assert diff <= 1e-5 * scale, f"{name} rank {rank}: max|cp - single| = {diff:.3g}"
            assert got[rank]["removed_bitwise"], f"{name} rank {rank}: remove changed the output"
    assert len(single["cg"]["gate_errors"]) > 3 and len(single["verify"]["gate_errors"]) > 3
    # replicas judge their own sequences: each rank's errors are its own single-process errors
    for rank in range(2):
        assert ranks[rank]["dp_gate_errors"] == pytest.approx(single_gate_errors(10 + rank), rel=1e-6)
    assert ranks[0]["dp_gate_errors"] != pytest.approx(ranks[1]["dp_gate_errors"], rel=1e-3)
