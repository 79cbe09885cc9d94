import json

import pytest

import forecache
from forecache import cli
from forecache.eval import BenchConfig
from forecache.eval.sweep import SweepConfig
from forecache.reference import reference_path
from tests.fixtures.sampler import register_tiny_source

register_tiny_source()

TINY = ["--model", "tiny:FluxTransformer2DModel", "--steps", "6", "--seeds", "0-1", "--batch-size", "2"]
QUIET = ["--repeats", "1", "--no-progress", "--threads", "1"]


def test_models_prints_the_registered_classes(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    classes = [line.strip() for line in out if line.startswith("  ")]
    assert classes == forecache.supported_models() and len(classes) == 10
    assert out[0] == "Supported transformer classes (10):"
    assert any(line.startswith("Reference models: flux-digits") for line in out)


def test_models_lays_out_one_model_without_running_it(capsys):
    assert cli.main(["models", "--model", "flux-digits"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "reference model flux-digits:"
    assert out[1] == (
        "FluxTransformer2DModel (transformer): registered; targets blocks,modules,output; "
        "gate probe transformer_blocks.0"
    )
    assert out[2] == "  layout for blocks, modules, output:"
    assert any(
        line.startswith("    transformer_blocks: (hidden_states, encoder_hidden_states)") for line in out
    )


def test_parse_seeds():
    assert cli.parse_seeds("0-3,10") == (0, 1, 2, 3, 10)
    with pytest.raises(ValueError, match=r"`seeds` must be .0-7. \(an increasing.*got .a-b."):
        cli.parse_seeds("a-b")


def test_bench_and_sweep_options_default_to_their_configs():
    """One default per setting: the CLI reads `BenchConfig`'s and `SweepConfig`'s, never a copy."""
    bench = cli.build_parser().parse_args(["bench"])
    config = BenchConfig()
    assert (bench.steps, bench.dtype, bench.device, bench.output) == (28, "float32", "cpu", "images")
    assert (bench.batch_size, bench.warmup, bench.tolerance) == (8, 1, 0.10)
    assert (bench.steps, bench.dtype, bench.device, bench.output, bench.batch_size, bench.warmup) == (
        config.steps,
        config.dtype,
        config.device,
        config.output,
        config.batch_size,
        config.warmup,
    )
    assert bench.tolerance == config.tolerance and cli.parse_seeds(bench.seeds) == config.seeds
    sweep = cli.build_parser().parse_args(["sweep"])
    defaults = SweepConfig()
    assert (sweep.preset, tuple(sweep.grid), sweep.bucket_by, sweep.quality) == (
        defaults.preset,
        defaults.grid,
        defaults.bucket_by,
        defaults.quality,
    )
    assert sweep.bucket_edges == "1.5,2,3,4" and cli.parse_seeds(sweep.seeds) == tuple(range(8))
    assert cli._seeds_text((0, 3, 5)) == "0,3,5" and cli._seeds_text((4,)) == "4"


def test_bench_writes_results_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["bench", *TINY, *QUIET, "--methods", "taylorseer:interval=2", "ab", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.splitlines()[0].split()[:5] == ["row", "setting", "FLOPs", "ratio", "exec"]
    assert any(line.startswith("taylorseer:interval=2  as given") for line in printed.splitlines())
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == 3
    assert [m["label"] for m in doc["methods"]] == ["baseline", "taylorseer:interval=2", "ab"]
    assert doc["settings"]["steps"] == 6 and doc["settings"]["seeds"] == [0, 1]
    assert (out / "report.md").read_text().startswith("# forecache bench")
    assert (out / "grid.png").is_file() and (out / "pareto.png").is_file()


@pytest.mark.skipif(not reference_path("flux-digits").is_dir(), reason="reference weights not trained yet")
def test_bench_defaults_to_the_reference_model(tmp_path, capsys):
    code = cli.main(
        ["bench", "--steps", "4", "--seeds", "0-1", *QUIET, "--methods", "ab", "--out", str(tmp_path)]
    )
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["workload"]["pipeline"] == "FluxDigitsPipeline"
    assert doc["methods"][0]["adherence"] is not None
    assert "reference model flux-digits" in doc["workload"]["model"]


@pytest.mark.parametrize(
    ("argv", "pieces"),
    [
        (["bench", "--steps", "0"], ["`steps` must be an int >= 1, got 0"]),
        (["bench", "--methods", "taylorseer:interval=0"], ["`interval` must be an int >= 1, got 0"]),
        (["bench", "--methods", "fastcache"], ["`method` must be one of", "'fastcache'"]),
        (["bench", "--dtype", "fp8"], ["`dtype` must be one of", "'fp8'"]),
        (["bench", "--config", "/nonexistent.json"], ["cannot read"]),
        (["sweep", "--grid", "interval=3:1"], ["interval", "3:1"]),
        (["bench", "--seeds", "x"], ["`seeds`"]),
        (["bench", "--model", "/no/such/model", "--methods", "ab"], ["`model` must be", "/no/such/model"]),
    ],
)
def test_bad_input_exits_2_with_the_field(argv, pieces, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for piece in pieces:
        assert piece in err, (piece, err)


def test_sweep_then_bench_config(tmp_path, capsys):
    out = tmp_path / "sweep"
    grid = ["--grid", "interval=2:3", "--bucket-by", "compute_ratio", "--bucket-edges", "1.2,1.5"]
    assert cli.main(["sweep", *TINY, *QUIET, *grid, "--out", str(out)]) == 0
    configs = sorted(out.glob("best_*.json"))
    assert configs, capsys.readouterr().out
    capsys.readouterr()
    assert cli.main(["bench", *TINY, *QUIET, "--config", str(configs[0]), "--out", str(tmp_path / "b")]) == 0
    assert "sweep best" in capsys.readouterr().out
