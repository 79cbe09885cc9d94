import json
import math

import numpy as np
import pytest
import torch

import forecache
from forecache.eval import BenchConfig, bench
from forecache.eval.methods import parse_method
from forecache.eval.report import format_table
from tests.fixtures.sampler import TinyPipeline, register_tiny_source

register_tiny_source()

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
    assert result.complete and result.match is None
    assert base.label == "baseline" and base.compute_ratio == 1.0 and base.skips_nothing
    assert math.isinf(base.psnr_db) and base.ssim == pytest.approx(1.0)
    # 8 steps, warm-up 3, interval 2, cool-down 1: steps 0-3, 5, 7 computed -> 8 / 6 per branch
    assert ts.decisions == {"cond": ["CCCCFCFC"], "uncond": ["CCCCFCFC"]}
    assert ts.execution_ratio == pytest.approx(8 / 6) and ts.execution_unit == "block"
    # FLOPs: the blocks skip, the embedders and the output projection still run at forecast steps
    assert 1.2 < ts.compute_ratio < 8 / 6
    # per call (cond, uncond per step): forecast steps 4 and 6 run under 1% of the linear FLOPs
    assert [f > 0.99 for f in ts.call_flops_fraction] == [True] * 8 + [False, False, True, True] * 2
    assert max(ts.call_flops_fraction[8:10]) < 0.01
    assert ts.cache_bytes > 0 and ts.fallbacks == 0 and 0 < ts.psnr_db < math.inf
    assert len(ts.psnr_db_per_sample) == 2 and ts.speedup_loop["median"] > 0
    assert "gate_errors" in cg.info and cg.compute_ratio >= 1.0
    assert fb.kind == "peer" and fb.execution_ratio is None and fb.cache_bytes is None
    # random weights: the first block's residual changes a lot, so FirstBlockCache never skips
    assert fb.compute_ratio == pytest.approx(1.0) and fb.skips_nothing
    assert [v[0] for v in fb.decisions.values()] == ["CCCCCCCC", "CCCCCCCC"]
    table = format_table(result)
    assert "not shown: diffusers.fbcache:threshold=0.3 skipped nothing at its settings (1.00x)" in table
    assert not any(line.startswith("diffusers.fbcache") for line in table.splitlines())

    doc = _strict(tmp_path / "results.json")
    assert doc["schema_version"] == 3 and doc["kind"] == "bench" and doc["complete"] is True
    assert [m["label"] for m in doc["methods"]] == [r.label for r in result.methods]
    assert doc["methods"][0]["psnr_db"] == "inf"
    assert doc["methods"][1]["params"]["interval"] == 2 and doc["methods"][1]["call_s"]["samples"]
    assert doc["notes"]["fid"].startswith("not computed: 2 samples per method < 64")
    assert doc["methods"][0]["fid"] is None
    assert doc["methods"][0]["lpips"] is None and doc["notes"]["lpips"].startswith("unavailable")
    report = (tmp_path / "report.md").read_text()
    assert "| taylorseer:interval=2,order=1,target=blocks | as given |" in report and "CCCCFCFC" in report
    names = {p.name for p in tmp_path.iterdir()}
    assert {"results.json", "report.md", "grid.png", "heatmaps.png", "decisions.txt", "run.json"} <= names
    assert {"rows", "outputs", "pareto.png", "timeline.png"} <= names
    assert len(list((tmp_path / "rows").glob("*.json"))) == 4
    assert "CCCCFCFC" in (tmp_path / "decisions.txt").read_text()
    # every row's outputs are on disk and read back (8-bit) on demand
    assert ts.images_file is not None and np.abs(ts.images - ts.images).max() == 0
    assert ts.images.shape == (2, 16, 16, 1)


def test_execution_ratio_equals_forecache_stats_on_the_tiny_pipeline():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    result = bench(model=pipe, methods=["ab:interval=2", "taylorseer:interval=3,order=1"], **FAST)
    for row in result.methods[1:]:
        assert row.ok, row.error
        with forecache.cached(pipe, parse_method(row.label).config):
            pipe(num_inference_steps=8, batch_size=2, generator=torch.Generator().manual_seed(0))
            stats = forecache.stats(pipe)
        assert row.execution_ratio == pytest.approx(stats.compute_ratio) and row.execution_ratio > 1.0
        assert 1.0 < row.compute_ratio <= row.execution_ratio + 1e-9


def test_a_peer_that_cannot_run_is_reported_with_its_error():
    pipe = TinyPipeline.from_tiny("DiTTransformer2DModel")  # no diffusers CacheMixin
    result = bench(model=pipe, methods=["diffusers.fbcache", "taylorseer:interval=2"], **FAST)
    base, fb, ts = result.methods
    assert fb.status == "error" and "enable_cache" in fb.error and fb.psnr_db is None
    assert base.ok and ts.ok and ts.compute_ratio > 1.0
    # the failed peer left nothing behind: the baseline is reproduced bitwise afterwards
    assert (bench(model=pipe, methods=[], **FAST).methods[0].images == base.images).all()


@pytest.mark.parametrize(
    ("fields", "pieces"),
    [
        ({"steps": 0}, ["steps", "int >= 1", "0"]),
        ({"seeds": ()}, ["seeds", "non-empty"]),
        ({"seeds": (1, 1)}, ["seeds", "distinct"]),
        ({"dtype": "float64"}, ["dtype", "float32", "'float64'"]),
        ({"batch_size": 1.5}, ["batch_size", "int >= 1", "1.5"]),
        ({"methods": ("taylorseer:interval=-1",)}, ["interval", "int >= 1", "-1"]),
        ({"methods": ("ab", "ab")}, ["distinct labels", "'ab'"]),
        ({"device": "gpu"}, ["device", "'gpu'"]),
        ({"repeats": -1}, ["repeats", "int >= 0", "-1"]),
        ({"match": (2, 0.5)}, ["match", "numbers > 1", "0.5"]),
        ({"match": ("x",)}, ["match", "numbers > 1", "'x'"]),
        ({"tolerance": 1.5}, ["tolerance", "(0, 1)", "1.5"]),
        ({"methods": ("taylorseer:interval=4",), "match": (2,)}, ["`interval` is what the harness tunes"]),
        ({"methods": ("cache:mask=CCFC",), "match": (2,)}, ["StepMask has no knob to match"]),
        ({"output": "video"}, ["output", "'images'", "'video'"]),
    ],
)
def test_bad_settings_name_the_field(fields, pieces):
    with pytest.raises(ValueError) as info:
        BenchConfig(**fields)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


def test_prompts_are_refused_for_class_conditional_models(flux_pipe):
    with pytest.raises(
        ValueError,
        match=r"`prompts` must be None for the digits models \(they take class labels\), got .drawbench.",
    ):
        bench(model=flux_pipe, prompts="drawbench", methods=[], **FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_refused_by_the_config():
    with pytest.raises(ValueError, match=r"`device` 'cuda' is not available here \(torch .*\); use 'cpu'"):
        BenchConfig(device="cuda")


def test_resume_must_write_into_its_own_folder(tmp_path):
    with pytest.raises(ValueError, match="`out` must be None or the `resume` folder"):
        BenchConfig(resume=str(tmp_path / "a"), out=str(tmp_path / "b"))


def test_an_unwritable_out_fails_before_anything_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="`out` must be a writable folder"):
        bench(model="tiny:FluxTransformer2DModel", methods=["ab"], out=str(blocker / "run"), **FAST)
