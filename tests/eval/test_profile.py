"""Tests of `forecache profile`: the shipped architecture configs, input shapes and tiny CPU profiles."""

from __future__ import annotations

import json

import pytest
import torch

import forecache
from forecache import cli
from forecache.eval.arch import arch_names, load_arch
from forecache.eval.profile import NOTE, ProfileConfig, _denoise, _scheduler

PUBLISHED = {  # parameters of the published checkpoints
    "flux-dev": 11.9e9,
    "wan2.1-1.3b": 1.42e9,
    "wan2.1-14b": 14.0e9,
    "hunyuan-video": 12.8e9,
    "dit-xl-2": 675e6,
}


def test_every_required_arch_is_shipped():
    assert set(PUBLISHED) <= set(arch_names())


@pytest.mark.parametrize("name", arch_names())
def test_arch_config_is_accepted_and_matches_the_published_size(name):
    arch = load_arch(name)
    arch.check_signature()
    count = arch.param_count("full")  # meta device: nothing is allocated
    expected = PUBLISHED.get(name, arch.published_params)
    assert abs(count / expected - 1) < 0.05, f"{name}: {count / 1e9:.3f}B vs {expected / 1e9:.3f}B"
    assert arch.param_count("tiny") < 1_000_000


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("flux-dev", (1024, 1024, 1), {"latents": [1, 4096, 64], "encoder_hidden_states": [1, 512, 4096]}),
        (
            "wan2.1-1.3b",
            (480, 832, 81),
            {"latents": [1, 16, 21, 60, 104], "encoder_hidden_states": [1, 512, 4096]},
        ),
        (
            "hunyuan-video",
            (720, 1280, 129),
            {"latents": [1, 16, 33, 90, 160], "pooled_projections": [1, 768]},
        ),
        ("dit-xl-2", (256, 256, 1), {"latents": [1, 4, 32, 32], "class_labels": [1]}),
    ],
)
def test_full_size_input_shapes_follow_the_pipelines(name, size, expected):
    arch = load_arch(name)
    inputs = arch.make_inputs(
        arch.model_config("full"),
        "full",
        *size,
        device="meta",
        dtype=torch.bfloat16,
        generator=torch.Generator(),
    )
    for key, shape in expected.items():
        assert inputs.shapes[key] == shape, (key, inputs.shapes)


def _stats_ratio(name: str, config: object, steps: int) -> float:
    """forecache.stats' compute ratio of one tiny trajectory, measured outside the profiler."""
    arch = load_arch(name)
    model = arch.build("tiny", "cpu", torch.float32)
    defaults = arch.sized("tiny", "defaults")
    inputs = arch.make_inputs(
        arch.model_config("tiny"),
        "tiny",
        defaults["height"],
        defaults["width"],
        defaults["frames"],
        device=torch.device("cpu"),
        dtype=torch.float32,
        generator=torch.Generator().manual_seed(0),
    )
    scheduler = _scheduler(arch)
    with forecache.cached(model, config, scheduler=scheduler), torch.no_grad():
        _denoise(model, arch, inputs, scheduler, steps)
        return forecache.stats(model).compute_ratio


@pytest.mark.parametrize(
    ("name", "methods", "preset", "config"),
    [
        ("flux-dev", ["taylorseer", "diffusers.magcache"], "taylorseer", forecache.TaylorSeerConfig()),
        ("wan2.1-1.3b", ["ab"], "ab", forecache.AdamsBashforthConfig()),
    ],
)
def test_tiny_profile_runs_on_cpu(name, methods, preset, config, tmp_path, capsys):
    out = tmp_path / "profile"
    argv = ["profile", "--arch", name, "--random-weights", "--size", "tiny", "--steps", "8", "--warmup", "0"]
    assert cli.main([*argv, "--methods", *methods, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert NOTE in printed and "n/a (CPU)" in printed
    doc = json.loads((out / "profile.json").read_text())
    assert (out / "profile.md").read_text().startswith(printed.splitlines()[0])
    rows = {row["label"]: row for row in doc["rows"]}
    assert next(iter(rows)) == "baseline" and rows["baseline"]["compute_ratio"] == 1.0
    assert all(row["error"] is None for row in rows.values()), rows
    expected = _stats_ratio(name, config, steps=8)
    assert expected > 1.0
    assert rows[preset]["compute_ratio"] == pytest.approx(expected, rel=1e-12)
    assert rows[preset]["cache_bytes"] > 0 and rows[preset]["loop_s"] > 0
    assert rows["baseline"]["syncs_per_step"] is None  # CPU: not measured
    # the preset reads tensor values back twice per trajectory (the schedule's host copy and the
    # clock's check), never per step: a GPU does not wait for the host in the loop
    assert rows["baseline"]["host_reads_per_step"] == 0 and rows[preset]["host_reads_per_step"] == 2 / 8
    if "diffusers.magcache" in rows:
        assert rows["diffusers.magcache"]["compute_source"] == "transformer FLOPs"
        assert rows["diffusers.magcache"]["compute_ratio"] > 1.0


def test_regionally_compiled_profile_never_recompiles_in_the_timed_run(tmp_path):
    argv = ["profile", "--arch", "flux-dev", "--size", "tiny", "--steps", "8", "--compile", "eager"]
    methods = ["taylorseer", "ab", "cg", "diffusers.magcache"]
    assert cli.main([*argv, "--methods", *methods, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "profile.json").read_text())["rows"]
    assert [row["label"] for row in rows] == ["baseline", *methods]
    assert all(row["error"] is None and row["recompiles"] == 0 for row in rows), rows
    assert all(row["compute_ratio"] > 1.0 for row in rows[1:]), rows


def test_bad_arch_names_the_allowed_values(capsys):
    assert cli.main(["profile", "--arch", "flux-schnell-xxl", "--size", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "flux-schnell-xxl" in err
    assert all(name in err for name in arch_names())


@pytest.mark.parametrize(
    ("fields", "pieces"),
    [
        ({"size": "huge"}, ["`size`", "huge"]),
        ({"steps": 1}, ["`steps`", ">= 2"]),
        ({"dtype": "float8"}, ["`dtype`", "float8"]),
        ({"methods": ("nope",)}, ["`method`", "nope"]),
    ],
)
def test_profile_config_names_the_bad_field(fields, pieces):
    with pytest.raises(ValueError) as info:
        ProfileConfig(arch="dit-xl-2", **fields)
    assert all(piece in str(info.value) for piece in pieces), str(info.value)


def test_video_frames_must_fit_the_vae():
    arch = load_arch("wan2.1-1.3b")
    with pytest.raises(ValueError, match=r"`frames` must be 4k\+1.*got 8"):
        arch.make_inputs(
            arch.model_config("tiny"), "tiny", 64, 64, 8, device="cpu", dtype=torch.float32, generator=None
        )
