import json

import pytest

from forecache.eval import SweepConfig, bench, load_methods, sweep
from forecache.eval.sweep import parse_grid

FAST = {"steps": 8, "seeds": (0, 1), "batch_size": 2, "repeats": 1, "progress": False}


def test_parse_grid():
    assert parse_grid(("interval=2:8", "order=0:3")) == {
        "interval": [2, 3, 4, 5, 6, 7, 8],
        "order": [0, 1, 2, 3],
    }
    assert parse_grid(("threshold=0.1:0.3:0.1",)) == {"threshold": [0.1, 0.2, 0.3]}
    assert parse_grid(("order=0,2", "target=blocks")) == {"order": [0, 2], "target": ["blocks"]}


@pytest.mark.parametrize(
    ("kwargs", "pieces"),
    [
        ({"grid": ("interval=8:2",)}, ["interval", "a <= b", "8:2"]),
        ({"grid": ("interval",)}, ["field=a:b", "'interval'"]),
        ({"grid": ("interval=0:2",)}, ["interval", "int >= 1", "0"]),
        ({"preset": "fbcache"}, ["preset", "taylorseer", "'fbcache'"]),
        ({"bucket_by": "time"}, ["bucket_by", "speedup", "'time'"]),
        ({"bucket_edges": (2.0, 1.5)}, ["bucket_edges", "increasing", "(2.0, 1.5)"]),
        ({"grid": ("interval=1:300",)}, ["at most 256", "300"]),
    ],
)
def test_bad_sweeps_name_the_field(kwargs, pieces):
    with pytest.raises(ValueError) as info:
        SweepConfig(**kwargs)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


def test_sweep_writes_best_configs_that_bench_reads(flux_pipe, tmp_path):
    result = sweep(
        model=flux_pipe,
        preset="taylorseer",
        grid=("interval=1:3", "order=1", "target=blocks"),
        bucket_by="compute_ratio",
        bucket_edges=(1.2, 1.4),
        out=str(tmp_path),
        **FAST,
    )
    rows = result.bench.methods
    assert [r.label for r in rows] == [
        "baseline",
        "taylorseer:interval=1,order=1,target=blocks",
        "taylorseer:interval=2,order=1,target=blocks",
        "taylorseer:interval=3,order=1,target=blocks",
    ]
    # 8 steps, warm-up 3, cool-down 1: interval 1, 2, 3 compute 8, 6, 6 steps
    assert [r.execution_ratio for r in rows[1:]] == pytest.approx([1.0, 8 / 6, 8 / 6])
    # linear-layer FLOPs: the embedders and the output projection also run at forecast steps
    assert [r.compute_ratio for r in rows[1:]] == pytest.approx([1.0, 8 / 6, 8 / 6], rel=0.005)
    assert rows[2].compute_ratio < 8 / 6
    assert set(result.best) == {"1-1.2x", "1.2-1.4x"}
    assert result.front_psnr and result.front_psnr[0] == "taylorseer:interval=1,order=1,target=blocks"
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema_version"] == 3 and doc["kind"] == "sweep"
    assert doc["sweep"]["front_psnr"] == result.front_psnr
    assert (tmp_path / "pareto.png").is_file() and "Pareto front" in (tmp_path / "report.md").read_text()

    best = tmp_path / "best_1.2-1.4x.json"
    (spec,) = load_methods(best)
    assert spec == result.best["1.2-1.4x"] and spec.config.target == "blocks"
    again = bench(model=flux_pipe, config_files=(str(best),), **FAST)
    assert [r.label for r in again.methods] == ["baseline", spec.label]
    assert again.methods[1].execution_ratio == pytest.approx(8 / 6)


def test_sweep_takes_a_peer_and_streams_its_rows_to_disk(flux_pipe, tmp_path):
    result = sweep(
        model=flux_pipe,
        preset="cachedit.dbcache",
        grid=("residual_diff_threshold=0.5,4.0", "max_warmup_steps=2"),
        bucket_by="compute_ratio",
        out=str(tmp_path),
        **FAST,
    )
    rows = result.bench.methods
    assert [r.label for r in rows] == [
        "baseline",
        "cachedit.dbcache:residual_diff_threshold=0.5,max_warmup_steps=2",
        "cachedit.dbcache:residual_diff_threshold=4.0,max_warmup_steps=2",
    ]
    assert all(r.ok for r in rows), [r.error for r in rows]
    # a larger threshold never skips less: the FLOPs ratio is monotone in the peer's knob
    assert 1.0 <= rows[1].compute_ratio <= rows[2].compute_ratio and rows[2].compute_ratio > 1.2
    # streamed: each row's outputs are on disk and out of memory, read back on demand
    assert all(r._images is None and r.images_file for r in rows[1:])
    assert rows[2].images.shape == (2, 16, 16, 1)
    assert len(list((tmp_path / "rows").glob("*.json"))) == 3 and (tmp_path / "pareto.png").is_file()
