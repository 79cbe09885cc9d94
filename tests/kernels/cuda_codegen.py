"""Compile every Triton kernel for NVIDIA targets without a GPU and report what the code looks like.

Run as a script (``python tests/kernels/cuda_codegen.py``) in a process where ``TRITON_INTERPRET``
is unset: the kernels must be real ``JITFunction``s, not interpreter wrappers. Prints one JSON
object: per kernel variant and target, the registers, spills, and counts of the PTX instructions
that matter for a memory-bound kernel (vector loads and stores, atomics).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource, compile

from forecache.kernels import triton_ops as ops

TARGETS = {"sm_80": GPUTarget("cuda", 80, 32), "sm_90": GPUTarget("cuda", 90, 32)}
DTYPES = ("fp32", "bf16", "fp16")
ALIGNED = [["tt.divisibility", 16]]  # what the launcher specialises for 16-byte aligned pointers


def _source(kernel: object, signature: dict, constexprs: dict, aligned: list[tuple[int, ...]]) -> ASTSource:
    """An `ASTSource` whose pointer (and size) arguments at `aligned` paths are 16-byte aligned."""
    signature = {**signature, **{name: "constexpr" for name in constexprs}}
    attrs = {path: ALIGNED for path in aligned}
    return ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)


def variants() -> Iterator[tuple[str, ASTSource]]:
    """Yield (name, source) for each kernel, dtype and arity worth checking."""
    block = ops.ELEMENTWISE_BLOCK
    for dtype in DTYPES:
        for k in (1, 3):
            inputs = {"in_ptrs": (f"*{dtype}",) * k, "weights": ("fp32",) * k}
            ptrs = [(0, i) for i in range(k)]
            yield (
                f"weighted_sum/{dtype}/K{k}",
                _source(
                    ops._weighted_sum_kernel,
                    {**inputs, "out_ptr": f"*{dtype}", "n_elements": "i32"},
                    {"K": k, "BLOCK_SIZE": block},
                    [*ptrs, (2,), (3,)],
                ),
            )
            guard = {
                "out_ptr": f"*{dtype}", "limit_ptr": "*fp32", "limit_scale": "fp32", "finite_bound": "fp32",
                "refused_ptr": "*i64", "slot": "i32", "addend_ptr": f"*{dtype}", "n_elements": "i32",
            }  # fmt: skip
            for addend in (False, True):
                yield (
                    f"guarded_weighted_sum/{dtype}/K{k}" + ("+addend" if addend else ""),
                    _source(
                        ops._guarded_weighted_sum_kernel,
                        {**inputs, **guard},
                        {"K": k, "FALLBACK": 0, "HAS_ADDEND": addend, "BLOCK_SIZE": block},
                        [*ptrs, (2,), (8,), (9,)],
                    ),
                )
        for n in (1, 3):
            factors = {"factor_ptrs": (f"*{dtype}",) * n, "feature_ptr": f"*{dtype}"}
            for peak in (False, True):
                yield (
                    f"taylor_update_/{dtype}/N{n}" + ("+peak" if peak else ""),
                    _source(
                        ops._taylor_update_kernel,
                        {**factors, "inv_dt": ("fp32",) * n, "peak_ptr": "*fp32", "n_elements": "i32"},
                        {"N": n, "TRACK_PEAK": peak, "BLOCK_SIZE": block},
                        [*((0, i) for i in range(n)), (1,), (4,)],
                    ),
                )
        yield f"relative_l1/{dtype}", _source(
            ops._relative_l1_kernel,
            {"a_ptr": f"*{dtype}", "b_ptr": "*bf16", "partial_ptr": "*fp32", "n_cols": "i32",
             "blocks_per_row": "i32", "n_partials": "i32"},
            {"BLOCK_SIZE": ops.REDUCE_BLOCK},
            [(0,), (1,), (2,), (3,)],
        )  # fmt: skip


def count(ptx: str, pattern: str) -> int:
    """Occurrences of `pattern` in the PTX."""
    return len(re.findall(pattern, ptx))


def ptxas_usage(ptx: str, capability: int) -> tuple[int, int]:
    """Registers per thread and spilled bytes, as reported by Triton's bundled ``ptxas -v``."""
    arch = re.search(r"[.]target (sm_[0-9a-z]+)", ptx).group(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        command = [get_ptxas(capability).path, f"-arch={arch}", "-v", str(path), "-o", f"{path}.o"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    registers = int(re.search(r"Used (\d+) registers", out).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill", out))
    return registers, spills


def main() -> None:
    report = {}
    for name, source in variants():
        for target_name, target in TARGETS.items():
            warps = ops.REDUCE_WARPS if name.startswith("relative_l1") else ops.ELEMENTWISE_WARPS
            kernel = compile(source, target=target, options={"num_warps": warps})
            ptx = kernel.asm["ptx"]
            registers, spills = ptxas_usage(ptx, target.arch)
            report[f"{name}@{target_name}"] = {
                "cubin_bytes": len(kernel.asm["cubin"]),
                "registers": registers,
                "spills": spills,
                "vector_loads": count(ptx, r"ld\.global(\.[a-z0-9]+)*\.v[248]"),
                "loads": count(ptx, r"ld\.global"),
                "vector_stores": count(ptx, r"st\.global(\.[a-z0-9]+)*\.v[248]"),
                "atomics": count(ptx, r"(atom|red)\.global"),
            }
    json.dump(report, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
