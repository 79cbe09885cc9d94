"""Pipelines loaded from a folder: a tiny Wan video pipeline (frames), latents, and what is refused."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from forecache import cli
from tests.fixtures.saved_pipelines import TINY_WAN_CALL, save_tiny_unet_pipeline, save_tiny_wan


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny-wan")


def _video_args(folder):
    call = TINY_WAN_CALL
    return [
        "--model", str(folder), "--steps", "8", "--seeds", "0-1", "--batch-size", "2", "--no-progress",
        "--height", str(call["height"]), "--width", str(call["width"]), "--frames", str(call["frames"]),
        "--guidance-scale", str(call["guidance_scale"]),
    ]  # fmt: skip


def test_match_on_a_saved_tiny_wan_pipeline(wan_folder, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "bench",
        *_video_args(wan_folder),
        "--methods",
        "taylorseer",
        "diffusers.fbcache",
        "--match",
        "1.5,2",
    ]
    assert cli.main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert (
        doc["workload"]["pipeline"] == "WanPipeline"
        and doc["workload"]["transformer"] == "WanTransformer3DModel"
    )
    rows = {row["label"]: row for row in doc["methods"]}
    base = rows["baseline"]
    assert base["psnr_db_per_frame"] == ["inf"] * TINY_WAN_CALL["frames"] and base["ssim_per_frame"][0] == 1.0
    matched = 0
    for method in doc["match"]["methods"]:
        for cell in method["cells"]:
            if cell["status"] != "matched":
                assert cell["status"] == "cannot reach" and cell["reason"]
                continue
            matched += 1
            row = rows[cell["row"]]
            assert abs(row["compute_ratio"] / cell["target"] - 1) <= 0.10, (cell, row["compute_ratio"])
            assert len(row["psnr_db_per_frame"]) == TINY_WAN_CALL["frames"] == len(row["ssim_per_frame"])
            assert np.isfinite(row["psnr_db"]) and row["fid"] is None and row["adherence"] is None
    assert matched >= 2
    # the two guidance calls per step are seen as two branches
    fb = next(rows[label] for label in rows if label.startswith("diffusers.fbcache @"))
    assert len(fb["decisions"]) == 2 and {len(v[0]) for v in fb["decisions"].values()} == {8}
    stored = np.load(out / base["images_file"])["images"]
    assert stored.dtype == np.uint8 and stored.shape == (2, TINY_WAN_CALL["frames"], 16, 16, 3)
    grid = Image.open(out / "grid.png")
    assert grid.width > TINY_WAN_CALL["frames"] * 128  # a strip of all 5 frames, each enlarged to 128 px
    assert "worst frame dB" in capsys.readouterr().out


def test_latent_output_is_a_speed_and_compute_run(wan_folder, tmp_path, capsys):
    out = tmp_path / "latent"
    argv = ["bench", *_video_args(wan_folder), "--methods", "ab:interval=2", "--output", "latent"]
    assert cli.main([*argv, "--repeats", "1", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    ab = doc["methods"][1]
    assert ab["compute_ratio"] > 1.0 and ab["psnr_db"] is None and ab["speedup_loop"]["median"] > 0
    assert doc["notes"]["quality"].startswith("not measured: latent outputs")
    assert not (out / "grid.png").exists()


def test_a_unet_pipeline_is_refused_at_load_with_the_reason(tmp_path, capsys):
    folder = save_tiny_unet_pipeline(tmp_path / "sdxl")
    out = tmp_path / "never"
    assert cli.main(["bench", "--model", str(folder), "--methods", "ab", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "StableDiffusionXLPipeline" in err and "`unet` (UNet2DConditionModel)" in err
    assert "diffusion transformers" in err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize(
    ("argv", "pieces"),
    [
        (["--device", "cuda"], ["`device` 'cuda' is not available here", "use 'cpu'"]),
        (["--device", "cuda:0"], ["`device` 'cuda:0' is not available here"]),
        (["--dtype", "fp8"], ["`dtype` must be one of ['float32', 'bfloat16', 'float16'], got 'fp8'"]),
    ],
)
def test_device_and_dtype_errors_are_one_line(argv, pieces, capsys):
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(piece in err for piece in pieces), err


def test_diffusers_taylorseer_hooks_the_numbered_attention_of_wan(one_thread):
    from forecache.eval.methods import METHODS, MethodRun, MethodSpec
    from tests.fixtures.saved_pipelines import tiny_wan

    pipe = tiny_wan()
    run = MethodRun(num_inference_steps=8, run_once=lambda: None)
    spec = MethodSpec("diffusers.taylorseer", {"cache_interval": 3})
    detach = METHODS["diffusers.taylorseer"].attach(spec, pipe, pipe, run, pipe.scheduler)
    try:
        hooked = [n for n, m in pipe.transformer.named_modules() if getattr(m, "_diffusers_hook", None)]
        hooked = [n for n in hooked if pipe.transformer.get_submodule(n)._diffusers_hook.hooks]
    finally:
        detach()
    layers = pipe.transformer.config.num_layers
    assert hooked == [f"blocks.{i}.attn{k}" for i in range(layers) for k in (1, 2)]
    assert "numbered attention modules" in run.info["cache_identifiers"]
