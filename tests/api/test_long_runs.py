"""Long runs on the reference model: memory stays flat and every call's statistics are the same."""

import gc

import torch

import forecache
from forecache.accel.session import session_of
from forecache.reference import load_reference

CALLS, WARMUP = 200, 20
TOLERANCE_MB = 16.0


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_200_calls_keep_memory_flat_and_stats_consistent(one_thread):
    pipe = load_reference("flux-digits")
    pipe.set_progress_bar_config(disable=True)
    forecache.apply(pipe, forecache.ConfidenceGateConfig(threshold=0.1))
    decisions, ratios, rss = [], [], []
    for call in range(CALLS):
        pipe(
            class_labels=[call % 10, 3],
            num_inference_steps=8,
            guidance_scale=2.0,
            generator=torch.Generator().manual_seed(call % 5),
            output_type="np",
        )
        stats = forecache.stats(pipe)
        decisions.append({name: "".join(c.decisions) for name, c in stats.contexts.items()})
        ratios.append(stats.compute_ratio)
        held = sum(
            site.nbytes
            for ctx in session_of(pipe.transformer).contexts.values()
            for site in ctx.sites.values()
        )
        assert held == 0, f"call {call}: {held} bytes still held after the call"
        if call >= WARMUP:
            gc.collect()
            rss.append(rss_mb())
    forecache.remove(pipe)
    growth = max(rss) - rss[0]
    assert growth < TOLERANCE_MB, (
        f"RSS grew {growth:.1f} MiB over {CALLS - WARMUP} calls (from {rss[0]:.0f} MiB)"
    )
    # same seed and labels -> same decisions, every time
    for call in range(5, CALLS):
        if call % 10 == (call - 10) % 10 and call % 5 == (call - 10) % 5:
            assert decisions[call] == decisions[call - 10]
    assert all(set(d) == {"cond", "uncond"} and all(len(s) == 8 for s in d.values()) for d in decisions)
    assert min(ratios) >= 1.0
