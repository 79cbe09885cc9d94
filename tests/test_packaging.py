"""The wheel holds the product: the package with its shipped data, and no test fixtures."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this venv")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "forecache", src / "forecache", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "dist"
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*build, "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("forecache-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_module_of_the_package_and_nothing_else(wheel_files):
    modules = {str(p.relative_to(REPO)) for p in (REPO / "forecache").rglob("*.py")}
    shipped = {name for name in wheel_files if name.endswith(".py")}
    assert shipped == modules, f"missing: {sorted(modules - shipped)}, extra: {sorted(shipped - modules)}"
    fixtures = ("tests/", "benchmarks/", "forecache/testing/")
    assert not [name for name in wheel_files if name.startswith(fixtures)]


def test_the_wheel_ships_the_reference_weights_and_the_data(wheel_files):
    weights = "forecache/reference/weights"
    for model in ("flux-digits", "flux-digits-deep", "dit-digits", "scenes"):
        assert f"{weights}/{model}/model_index.json" in wheel_files
        assert f"{weights}/{model}/transformer/diffusion_pytorch_model.safetensors" in wheel_files
    scene_parts = (
        "tokenizer/tokenizer.json",
        "tokenizer_2/tokenizer.json",
        "vae/diffusion_pytorch_model.safetensors",
    )
    for part in scene_parts:
        assert f"{weights}/scenes/{part}" in wheel_files
    assert f"{weights}/classifier/diffusion_pytorch_model.safetensors" in wheel_files
    assert f"{weights}/scenes-judge/diffusion_pytorch_model.safetensors" in wheel_files
    for name in ("calibration", "benchmark", "heldout"):
        assert f"forecache/reference/scenes/prompts/{name}.txt" in wheel_files
    archs = {n for n in wheel_files if n.startswith("forecache/eval/archs/") and n.endswith(".json")}
    assert len(archs) == 5, sorted(archs)
    assert {"forecache/py.typed", "forecache/eval/data/drawbench200.txt"} <= wheel_files


def test_no_module_of_the_package_imports_the_test_fixtures():
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "forecache").rglob("*.py")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if line.lstrip().startswith(("from tests", "import tests"))
    ]
    assert not offenders
