"""Fuzzing the config-file loader, `CacheConfig` and `apply` with generated inputs (hypothesis).

Every input either loads (builds, applies) or fails with a `ValueError` or `TypeError` whose
message names the field (a backquoted name) and the value given ("got ..."); never another
exception, and never a model left hooked. 2500 + 2000 + 600 = 5100 generated inputs per run.
"""

import atexit
import dataclasses
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import forecache
from forecache import configfile
from forecache.accel import presets
from forecache.accel.forecasters import FORECASTERS
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.accel.policies import POLICIES
from forecache.accel.session import session_of
from forecache.layouts import registry

EXAMPLES = {"files": 2500, "configs": 2000, "apply": 600}
FOLDER = Path(tempfile.mkdtemp(prefix="forecache-fuzz-"))
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
NAMED = re.compile(r"`[^`]+`")

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-2, 2), max_size=2),
)
plausible = st.one_of(
    junk,
    st.integers(-2, 60),
    st.floats(-1.0, 60.0),
    st.sampled_from(
        [
            "step",
            "timestep",
            "auto",
            "float16",
            "bfloat16",
            "float32",
            "blocks",
            "modules",
            "output",
            "reuse",
            "recompute",
            "CCFCFC",
            "CF",
            "10",
            "",
            "taylor",
            "gate",
        ]
    ),
    st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), max_size=5),
    st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, float("nan"), float("inf")]), max_size=5),
)
PRESET_NAMES = [
    *presets.PRESETS,
    *(alias for preset in presets.PRESETS.values() for alias in preset.aliases),
    "TaylorSeer",
    "tuned",
    "baseline",
    "diffusers.fbcache",
]


def fields_of(cls):
    """The fields of a policy or forecaster class, or of a preset (its function's parameters)."""
    if isinstance(cls, presets.Preset):  # the free-form `cache` preset: CacheConfig's own fields
        parameters = cls.parameters.items()
        return {name: p.default is p.empty for name, p in parameters} or fields_of(forecache.CacheConfig)
    return {
        f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(cls)
    }


def params_for(cls, unknown=True):
    """Field values of `cls`; with `unknown`, misspelt and missing fields too (a file's, not a call's)."""
    fields = fields_of(cls)
    if unknown:
        return st.dictionaries(
            st.one_of(st.sampled_from(list(fields) or ["x"]), st.text(max_size=5)), plausible, max_size=5
        )
    required = [name for name, needed in fields.items() if needed]
    return st.fixed_dictionaries(
        dict.fromkeys(required, plausible),
        optional={name: plausible for name in fields if name not in required},
    )


def axis(registry_, default_names):
    def spec(name):
        return params_for(registry_.get(name)).map(lambda p: {"type": name, **p})

    typed = st.sampled_from(registry_.names()).flatmap(spec)
    return st.one_of(typed, st.sampled_from([*registry_.names(), *default_names]), junk)


@st.composite
def entries(draw):
    method = draw(st.one_of(st.sampled_from(PRESET_NAMES), junk))
    canonical = presets.canonical_name(method) if isinstance(method, str) else None
    if canonical == "cache":
        params = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "policy": axis(POLICIES, ["mask", "nope"]),
                        "forecaster": axis(FORECASTERS, ["nope"]),
                        "target": plausible,
                        "history_dtype": plausible,
                        "fallback_margin": plausible,
                        "fallback": plausible,
                        "threshold": plausible,
                        "mask": plausible,
                        "order": plausible,
                        "every": plausible,
                    },
                ),
                junk,
            )
        )
    elif canonical in presets.PRESETS:
        params = draw(st.one_of(params_for(presets.PRESETS[canonical]), junk))
    else:
        params = draw(st.one_of(st.dictionaries(st.text(max_size=5), plausible, max_size=3), junk))
    entry = {"method": method}
    if draw(st.booleans()):
        entry["params"] = params
    if draw(st.booleans()):
        entry["label"] = draw(st.one_of(st.text(max_size=12), junk))
    return entry


documents = st.one_of(
    entries(),
    st.lists(st.one_of(entries(), junk, st.just("taylorseer:interval=3")), max_size=3),
    st.fixed_dictionaries(
        {"methods": st.one_of(st.lists(st.one_of(entries(), junk), max_size=3), junk)},
        optional={"schema_version": st.one_of(st.just(1), junk)},
    ),
    junk,
)


def check_refusal(err, what):
    """Only ValueError/TypeError, naming the field and the value given."""
    assert type(err) in (ValueError, TypeError, forecache.UnsupportedModelError), (what, repr(err))
    message = str(err)
    assert NAMED.search(message) and "got" in message, (what, message)


def write(doc, counter=[0]):  # noqa: B006 (a per-process file counter)
    counter[0] += 1
    path = FOLDER / f"config-{counter[0] % 64}.json"
    path.write_text(json.dumps(doc))
    return path


@settings(max_examples=EXAMPLES["files"], deadline=None, suppress_health_check=list(HealthCheck))
@given(documents)
@example({"method": []})  # found by this test: a list as the method name crashed on hashing
@example([{"method": {"a": 1}}])
def test_config_files_load_or_fail_naming_the_field(doc):
    path = write(doc)
    try:
        config = configfile.load_config(path)
    except Exception as err:
        check_refusal(err, doc)
    else:
        assert isinstance(config, forecache.CacheConfig)
    try:
        from forecache.eval.methods import load_methods
    except ImportError:  # the eval extra (absent from the floor run)
        return
    try:
        load_methods(path)
    except Exception as err:
        check_refusal(err, doc)


def build(cls, params):
    return cls.function(**params) if isinstance(cls, presets.Preset) else cls(**params)


policies = st.sampled_from(POLICIES.names()).flatmap(
    lambda name: params_for(POLICIES.get(name), False).map(lambda p, n=name: (POLICIES.get(n), p))
)
forecasters = st.sampled_from(FORECASTERS.names()).flatmap(
    lambda name: params_for(FORECASTERS.get(name), False).map(lambda p, n=name: (FORECASTERS.get(n), p))
)


@settings(max_examples=EXAMPLES["configs"], deadline=None, suppress_health_check=list(HealthCheck))
@given(
    policy=st.one_of(policies, junk),
    forecaster=st.one_of(forecasters, junk),
    top=params_for(forecache.CacheConfig, False).filter(lambda p: not {"policy", "forecaster"} & set(p)),
    preset=st.sampled_from(list(presets.PRESETS.values())).flatmap(
        lambda cls: params_for(cls, False).map(lambda p, c=cls: (c, p))
    ),
)
def test_cache_configs_build_or_fail_naming_the_field(policy, forecaster, top, preset):
    try:
        parts = {}
        for name, value in (("policy", policy), ("forecaster", forecaster)):
            parts[name] = build(*value) if isinstance(value, tuple) else value
        forecache.CacheConfig(**parts, **top)
    except Exception as err:
        check_refusal(err, (policy, forecaster, top))
    try:
        build(*preset)
    except Exception as err:
        check_refusal(err, preset)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(4, 4)

    def forward(self, hidden_states, t):
        return hidden_states + 0.1 * torch.tanh(self.inner(hidden_states))


class FuzzModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([Block() for _ in range(3)])

    def forward(self, hidden_states, timestep, return_dict=False):
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, float(timestep))
        return (hidden_states,)


@pytest.fixture(scope="module")
def model():
    forecache.register_layout(
        "FuzzModel", ModelLayout((BlockListLayout("transformer_blocks", None, None, ("inner",)),))
    )
    yield FuzzModel()
    registry._REGISTRY.pop("FuzzModel")


def hooks_of(module):
    return [
        name
        for sub in module.modules()
        for name in getattr(getattr(sub, "_diffusers_hook", None), "hooks", {})
        if name.startswith("forecache")
    ]


@settings(max_examples=EXAMPLES["apply"], deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents, steps=st.one_of(st.none(), st.integers(-2, 8), junk))
def test_apply_never_leaves_a_model_hooked(model, doc, steps):
    path = write(doc)
    try:
        forecache.apply(model, path, num_inference_steps=steps)
    except Exception as err:
        check_refusal(err, (doc, steps))
        assert session_of(model) is None and hooks_of(model) == [], (doc, steps)
        return
    try:
        with torch.no_grad():
            for i in range(4):
                model(torch.ones(1, 2, 4), torch.tensor(1000.0 - 100 * i))
    finally:
        forecache.remove(model)
    assert session_of(model) is None and hooks_of(model) == []
