"""Tests of the one GPU command (benchmarks/gpu): the plan and its budget with numbers, the report's
acceptance checks, and a dry run of the same script at tiny size on the CPU (no GPU involved)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks.gpu import plan as planning
from benchmarks.gpu import report, run, worker

# Round numbers: a 1e12-FLOP step takes 1 s, a worker starts in 10 s, compiling takes 100 s.
COST = planning.CostModel(
    peak_flops=1e12, efficiency=1.0, compiled_efficiency=1.0, host_floor_s=0.0, process_s=10.0,
    build_s_per_gib=0.0, compile_s=100.0, compile_method_s=5.0, kernel_entry_s=5.0,
)  # fmt: skip
TS_BLOCKS_10 = (6 + 4 * 0.03) / 10  # Interval(every=5, warmup=3, cooldown=1) computes 6 of 10 steps
# FLOPs of one call as `run.count_step` counts them on the meta device (bf16, full size); counted
# here once (2026-11-28) because building FLUX.1-dev on the meta device takes seconds.
FULL_FLOPS = {
    ("flux-dev", (1024, 1024, 1)): 74384653418496.0,
    ("wan2.1-1.3b", (480, 832, 33)): 72929788821504.0,
    ("wan2.1-1.3b", (480, 832, 17)): 31613702897664.0,
    ("wan2.1-1.3b", (480, 832, 9)): 16338393759744.0,
}
FULL_GIB = {"flux-dev": 22.17, "wan2.1-1.3b": 2.65}


def _part(name, dims=((64, 64, 1),), flops=(1e12,), backend=None):
    return planning.Part(name, "profile", "flux-dev", backend, dims, flops, 0.0)


def _entry(part, method, priority, steps=10, critical=False, warmup=0):
    return planning.Entry(f"{part}/{steps}/{method}", part, priority, critical, method, steps, warmup=warmup)


def test_work_fraction_simulates_each_policy():
    assert planning.work_fraction("baseline", 10) == 1.0
    assert planning.work_fraction("taylorseer:target=blocks", 10) == pytest.approx(TS_BLOCKS_10)
    assert planning.work_fraction("taylorseer:target=modules", 10) == pytest.approx((6 + 4 * 0.15) / 10)
    # AB: Interval(every=3, warmup=2, cooldown=1) on the output computes 0,1,2,5,8,9 of 10
    assert planning.work_fraction("ab", 10) == pytest.approx((6 + 4 * 0.02) / 10)
    assert planning.work_fraction("cg", 50) == 1.0  # a gate's decisions need the features: pessimistic
    assert planning.work_fraction("diffusers.fbcache", 50) == 1.0
    assert planning.work_fraction("diffusers.taylorseer", 50) == 0.9


def test_entry_cost_counts_trajectories_calibration_and_compilation():
    eager, compiled = _part("a/eager"), _part("a/compile", backend="inductor")
    base = planning.Entry("k", "a/eager", 0, method="baseline", steps=10, repeats=3)
    assert planning.entry_cost(base, eager, 0, COST, first_in_part=True) == pytest.approx(40.0)
    mag = planning.Entry("k", "a/eager", 0, method="diffusers.magcache", steps=10, repeats=3)
    assert planning.entry_cost(mag, eager, 0, COST, first_in_part=False) == pytest.approx(50.0)
    warm = planning.Entry("k", "a/compile", 0, method="baseline", steps=10, warmup=1, repeats=3)
    assert planning.entry_cost(warm, compiled, 0, COST, first_in_part=True) == pytest.approx(150.0)
    assert planning.entry_cost(warm, compiled, 0, COST, first_in_part=False) == pytest.approx(55.0)


def test_plan_trims_repeats_before_it_drops_a_critical_measurement():
    entries = [
        _entry("a/eager", "baseline", 0, critical=True),
        _entry("a/eager", "taylorseer:target=blocks", 1, critical=True),
    ]
    # repeats 3: 10 s set-up + 40 s baseline + 4 * 10 * 0.612 = 24.48 s > 60; repeats 2: 58.36 s
    plan = planning.make_plan(entries, [_part("a/eager")], 60.0, COST)
    assert plan.repeats == 2 and [e.key for e in plan.entries] == [e.key for e in entries]
    assert plan.total_s == pytest.approx(10 + 30 + 3 * 10 * TS_BLOCKS_10)
    assert "repeats=3" in plan.notes[0] and "a/eager/10/taylorseer:target=blocks" in plan.notes[0]
    assert all(e.repeats == 2 for e in plan.entries)


def test_plan_keeps_what_fits_and_reserves_time_for_better_priority_work_later():
    parts = [_part("a/eager"), _part("a/compile", backend="inductor")]
    entries = [
        _entry("a/eager", "baseline", 0, critical=True),
        _entry("a/compile", "baseline", 1, critical=True, warmup=1),
        _entry("a/eager", "taylorseer:target=blocks", 2),
        _entry("a/eager", "diffusers.magcache", 3),  # 50 s: does not fit
    ]
    plan = planning.make_plan(entries, parts, 240.0, COST, repeats=(3,))
    kept = {e.key: e for e in plan.entries}
    assert list(kept) == [
        "a/eager/10/baseline",
        "a/eager/10/taylorseer:target=blocks",
        "a/compile/10/baseline",
    ]
    assert [e.key for e in plan.dropped] == ["a/eager/10/diffusers.magcache"]
    assert plan.reasons["a/eager/10/diffusers.magcache"].startswith("budget: ~50 s")
    assert plan.total_s == pytest.approx(10 + 40 + 10 + 150 + 4 * 10 * TS_BLOCKS_10)
    # the eager extra runs before the compiled baseline but must leave it its 150 s + 10 s set-up
    ts = kept["a/eager/10/taylorseer:target=blocks"]
    assert ts.reserve_s == pytest.approx(160.0) and kept["a/eager/10/baseline"].reserve_s == 0.0
    fields = {"est_s": ts.est_s, "reserve_s": ts.reserve_s}
    assert worker.skip_reason(fields, elapsed=50.0, budget=240.0, scale=1.0) is None  # 74.5 <= 80
    assert "160 s are kept" in worker.skip_reason(fields, elapsed=60.0, budget=240.0, scale=1.0)
    assert worker.skip_reason(fields, elapsed=0.0, budget=240.0, scale=2.0) is not None  # 49 > 240 - 320


def test_plan_takes_the_largest_video_size_that_fits_and_needs_each_baseline():
    wan = _part("w/eager", dims=((480, 832, 33), (480, 832, 17)), flops=(4e12, 1e12))
    entries = [
        _entry("w/eager", "baseline", 0),
        _entry("w/eager", "ab", 1),
        _entry("w/eager", "baseline", 2, steps=200),  # 400 s: never fits
        _entry("w/eager", "ab", 3, steps=200),
    ]
    plan = planning.make_plan(entries, [wan], 70.0, COST, repeats=(1,))  # 33 frames: 10 + 80 s > 70
    assert plan.parts[0].dims[0] == (480, 832, 17)
    assert [e.key for e in plan.entries] == ["w/eager/10/baseline", "w/eager/10/ab"]
    assert all(e.dims == (480, 832, 17) for e in plan.entries)
    assert plan.reasons["w/eager/200/ab"] == "its baseline was left out"


def test_cache_dit_runs_last_in_its_worker_whatever_its_priority():
    # cache-dit's disable_cache leaves its patched forward behind: diffusers' hooks fail after it
    methods = ["baseline", "cachedit.dbcache", "diffusers.fbcache", "taylorseer:target=blocks"]
    entries = [_entry("a/eager", m, i, steps=2) for i, m in enumerate(methods)]
    plan = planning.make_plan(entries, [_part("a/eager")], 1000.0, COST, repeats=(1,))
    assert [e.method for e in plan.entries] == [*methods[:1], *methods[2:], "cachedit.dbcache"]


@pytest.mark.parametrize("bad", [{"budget_s": 0.0}, {"budget_s": 10.0, "repeats": ()}])
def test_plan_names_a_bad_budget_or_repeats(bad):
    with pytest.raises(ValueError, match=r"budget_s|repeats"):
        planning.make_plan([], [], cost=COST, **bad)


def _default_plan(budget: float) -> planning.Plan:
    parts = planning.default_parts("full", "inductor", FULL_FLOPS, FULL_GIB)
    entries = planning.default_entries([50, 28], 28, [64.0, 1024.0])
    return planning.make_plan(entries, parts, budget, planning.CostModel())


def test_default_plan_fits_the_device_window_with_every_acceptance_subject():
    plan = _default_plan(420.0)
    keys = [e.key for e in plan.entries]
    critical = [e.key for e in planning.default_entries([50, 28], 28, [64.0, 1024.0]) if e.critical]
    assert set(critical) <= set(keys) and plan.repeats == 3 and plan.total_s <= 420.0
    assert keys[:2] == ["kernels/bf16/64MB", "kernels/fp32/64MB"] and keys[4] == "flux-dev/eager/50/baseline"
    # FLUX.1-dev eager, 50 steps: (1 counted + 3 timed) x 50 x (74.4 TFLOP / 395 TFLOP/s + 20 ms)
    base = next(e for e in plan.entries if e.key == "flux-dev/eager/50/baseline")
    assert base.est_s == pytest.approx(4 * 50 * (74384653418496.0 / 395e12 + 0.02))
    assert not any(k.startswith("wan") for k in keys)  # Wan waits for a second window
    roomy = _default_plan(1800.0)
    wan = [e for e in roomy.entries if e.part == "wan2.1-1.3b/eager"]
    assert wan and all(e.dims == (480, 832, 33) for e in wan)


def _row(part, method, steps=50, status="ok", **result):
    key = f"{part}/{steps}/{method}"
    return {"key": key, "part": part, "method": method, "steps": steps, "status": status, "result": result}


def test_acceptance_checks_read_the_numbers():
    rows = [
        _row("flux-dev/eager", "baseline", speedup=1.0, compute_ratio=1.0),
        _row(
            "flux-dev/eager", "taylorseer:target=blocks", speedup=3.0, compute_ratio=3.1, cache_fraction=0.006
        ),
        _row(
            "flux-dev/eager", "taylorseer:target=modules", speedup=2.0, compute_ratio=2.5, cache_fraction=0.3
        ),
        _row("flux-dev/compile", "taylorseer:target=blocks", status="error"),
        _row("flux-dev/compile", "baseline", recompiles=0),
        _row("flux-dev/eager", "taylorseer:target=blocks", steps=28, speedup=9.0, compute_ratio=1.0),
    ]
    kernel = {
        "kernel": "weighted_sum",
        "k": 3,
        "backend": "triton",
        "gb_per_s": 4000.0,
        "copy_gb_per_s": 4300.0,
    }
    result = {"rows": [{**kernel, "fraction_of_copy": 0.93, "speedup_vs_torch": 1.5}]}
    rows.append(
        {"key": "k", "part": "kernels", "dtype": "bf16", "size_mb": 64.0, "status": "ok", "result": result}
    )
    checks = {(c["check"], c["subject"]): c for c in report.acceptance(rows, "flux-dev", 50, 64.0)}
    blocks = checks[("speedup >= 0.95 x compute (blocks)", "flux-dev/eager/50 taylorseer:target=blocks")]
    assert blocks["status"] == "PASS" and blocks["value"] == pytest.approx(3.0 / 3.1)
    modules = checks[("speedup >= 0.85 x compute (modules)", "flux-dev/eager/50 taylorseer:target=modules")]
    assert modules["status"] == "FAIL" and modules["value"] == pytest.approx(0.8)
    assert (
        checks[("blocks cache < 2% of weights", "flux-dev/eager/50 taylorseer:target=blocks")]["status"]
        == "PASS"
    )
    failed = checks[("speedup >= 0.95 x compute (blocks)", "flux-dev/compile/50 taylorseer:target=blocks")]
    assert failed["status"] == "MISSING"
    assert checks[("0 recompiles per step", "flux-dev/compile/50 baseline")]["status"] == "PASS"
    assert not any(subject.startswith("flux-dev/eager/28") for _, subject in checks)  # 50 steps only
    subject = "kernels bf16 64 MB weighted_sum K=3"
    assert checks[("kernel >= 85% of copy bandwidth", subject)]["status"] == "PASS"
    assert checks[("kernel >= 2x eager (K >= 3)", subject)]["status"] == "FAIL"


def test_partial_event_lines_wait_for_their_end(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event": "ready"}\n{"event": "ro')
    events, offset = run._read_events(path, 0)
    assert events == [{"event": "ready"}] and offset == len(b'{"event": "ready"}\n')
    with path.open("ab") as handle:
        handle.write(b'w", "key": "k"}\n')
    assert run._read_events(path, offset)[0] == [{"event": "row", "key": "k"}]


DRY = ["--dry-run", "--flux-steps", "6", "4", "--wan-steps", "4", "--repeats", "2"]
WAN = ["wan2.1-1.3b/eager/4/baseline", "wan2.1-1.3b/eager/4/taylorseer:target=blocks"]
FLUX_METHODS = ["baseline", "taylorseer:target=blocks", "taylorseer:target=modules", "cachedit.dbcache"]


def test_dry_run_writes_a_row_per_planned_measurement_and_the_acceptance_lines(tmp_path, capsys):
    only = ["kernels/*/0.25MB", *(f"flux-dev/eager/6/{m}" for m in FLUX_METHODS), *WAN]
    assert run.main(["--out", str(tmp_path), *DRY, "--isolate", "none", "--only", *only]) == 0
    doc = json.loads((tmp_path / "gpu-report.json").read_text())
    assert set(report.SCHEMA_KEYS) <= set(doc) and doc["complete"] is True
    planned = [r["key"] for r in doc["rows"]]
    assert planned == [
        "kernels/bf16/0.25MB", "kernels/fp32/0.25MB",
        *(f"flux-dev/eager/6/{m}" for m in FLUX_METHODS),
        *WAN,
    ]  # fmt: skip
    assert all(r["status"] == "ok" for r in doc["rows"]), [(r["key"], r["error"]) for r in doc["rows"]]
    rows = {r["key"]: r["result"] for r in doc["rows"]}
    base, blocks = rows["flux-dev/eager/6/baseline"], rows["flux-dev/eager/6/taylorseer:target=blocks"]
    assert len(base["loop_s_all"]) == 2 and base["speedup"] == 1.0 and base["flops_ratio"] == 1.0
    # 6 steps, warm-up 3, cool-down 1, every 5th: steps 0-3 and 5 computed, step 4 forecast
    assert blocks["compute_ratio"] == pytest.approx(6 / 5) and blocks["flops_ratio"] > 1.0
    info = doc["parts"]["flux-dev/eager"]["info"]
    assert blocks["cache_fraction"] == pytest.approx(blocks["cache_bytes"] / info["weight_bytes"])
    dbcache = rows["flux-dev/eager/6/cachedit.dbcache"]  # cache-dit on the bare transformer
    assert dbcache["compute_source"] == "transformer FLOPs" and dbcache["compute_ratio"] >= 1.0
    kernels = rows["kernels/fp32/0.25MB"]["rows"]
    assert {k["kernel"] for k in kernels} == {
        "weighted_sum",
        "guarded_weighted_sum",
        "taylor_update_",
        "relative_l1",
    }
    assert {k["k"] for k in kernels} == {1, 3, 5} and {k["backend"] for k in kernels} == {"torch"}
    text = (tmp_path / "gpu-report.md").read_text()
    for check in doc["acceptance"]:
        assert f"- {check['status']} {check['check']}: {check['subject']}: {check['text']}" in text
    subjects = {(c["check"], c["subject"]) for c in doc["acceptance"]}
    assert ("speedup >= 0.95 x compute (blocks)", "flux-dev/eager/6 taylorseer:target=blocks") in subjects
    assert ("speedup >= 0.85 x compute (modules)", "flux-dev/eager/6 taylorseer:target=modules") in subjects
    assert (
        "kernels >= 85% of copy bandwidth",
        "kernels bf16 0.25 MB",
    ) in subjects  # MISSING: no Triton on CPU
    assert (
        "acceptance: " in text and "### flux-dev/eager, 6 steps" in text and "not selected by --only" in text
    )
    assert "plan: 8 measurements in 3 parts" in capsys.readouterr().out


def test_a_worker_process_runs_a_part_and_is_killed_when_it_overruns(tmp_path, monkeypatch):
    argv = ["--out", str(tmp_path / "ok"), *DRY, "--only", "kernels/fp32/0.25MB"]
    assert run.main(argv) == 0
    doc = json.loads((tmp_path / "ok" / "gpu-report.json").read_text())
    assert [(r["key"], r["status"]) for r in doc["rows"]] == [("kernels/fp32/0.25MB", "ok")]
    assert doc["parts"]["kernels"]["status"] == "done" and doc["parts"]["kernels"]["attempts"] == 1
    # a worker that does not get ready in time is killed, twice more retried, then given up
    monkeypatch.setattr(run, "SETUP_SLACK_S", 0.0)
    monkeypatch.setattr(run, "CPU_COST", dataclasses.replace(run.CPU_COST, process_s=0.01))
    argv = ["--out", str(tmp_path / "killed"), *DRY, "--only", "kernels/fp32/0.25MB"]
    assert run.main(argv) == 0
    doc = json.loads((tmp_path / "killed" / "gpu-report.json").read_text())
    assert [(r["key"], r["status"]) for r in doc["rows"]] == [("kernels/fp32/0.25MB", "not-run")]
    assert doc["parts"]["kernels"]["attempts"] == run.MAX_ATTEMPTS
    log = (tmp_path / "killed" / "gpu-run.log").read_text()
    assert log.count("worker killed: set-up took over 0 s") == run.MAX_ATTEMPTS


def test_profile_measures_cache_dit_on_the_bare_transformer_after_diffusers_peers():
    from forecache.eval.profile import ProfileConfig, profile

    methods = ("cachedit.dbcache", "diffusers.fbcache")
    config = ProfileConfig("flux-dev", "tiny", steps=4, dtype="float32", methods=methods, warmup=0, repeats=2)
    rows = profile(config).rows
    assert [r.label for r in rows] == ["baseline", "diffusers.fbcache", "cachedit.dbcache"]
    assert all(r.error is None and len(r.loop_s_all) == 2 for r in rows), [r.error for r in rows]
    assert rows[2].compute_source == "transformer FLOPs" and rows[2].flops_ratio == rows[2].compute_ratio
