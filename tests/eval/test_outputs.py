"""Pictures, plots, the run folder and the captured logs, on synthetic rows (no model runs)."""

import json
import logging
import sys
import warnings

import numpy as np
import pytest

from forecache.eval.plots import difference_maps, display_size, image_grid
from forecache.eval.quiet import captured
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.store import RunFolder, row_stem


def _images(n, h, w, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, h, w, c)).astype(np.float32)


def test_thumbnails_keep_the_aspect_and_use_whole_factors_or_reduction():
    assert display_size(16, 16) == (128, 128)  # x8, pixel-exact
    assert display_size(32, 48) == (128, 192)  # x4, 3:2 kept
    assert display_size(1024, 512) == (192, 96)  # reduced, 2:1 kept
    assert display_size(720, 1280) == (192, 341)


def test_grid_shows_each_seed_at_its_aspect_with_a_full_resolution_crop():
    wide = _images(3, 400, 800)
    grid = image_grid([("baseline", wide), ("method", wide * 0.5)], seeds=[4, 5, 6], max_columns=2)
    # two thumbnails reduced to 192x384 (Lanczos) and a 128x128 crop at full resolution per row
    assert grid.height == 22 + 2 * (192 + 6) + 6
    crop_left = grid.width - 128 - 2 * 6
    crop = np.asarray(grid)[22 : 22 + 128, crop_left : crop_left + 128] / 255.0
    expected = wide[0, 136:264, 336:464]  # the centre of the first sample, pixel for pixel
    assert np.abs(crop - expected).max() <= 1 / 255 + 1e-6


def test_video_rows_show_a_strip_of_frames():
    video = np.zeros((2, 9, 8, 12, 3), dtype=np.float32)
    video[0, :, :, :, 0] = np.linspace(0.1, 1, 9)[:, None, None]  # red grows frame by frame
    grid = np.asarray(image_grid([("baseline", video)], seeds=[0, 1], max_columns=3))
    line = grid[22 + 4].astype(int)
    video_pixels = np.flatnonzero((line[:, 0] > 0) & (line[:, 1] == 0) & (line[:, 2] == 0))
    runs = np.split(video_pixels, np.flatnonzero(np.diff(video_pixels) > 1) + 1)
    # frames 0, 4 and 8 of the first sample (8x12 enlarged x16), then its middle frame (4) at 1:1
    assert [len(run) for run in runs] == [192, 192, 192, 12]
    assert [int(line[run[0], 0]) for run in runs] == [26, 140, 255, 140]


def test_difference_maps_share_a_log_scale():
    base = np.full((1, 8, 8, 1), 0.5, dtype=np.float32)
    small, large = base + 0.01, base + 0.4
    maps = np.asarray(difference_maps(base, [("small", small), ("large", large), ("same", base)], seeds=[0]))
    centre = maps.shape[1] // 2
    rows = [maps[22 + 22 + r * (128 + 6) + 64] for r in range(3)]
    brightness = [int(row[centre:].sum()) for row in rows]
    assert brightness[2] < brightness[0] < brightness[1]


def _row(label, method, kind, ratio, psnr, target=None):
    row = MethodResult(label, method, kind, compute_ratio=ratio, psnr_db=psnr, target=target)
    row.decisions = {"cond": ["CCFCF"]}
    return row


def _result(rows, match=None):
    workload = {
        "model": "synthetic",
        "samples": 2,
        "seeds": [0, 1],
        "call_arguments": {"num_inference_steps": 5},
    }
    return BenchResult("bench", {}, workload, {}, {}, rows, "now", "0", match=match)


def test_every_method_has_its_own_colour_and_marker_and_the_pareto_figure_a_legend():
    figures = pytest.importorskip("forecache.eval.figures")
    pytest.importorskip("matplotlib")
    from forecache.eval.methods import METHODS

    style = figures.method_styles(list(METHODS))
    assert len(style) == len(METHODS) >= 14
    assert len(set(style.values())) == len(style), style  # distinct (colour, marker) pairs
    assert len({marker for _, marker in style.values()}) >= 8
    assert figures.method_styles(["not-registered", "also-not"]) == {
        "not-registered": ("#737373", "h"),
        "also-not": ("#737373", "8"),
    }
    rows = [
        _row("baseline", "baseline", "baseline", 1.0, float("inf")),
        _row("taylorseer @2x", "taylorseer", "forecache", 2.0, 40.0, 2.0),
        _row("diffusers.fbcache @2x", "diffusers.fbcache", "peer", 2.1, 35.0, 2.0),
    ]
    match = {
        "targets": [2.0],
        "tolerance": 0.1,
        "methods": [
            {"label": "taylorseer", "method": "taylorseer", "knob": "interval", "cells": [],
             "evaluated": [{"value": 2, "compute_ratio": 1.7, "psnr_db": 45.0},
                           {"value": 3, "compute_ratio": 2.0, "psnr_db": 40.0}]},
        ],
    }  # fmt: skip
    image = figures.pareto_figure(_result(rows, match))
    assert image.width > 600 and image.height > 300
    assert image.info["off_axis"] == []
    # a setting far beyond the targets does not stretch the axis: it is an arrow at the edge, listed
    assert figures._x_span([2.0, 3.0, 4.0, 5.0], 0.1) == pytest.approx((1.44, 6.875))
    far = [*rows, _row("cachedit.scm @5x", "cachedit.scm", "peer", 26.1, 12.3, 5.0)]
    wide = figures.pareto_figure(_result(far, {**match, "targets": [2.0, 5.0]}))
    assert wide.info["off_axis"] == ["cachedit.scm @5x at 26.10x (12.3)"]
    timeline = figures.timeline_figure(_result(rows, match))
    assert timeline is not None and timeline.width > 600


def test_rows_are_written_as_they_finish_and_read_back(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.start({"settings": {"steps": 8, "out": "x"}})
    row = _row("taylorseer @2x", "taylorseer", "forecache", 2.0, 40.0, 2.0)
    row.images = _images(2, 4, 4)
    folder.save_row(1, row)
    stem = row_stem("taylorseer @2x")
    assert stem.startswith("taylorseer_2x-") and len(stem) == len("taylorseer_2x-") + 8
    assert row._images is None and row.images_file == f"outputs/001-{stem}.npz"
    assert np.abs(row.images - _images(2, 4, 4)).max() <= 0.5 / 255 + 1e-6
    (back,) = folder.finished().values()
    assert back.label == "taylorseer @2x" and back.compute_ratio == 2.0 and back.target == 2.0
    assert back.images.shape == (2, 4, 4, 3)
    doc = json.loads((tmp_path / "run" / "rows" / f"001-{stem}.json").read_text())
    assert doc["images_file"] == f"outputs/001-{stem}.npz" and doc["run_id"] == folder.run_id
    folder.check_resumable({"steps": 8, "out": "elsewhere"})  # `out` may differ
    with pytest.raises(ValueError, match=r"setting `steps` differs .*it was 8, now 9"):
        folder.check_resumable({"steps": 9})


def test_an_unwritable_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="`out` must be a writable folder"):
        RunFolder(tmp_path / "file" / "run")


def test_third_party_logs_prints_and_warnings_are_captured_unless_verbose(capsys):
    logger = logging.getLogger("forecache-test-third-party")
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with captured() as capture:
            logger.info("[Cache-DiT] patched")
            print("calibration ratios [1.0, 0.9]")
            warnings.warn("a component type differs", UserWarning, stacklevel=1)
        assert capsys.readouterr().out == ""
        lines = capture.lines()
        assert lines[:2] == ["[Cache-DiT] patched", "calibration ratios [1.0, 0.9]"]
        assert "a component type differs" in lines[2]
        logger.info("after")  # the handler writes to the terminal again
        assert capsys.readouterr().out == "after\n"
        with captured(verbose=True) as capture:
            logger.info("shown")
        assert capsys.readouterr().out == "shown\n" and capture.lines() == []
    finally:
        logger.removeHandler(handler)
