import json

import pytest

import forecache
from forecache.eval import methods
from forecache.eval.methods import load_methods, make_method, parse_method, save_methods


def test_preset_with_overrides():
    spec = parse_method("taylorseer:interval=5,order=2")
    assert spec.kind == "forecache" and spec.label == "taylorseer:interval=5,order=2"
    assert spec.config == forecache.TaylorSeerConfig(interval=5, order=2)


def test_aliases_and_float_fields():
    assert parse_method("ab:order=3").config == forecache.AdamsBashforthConfig(order=3)
    assert parse_method("cg:threshold=1").config == forecache.ConfidenceGateConfig(threshold=1.0)
    assert parse_method("confidence-gate:threshold=0.2").config == forecache.ConfidenceGateConfig(
        threshold=0.2
    )
    assert parse_method("taylorseer:coordinate=timestep").config.forecaster.coordinate == "timestep"


def test_general_cache_form_routes_flat_keys():
    spec = parse_method(
        "cache:policy=gate,threshold=0.2,max_consecutive=2,forecaster=ab,order=3,target=output"
    )
    assert spec.config == forecache.CacheConfig(
        policy=forecache.ConfidenceGate(threshold=0.2, max_consecutive=2),
        forecaster=forecache.AdamsBashforth(order=3),
        target="output",
    )
    mask = parse_method("cache:policy=mask,mask=CCFCF,forecaster=reuse").config
    assert mask.policy == forecache.StepMask((True, True, False, True, False))
    assert mask.forecaster == forecache.Reuse()


def test_peers_and_baseline():
    assert parse_method("baseline").kind == "baseline"
    fb = parse_method("diffusers.fbcache:threshold=0.1")
    assert fb.kind == "peer" and fb.params == {"threshold": 0.1} and fb.config is None


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("taylorseer:interval=0", ["interval", "int >= 1", "0"]),
        ("taylorseer:order=9", ["order", "[0, 8]", "9"]),
        ("taylorseer:interval=abc", ["interval", "int >= 1", "'abc'"]),
        ("cg:threshold=-1", ["threshold", "float in (0.0, 10.0]", "-1"]),
        ("taylorseer:intervl=5", ["intervl", "interval", "5"]),
        ("taylorseer:target=everything", ["target", "modules", "'everything'"]),
        ("teacache", ["method", "taylorseer", "'teacache'"]),
        ("taylorseer:interval", ["key=value", "interval"]),
        ("diffusers.fbcache:tresh=1", ["tresh", "threshold"]),
        ("cache:policy=sometimes", ["policy", "interval", "'sometimes'"]),
        ("cache:mask=CX", ["mask", "C/F", "CX"]),
        ("baseline:x=1", ["baseline", "no parameters"]),
    ],
)
def test_bad_specs_name_the_field_the_allowed_values_and_the_value(text, pieces):
    with pytest.raises((ValueError, TypeError)) as info:
        parse_method(text)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


def _specs():
    return [
        parse_method("taylorseer:interval=4,order=1,target=blocks"),
        parse_method("ab:order=3"),
        parse_method("cg:threshold=0.2"),
        parse_method("cache:policy=mask,mask=CCFCFC,forecaster=taylor,order=2,history_dtype=float32"),
        parse_method("cache:policy=gate,threshold=0.3,forecaster=reuse"),
        parse_method("diffusers.magcache:threshold=0.1"),
    ]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_file_round_trip(tmp_path, suffix):
    if suffix == ".yaml":
        pytest.importorskip("yaml")
    specs = _specs()
    path = save_methods(specs, tmp_path / f"methods{suffix}")
    back = load_methods(path)
    assert back == specs
    assert [s.config for s in back] == [s.config for s in specs]


def test_config_file_forms(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"method": "taylorseer", "params": {"interval": 3}, "label": "ts3"}))
    (spec,) = load_methods(path)
    assert spec.label == "ts3" and spec.config == forecache.TaylorSeerConfig(interval=3)
    path.write_text(json.dumps(["ab:order=2", {"method": "cg"}]))
    assert [s.name for s in load_methods(path)] == ["ab", "cg"]


def test_config_file_errors_name_the_file_entry_and_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": 1, "methods": [{"method": "ab", "params": {"order": 0}}]}))
    with pytest.raises(
        ValueError, match=r"bad.json: methods\[0\]: .*`order` must be an int in \[1, 8\], got 0"
    ):
        load_methods(path)
    path.write_text(json.dumps({"schema_version": 99, "methods": []}))
    with pytest.raises(ValueError, match=r"schema_version.*99"):
        load_methods(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_methods(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_methods(tmp_path / "missing.json")


def test_method_names_lists_presets_and_peers():
    names = methods.method_names()
    assert names[:7] == ["baseline", "taylorseer", "ab", "cg", "timeline", "cache", "tuned"]
    assert {"diffusers.taylorseer", "diffusers.fbcache", "diffusers.magcache", "cachedit.dbcache"} <= set(
        names
    )
    assert make_method("AB").name == "ab"


def test_a_peer_is_one_registered_object_that_bench_runs_by_name(flux_pipe, tmp_path):
    """A peer defined outside the package: fields, attach/detach, knob and style in one object."""
    from dataclasses import dataclass

    from forecache.eval import bench
    from forecache.eval.methods import METHODS, Knob, Method, Style, refuse_unknown, register_method

    @dataclass(frozen=True)
    class SkipEveryOther(Method):
        """Reuses the transformer's last output at every other call (a toy cache)."""

        def build(self, params):
            refuse_unknown(self.name, params, ["every"])
            return {"every": 2, **params}, None

        def attach(self, spec, cache_target, peer_target, run, scheduler):
            transformer, calls, last = peer_target.transformer, [0], []

            def forward(*args, **kwargs):
                calls[0] += 1
                if last and calls[0] % spec.params["every"] == 0:
                    return last[0]
                last[:] = [original(*args, **kwargs)]
                return last[0]

            original = transformer.forward
            transformer.forward = forward
            return lambda: delattr(transformer, "forward")

    method = SkipEveryOther(
        "test.skip",
        "peer",
        "every other call reused",
        Style("#756bb1", "p"),
        lambda config, steps: Knob("every", values=(2, 3, 4)),
    )
    register_method(method)
    try:
        with pytest.raises(
            ValueError,
            match=r"test\.skip: unknown field .often. in `params`; fields: \[.every.\], got often=2",
        ):
            parse_method("test.skip:often=2")
        result = bench(
            model=flux_pipe,
            methods=["test.skip"],
            match=(),
            steps=4,
            seeds=(0,),
            batch_size=1,
            repeats=0,
            progress=False,
            out=str(tmp_path),
        )
        row = result.methods[1]
        assert (row.method, row.kind, row.params) == ("test.skip", "peer", {"every": 2})
        assert row.compute_ratio == pytest.approx(2.0, rel=0.01)
        assert "forward" not in vars(flux_pipe.transformer)
    finally:
        del METHODS["test.skip"]


def test_the_tuner_method_still_reads_its_former_field_verify():
    assert make_method("tuned", {"verify": 3}).params == {
        "ratio": 4.0,
        "calibration": 4,
        "trials": 3,
        "partial": True,
        "refine": 0,
        "damp": True,
    }
    assert parse_method("tuned:ratio=6,trials=2").params["trials"] == 2


def test_the_tuner_method_takes_refine_rounds():
    assert parse_method("tuned:ratio=6,refine=2").params["refine"] == 2
    with pytest.raises(ValueError, match=r"tuned: `refine` must be an int >= 0, got -1"):
        parse_method("tuned:refine=-1")


def test_the_tuner_method_can_keep_its_chosen_forecaster():
    assert parse_method("tuned:ratio=6,damp=false").params["damp"] is False
    with pytest.raises(ValueError, match=r"tuned: `damp` must be true or false, got 2"):
        parse_method("tuned:damp=2")
