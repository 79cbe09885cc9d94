"""One table of presets: one registered here, and only here, is usable by name everywhere.

`forecache.apply` (by name and through a config file), the command line's ``bench --methods``
and ``sweep --preset`` all find it in `forecache.accel.presets.PRESETS`, with its fields, their
checks (those of the policy and forecaster it builds) and its knob.
"""

import json
from pathlib import Path

import pytest
import torch

import forecache
from forecache.accel import presets
from forecache.configfile import load_config
from tests.fixtures.sampler import TinyPipeline

STEPS = 8


@forecache.register_preset("test-every-other", aliases=("test-eo",), knob=presets.interval_knob)
def every_other(order: int = 1, warmup: int = 2) -> forecache.CacheConfig:
    """Compute every other step after `warmup` full ones (a preset defined only in this test)."""
    return forecache.CacheConfig(
        policy=forecache.Interval(every=2, warmup=warmup, cooldown=0),
        forecaster=forecache.Taylor(order=order),
        target="blocks",
    )


@pytest.fixture
def pipe():
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def decisions(pipe, config):
    forecache.apply(pipe, config)
    try:
        pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0))
        return "".join(forecache.stats(pipe).contexts["branch0"].decisions)
    finally:
        forecache.remove(pipe)


def test_a_registered_preset_is_applied_by_name_and_from_a_config_file(pipe, tmp_path):
    assert decisions(pipe, "test-every-other") == "CCCFCFCF"
    assert decisions(pipe, "TEST-EO") == "CCCFCFCF"  # an alias, in any case
    path = tmp_path / "every-other.json"
    path.write_text(json.dumps({"methods": [{"method": "test-every-other", "params": {"warmup": 4}}]}))
    assert load_config(path) == every_other(warmup=4)
    assert decisions(pipe, path) == "CCCCCFCF"
    assert presets.preset_named("test-eo").description.startswith("Compute every other step")


def test_its_fields_are_checked_by_what_it_builds_and_named_as_its_own(tmp_path):
    with pytest.raises(ValueError, match=r"every_other: `order` must be an int in \[0, 8\], got 9"):
        every_other(order=9)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"method": "test-every-other", "params": {"interval": 3}}))
    with pytest.raises(ValueError, match=r"methods\[0\]: test-every-other: unknown field 'interval'"):
        load_config(path)
    with pytest.raises(ValueError, match="already registered to"):
        forecache.register_preset("test-every-other")(lambda: forecache.CacheConfig())
    with pytest.raises(ValueError, match="already registered to"):
        forecache.register_preset("other", aliases=("test-eo",))(lambda: forecache.CacheConfig())
    assert "other" not in presets.PRESETS


@pytest.mark.eval
def test_the_cli_benches_and_sweeps_it(tmp_path: Path, capsys):
    from forecache import cli
    from forecache.eval.methods import METHODS, knob_for
    from tests.fixtures.sampler import register_tiny_source

    register_tiny_source()
    assert METHODS["test-every-other"].kind == "forecache"
    assert knob_for("test-every-other", every_other(), STEPS).values == tuple(range(1, STEPS + 1))
    run = ["--model", "tiny:FluxTransformer2DModel", "--steps", str(STEPS), "--seeds", "0",
           "--batch-size", "1", "--no-progress"]  # fmt: skip
    code = cli.main(["bench", *run, "--methods", "test-every-other:warmup=4", "--repeats", "1",
                     "--out", str(tmp_path / "bench")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "bench" / "results.json").read_text())["methods"]
    (row,) = [r for r in rows if r["label"] == "test-every-other:warmup=4"]
    assert "".join(row["decisions"]["branch0"]) == "CCCCCFCF"

    code = cli.main(["sweep", *run, "--preset", "test-every-other", "--grid", "warmup=2,4",
                     "--bucket-by", "compute_ratio", "--out", str(tmp_path / "sweep")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "sweep" / "results.json").read_text())["methods"]
    swept = {r["label"]: "".join(r["decisions"]["branch0"]) for r in rows if r["label"] != "baseline"}
    assert swept == {"test-every-other:warmup=2": "CCCFCFCF", "test-every-other:warmup=4": "CCCCCFCF"}
