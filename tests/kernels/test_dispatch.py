"""Backend choice: the FORECACHE_KERNELS variable, backend_for, and imports that stay light."""

import os
import subprocess
import sys

import pytest
import torch

from forecache.kernels import backend_for, dispatch, relative_l1, weighted_sum


def run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "FORECACHE_KERNELS")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


# Imports forecache.kernels with the parent package's __init__ stubbed out: fast (no diffusers), and
# a failure can only come from the kernels package itself.
KERNELS_ONLY = (
    "import importlib.util, sys, types, torch\n"
    "parent = types.ModuleType('forecache')\n"
    "parent.__path__ = list(importlib.util.find_spec('forecache').submodule_search_locations)\n"
    "sys.modules['forecache'] = parent\n"
    "import forecache.kernels\n"
)
LIGHT_IMPORT_CHECK = (
    "assert 'triton' not in sys.modules, 'triton imported (torch._dynamo, which imports triton, loaded: %s)'"
    " % ('torch._dynamo' in sys.modules)\n"
    "assert not torch.cuda.is_initialized(), 'cuda initialised'\n"
    "forecache.kernels.weighted_sum([torch.ones(3)], [2.0])\n"
    "assert 'triton' not in sys.modules, 'triton imported by a CPU call'\n"
    "print('ok')\n"
)


def test_import_does_not_load_triton_or_cuda():
    result = run_python("import sys, torch, forecache, forecache.kernels\n" + LIGHT_IMPORT_CHECK)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_kernels_package_alone_does_not_load_triton_or_cuda():
    result = run_python(KERNELS_ONLY + LIGHT_IMPORT_CHECK)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


SUPPORTED_TRITON = pytest.mark.skipif(
    not dispatch.triton_available(), reason=f"needs triton>={'.'.join(map(str, dispatch.TRITON_FLOOR))}"
)


@SUPPORTED_TRITON
def test_forced_triton_on_cpu_without_interpreter_is_refused():
    result = run_python(
        KERNELS_ONLY + "forecache.kernels.weighted_sum([torch.ones(3)], [1.0])\n", FORECACHE_KERNELS="triton"
    )
    assert result.returncode != 0
    assert "ValueError: `tensors[0]` is on cpu; the Triton kernels need CUDA tensors" in result.stderr, (
        result.stderr
    )


@pytest.mark.parametrize("value", [None, "", "auto", " AUTO "])
def test_default_on_cpu_is_torch(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("FORECACHE_KERNELS", raising=False)
    else:
        monkeypatch.setenv("FORECACHE_KERNELS", value)
    assert backend_for(torch.ones(2)) == "torch"


@SUPPORTED_TRITON
def test_env_is_read_at_call_time(monkeypatch):
    x = torch.ones(2)
    monkeypatch.setenv("FORECACHE_KERNELS", "Torch")
    assert backend_for(x) == "torch"
    monkeypatch.setenv("FORECACHE_KERNELS", "triton")
    assert backend_for(x) == "triton"


def test_invalid_value_names_variable_allowed_values_and_value(monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", "cuda")
    expected = "FORECACHE_KERNELS must be one of 'auto', 'triton', 'torch' (or unset), got 'cuda'"
    for call in (lambda: backend_for(torch.ones(1)), lambda: weighted_sum([torch.ones(1)], [1.0])):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == expected
    with pytest.raises(ValueError, match="FORECACHE_KERNELS must be one of"):
        relative_l1(torch.ones(1), torch.ones(1))


def test_forced_triton_without_triton_installed(monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", "triton")
    monkeypatch.setattr(dispatch, "triton_version", lambda: None)
    with pytest.raises(ModuleNotFoundError, match=r"'triton' package is not installed.*forecache\[triton\]"):
        backend_for(torch.ones(1))


@pytest.mark.parametrize(
    ("version", "supported"), [((3, 0, 0), False), ((3, 3, 1), False), ((3, 4, 0), True)]
)
def test_triton_older_than_the_floor_is_not_used(monkeypatch, version, supported):
    monkeypatch.setattr(dispatch, "triton_version", lambda: version)
    assert dispatch.triton_available() is supported
    monkeypatch.setenv("FORECACHE_KERNELS", "triton")
    if supported:
        assert backend_for(torch.ones(1)) == "triton"
    else:
        message = rf"package is {'.'.join(map(str, version))}; forecache's kernels need triton>=3\.4"
        with pytest.raises(ModuleNotFoundError, match=message):
            backend_for(torch.ones(1))


def test_installed_triton_version_is_read_without_importing_it():
    version = dispatch.triton_version()
    assert version is None or (len(version) >= 2 and all(isinstance(v, int) for v in version))


def test_forced_torch_runs_reference(monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", "torch")
    a, b = torch.full((4,), 3.0), torch.full((4,), 2.0)
    assert weighted_sum([a, b], [1.0, 2.0]).tolist() == [7.0] * 4
    assert relative_l1(a, b).item() == 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_picks_triton_on_cuda(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delenv("FORECACHE_KERNELS", raising=False)
    x = torch.randn(4099, device="cuda", dtype=torch.bfloat16)
    assert backend_for(x) == "triton"
    assert backend_for(x.cpu()) == "torch"
    got = weighted_sum([x, x], [0.5, 0.5])
    assert torch.equal(got, x), (got.float() - x.float()).abs().max().item()
