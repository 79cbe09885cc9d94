"""The evaluation harness: benchmarks and sweeps of forecache and its peers on the same seeds.

``bench`` runs the baseline and a list of methods (presets with overrides, config files, peers),
by default each tuned onto target compute ratios (matched speed), and reports compute ratio
(linear-layer FLOPs), forecache's execution ratio, paired quality against the baseline, FID when
it means something, memory and the per-step decisions; ``sweep`` grids a method's fields and writes
the best configs per speed bucket. The ``forecache`` command line is a thin layer over the two.
"""

from forecache._extras import require_extra

require_extra("eval", "forecache.eval (the benchmark harness)")

# ruff: noqa: E402 (the extra is checked before anything that needs it is imported)
from forecache.eval.bench import bench
from forecache.eval.config import DEFAULT_METHODS, DEFAULT_TARGETS, BenchConfig, RunConfig
from forecache.eval.methods import (
    METHODS,
    Method,
    MethodSpec,
    load_methods,
    make_method,
    parse_method,
    register_method,
    save_methods,
)
from forecache.eval.schema import RESULTS_SCHEMA_VERSION, BenchResult, MethodResult
from forecache.eval.sweep import SweepConfig, SweepResult, sweep

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_TARGETS",
    "METHODS",
    "RESULTS_SCHEMA_VERSION",
    "BenchConfig",
    "BenchResult",
    "Method",
    "MethodResult",
    "MethodSpec",
    "RunConfig",
    "SweepConfig",
    "SweepResult",
    "bench",
    "load_methods",
    "make_method",
    "parse_method",
    "register_method",
    "save_methods",
    "sweep",
]
