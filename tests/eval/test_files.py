import json
import os

import pytest
from PIL import Image

from forecache.eval import files


def test_atomic_write_replaces_whole(tmp_path):
    path = tmp_path / "sub" / "a.json"
    files.atomic_write_json(path, {"x": 1})
    files.atomic_write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert os.listdir(path.parent) == ["a.json"]


def test_a_failure_mid_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "report.md"

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_text(path, "half" * 1000)
    assert os.listdir(tmp_path) == []


def test_a_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    files.atomic_write_text(path, "old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_non_finite_floats_are_refused_by_the_json_writer(tmp_path):
    with pytest.raises(ValueError):
        files.atomic_write_json(tmp_path / "x.json", {"psnr": float("inf")})
    assert os.listdir(tmp_path) == []


def test_atomic_image(tmp_path):
    path = files.atomic_write_image(tmp_path / "g.png", Image.new("RGB", (4, 3)))
    assert Image.open(path).size == (4, 3)
