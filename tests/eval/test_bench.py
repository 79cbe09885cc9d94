import json
import math

import pytest
import torch

import forecache
from forecache.eval import BenchConfig, bench, runner
from forecache.eval.methods import parse_method
from forecache.testing.tiny_pipeline import TinyPipeline

FAST = {"steps": 8, "seeds": (0, 1), "batch_size": 2, "repeats": 1, "progress": False}


def _strict(path):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_bench_on_the_flux_reference_architecture(flux_pipe, tmp_path):
    result = bench(
        model=flux_pipe,
        methods=[
            "taylorseer:interval=2,order=1,target=blocks",
            "cg:threshold=0.5",
            "diffusers.fbcache:threshold=0.3",
        ],
        out=str(tmp_path),
        **FAST,
    )
    base, ts, cg, fb = result.methods
    assert [r.status for r in result.methods] == ["ok"] * 4, [r.error for r in result.methods]
    assert base.label == "baseline" and base.compute_ratio == 1.0 and base.flops_ratio == 1.0
    assert math.isinf(base.psnr_db) and base.ssim == pytest.approx(1.0)
    # 8 steps, warm-up 3, interval 2, cool-down 1: steps 0-3, 5, 7 computed -> 8 / 6 per branch
    assert ts.decisions == {"cond": ["CCCCFCFC"], "uncond": ["CCCCFCFC"]}
    assert ts.compute_ratio == pytest.approx(8 / 6)
    assert ts.compute_ratio_source == "forecache.stats (block executions)"
    assert 1.0 < ts.flops_ratio < ts.compute_ratio + 0.05
    assert ts.cache_bytes > 0 and ts.fallbacks == 0 and 0 < ts.psnr_db < math.inf
    assert len(ts.psnr_db_per_sample) == 2 and ts.speedup_loop["median"] > 0
    assert len(ts.call_flops_fraction) == 16 and ts.call_flops_fraction[:8] == [1.0] * 8
    assert "gate_errors" in cg.info and cg.compute_ratio >= 1.0
    assert fb.kind == "peer" and fb.compute_ratio == fb.flops_ratio and fb.cache_bytes is None
    assert len(fb.decisions["transformer calls, from FLOPs"][0]) == 16

    doc = _strict(tmp_path / "results.json")
    assert doc["schema_version"] == 1 and doc["kind"] == "bench"
    assert [m["label"] for m in doc["methods"]] == [r.label for r in result.methods]
    assert doc["methods"][0]["psnr_db"] == "inf"
    assert doc["methods"][1]["params"]["interval"] == 2 and doc["methods"][1]["call_s"]["samples"]
    assert "NOT Inception" in doc["notes"]["fid"] or "Inception-v3" in doc["notes"]["fid"]
    assert doc["methods"][0]["lpips"] is None and doc["notes"]["lpips"].startswith("unavailable")
    report = (tmp_path / "report.md").read_text()
    assert "| taylorseer:interval=2,order=1,target=blocks | ok | 1.33x |" in report
    assert "CCCCFCFC" in report
    assert {p.name for p in tmp_path.iterdir()} == {
        "results.json",
        "report.md",
        "grid.png",
        "pareto.png",
        "decisions.txt",
    }
    assert "CCCCFCFC" in (tmp_path / "decisions.txt").read_text()


def test_preset_ratio_equals_forecache_stats_on_the_tiny_pipeline():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    result = bench(model=pipe, methods=["ab:interval=2", "taylorseer:interval=3,order=1"], **FAST)
    for row in result.methods[1:]:
        assert row.ok, row.error
        with forecache.cached(pipe, parse_method(row.label).config):
            pipe(num_inference_steps=8, batch_size=2, generator=torch.Generator().manual_seed(0))
            stats = forecache.stats(pipe)
        assert row.compute_ratio == pytest.approx(stats.compute_ratio) and row.compute_ratio > 1.0


def test_a_peer_that_cannot_run_is_reported_with_its_error():
    pipe = TinyPipeline.from_tiny("DiTTransformer2DModel")  # no diffusers CacheMixin
    result = bench(model=pipe, methods=["diffusers.fbcache", "taylorseer:interval=2"], **FAST)
    base, fb, ts = result.methods
    assert fb.status == "error" and "enable_cache" in fb.error and fb.psnr_db is None
    assert base.ok and ts.ok and ts.compute_ratio > 1.0
    # the failed peer left nothing behind: the baseline is reproduced bitwise afterwards
    assert (bench(model=pipe, methods=[], **FAST).methods[0].images == base.images).all()


def test_an_interrupted_run_leaves_no_report(flux_pipe, tmp_path, monkeypatch):
    calls = []
    original = runner.Harness.run

    def interrupted(self, spec):
        calls.append(spec.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, spec)

    monkeypatch.setattr(runner.Harness, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench(model=flux_pipe, methods=["ab"], out=str(tmp_path / "out"), **FAST)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "pieces"),
    [
        ("steps", 0, ["steps", "int >= 1", "0"]),
        ("seeds", (), ["seeds", "non-empty"]),
        ("seeds", (1, 1), ["seeds", "distinct"]),
        ("dtype", "float64", ["dtype", "float32", "'float64'"]),
        ("batch_size", 1.5, ["batch_size", "int >= 1", "1.5"]),
        ("methods", ("taylorseer:interval=-1",), ["interval", "int >= 1", "-1"]),
        ("methods", ("ab", "ab"), ["distinct labels", "'ab'"]),
        ("device", "gpu", ["device", "'gpu'"]),
    ],
)
def test_bad_settings_name_the_field(field, value, pieces):
    with pytest.raises(ValueError) as info:
        BenchConfig(**{field: value})
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


def test_prompts_are_refused_for_class_conditional_models(flux_pipe):
    with pytest.raises(ValueError, match="`prompts` must be None for FluxDigitsPipeline"):
        bench(model=flux_pipe, prompts="drawbench", methods=[], **FAST)
