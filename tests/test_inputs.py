"""Bad inputs fail before anything runs, naming the field (or file and entry), what is allowed, the value."""

import json
import math

import pytest
import torch

import forecache
from forecache import configfile
from forecache.accel.policies import Timeline
from forecache.accel.session import session_of
from tests.fixtures.catalog import build_tiny


@pytest.mark.parametrize(
    "positions", [(0.0, math.nan, 1.0), (0.0, 0.5, math.nan), (math.nan,), (0.0, math.inf)]
)
def test_timeline_positions_must_be_finite(positions):
    with pytest.raises(ValueError) as raised:
        Timeline(positions=positions, steps=10)
    message = str(raised.value)
    assert "`positions` must increase strictly from 0.0 to at most 1.0 (finite numbers)" in message
    assert f"got {positions!r}" in message


def _file(tmp_path, doc):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("doc", "error", "words"),
    [
        (
            {"methods": [{"method": "taylorseer", "params": [["interval", 3]]}]},
            TypeError,
            ["methods[0]", "`params` must be a mapping of field names to values", "got [['interval', 3]]"],
        ),
        ({"methods": 3}, TypeError, ["`methods`", "must be a list of entries, got 3"]),
        (
            {"methods": [{"method": "taylorseer", "label": 7, "params": {}}]},
            TypeError,
            ["methods[0]", "`label` must be a non-empty string, got 7"],
        ),
        (
            {"methods": [{"method": "cache", "params": {"policy": {"type": "timeline", "steps": 8}}}]},
            ValueError,
            ["methods[0]", "Timeline: field `positions` is required, got only ['steps']"],
        ),
        (
            {"methods": [{"method": "cache", "params": {"policy": {"type": ["gate"]}}}]},
            ValueError,
            ["methods[0]", "`policy` must be one of ['gate'", "got ['gate']"],
        ),
        ({"methods": [{"method": "nothing"}]}, ValueError, ["`method` is one of", "got methods ['nothing']"]),
    ],
)
def test_config_files_name_the_file_the_entry_and_the_field(tmp_path, doc, error, words):
    path = _file(tmp_path, doc)
    with pytest.raises(error) as raised:
        configfile.load_config(path)
    assert all(word in str(raised.value) for word in [str(path), *words]), str(raised.value)
    if doc.get("methods") != [{"method": "nothing"}]:  # the bench's reader says the same
        from forecache.eval.methods import load_methods

        with pytest.raises(error) as raised:
            load_methods(path)
        assert all(word in str(raised.value) for word in [str(path), *words[1:]]), str(raised.value)


@pytest.mark.parametrize(
    ("steps", "error"), [("3", TypeError), (2.5, TypeError), (0, ValueError), (True, TypeError)]
)
def test_apply_checks_num_inference_steps_before_hooking(steps, error):
    model = build_tiny("FluxTransformer2DModel").model
    with pytest.raises(error) as raised:
        forecache.apply(model, forecache.TaylorSeerConfig(), num_inference_steps=steps)
    assert str(raised.value).startswith(f"apply: `num_inference_steps` must be an int >= 1, got {steps!r}")
    assert session_of(model) is None


@pytest.mark.parametrize("text", ["0-3,9-7", "5-4"])
def test_seeds_refuse_a_backwards_range(text):
    from forecache.cli import parse_seeds

    with pytest.raises(ValueError) as raised:
        parse_seeds(text)
    message = str(raised.value)
    assert "`seeds` must be '0-7' (an increasing inclusive range)" in message and f"got {text!r}" in message
    assert parse_seeds("0-3,9") == (0, 1, 2, 3, 9)


def test_a_sweep_grid_is_sized_before_its_values_are_built():
    from forecache.eval.sweep import SweepConfig, parse_grid

    with pytest.raises(
        ValueError, match=r"`grid` axis `threshold` must have at most 256 values, got threshold="
    ):
        parse_grid(("threshold=0:1:1e-6",))  # a million values: never built
    with pytest.raises(ValueError, match=r"`grid` must have at most 256 points, got 9000 \(20 x 9 x 50 from"):
        SweepConfig(grid=("interval=1:20", "order=0:8", "warmup=1:50"))
    with pytest.raises(ValueError, match=r"must have finite a <= b and step > 0, got x='0:1:nan'"):
        parse_grid(("x=0:1:nan",))


@pytest.mark.parametrize("edges", [(1.5, math.nan), (2.0, math.inf), (math.nan,), ("x",)])
def test_bucket_edges_must_be_finite(edges):
    from forecache.eval.sweep import SweepConfig

    with pytest.raises(ValueError) as raised:
        SweepConfig(bucket_edges=edges)
    assert f"`bucket_edges` must be increasing finite numbers > 1, got {edges!r}" in str(raised.value)


def test_a_bad_config_file_leaves_the_model_unhooked(tmp_path):
    model = build_tiny("FluxTransformer2DModel").model
    path = _file(tmp_path, {"methods": [{"method": "taylorseer", "params": {"interval": float("nan")}}]})
    with pytest.raises(
        TypeError, match=r"methods\[0\]: TaylorSeerConfig: `interval` must be an int >= 1, got nan"
    ):
        forecache.apply(model, path)
    assert session_of(model) is None
    out = model(**build_tiny("FluxTransformer2DModel").make_inputs(1, torch.Generator().manual_seed(0)),
                timestep=torch.tensor([0.5]), return_dict=False)[0]  # fmt: skip
    assert torch.isfinite(out).all()
