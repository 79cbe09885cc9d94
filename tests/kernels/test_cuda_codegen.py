"""The Triton kernels compile for NVIDIA GPUs (sm_80, sm_90) on a machine without one.

Triton's interpreter (the parity tests) checks the arithmetic but not the code a GPU would run.
Here `cuda_codegen.py` compiles every kernel variant ahead of time with Triton's bundled LLVM and
ptxas, in a subprocess without ``TRITON_INTERPRET``, and the tests check the machine code of a
memory-bound kernel: no register spills, 16-byte vector accesses, one load per input and thread
(the guard's fallback re-read is merged into its input's load), one atomic per program for the
guard's counter and for the update's running peak.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forecache.kernels.dispatch import triton_available

SCRIPT = Path(__file__).with_name("cuda_codegen.py")


def _nvidia_backend() -> bool:
    return triton_available() and (importlib.util.find_spec("triton.backends.nvidia") is not None)


pytestmark = pytest.mark.skipif(not _nvidia_backend(), reason="needs triton with its NVIDIA backend")


@pytest.fixture(scope="module")
def report():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


VECTORS = {"fp32": 2, "bf16": 1, "fp16": 1}  # 8 elements per thread: 32 or 16 bytes, 16 per access


def test_every_kernel_compiles_for_both_targets_without_spills(report):
    kernels = {key.split("/")[0] for key in report}
    assert kernels == {"weighted_sum", "guarded_weighted_sum", "taylor_update_", "relative_l1"}
    assert len(report) == 2 * 3 * (2 + 4 + 4 + 1)  # targets x dtypes x variants
    for key, row in report.items():
        assert row["cubin_bytes"] > 0 and row["spills"] == 0, (key, row)
        assert row["registers"] <= 64, (key, row)  # full occupancy headroom at 4-8 warps


@pytest.mark.parametrize("kernel", ["weighted_sum", "guarded_weighted_sum", "guarded_weighted_sum+addend"])
def test_weighted_sums_read_each_input_once_in_16_byte_accesses(report, kernel):
    name, _, extra = kernel.partition("+")
    guarded, addend = name == "guarded_weighted_sum", extra == "addend"
    for dtype, per_tensor in VECTORS.items():
        for k in (1, 3):
            for target in ("sm_80", "sm_90"):
                row = report[f"{name}/{dtype}/K{k}{'+' + extra if extra else ''}@{target}"]
                what = (kernel, dtype, k, target, row)
                assert row["vector_loads"] == (k + addend) * per_tensor, what
                assert row["vector_stores"] == per_tensor, what
                assert row["loads"] == row["vector_loads"] + guarded, what  # + the limit scalar
                assert row["atomics"] == guarded, what  # one counter update per program


@pytest.mark.parametrize("peak", [False, True])
def test_taylor_update_reads_the_feature_and_all_but_the_last_factor(report, peak):
    for dtype, per_tensor in VECTORS.items():
        for n in (1, 3):
            row = report[f"taylor_update_/{dtype}/N{n}{'+peak' if peak else ''}@sm_90"]
            assert row["vector_loads"] == row["loads"] == n * per_tensor, (dtype, n, row)
            assert row["vector_stores"] == n * per_tensor, (dtype, n, row)
            assert row["atomics"] == peak, (dtype, n, row)  # the running peak: one per program
