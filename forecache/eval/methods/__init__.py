"""Benchmark methods: one `Method` object per method, in one registry, and the specs that name them.

`base` defines `Method` (its fields, how it attaches and detaches, its speed knob, its colour and
marker in figures) and the registry; `builtin` registers the baseline, forecache's presets and its
tuner; one module per peer family registers its peers (`diffusers_hooks`, `cachedit`); `specs`
parses ``name:key=value`` strings and config files into validated `MethodSpec`s. Adding a peer is
one module in this package that calls `register_method` (every module here is imported with the
package), plus its test.
"""

import importlib
import pkgutil

from forecache.eval.methods.base import (
    KINDS,
    METHODS,
    Detach,
    Knob,
    Method,
    MethodRun,
    MethodSpec,
    Style,
    knob_for,
    method_named,
    refuse_unknown,
    register_method,
)
from forecache.eval.methods.builtin import BASELINE, TUNE_SEED, TUNED
from forecache.eval.methods.specs import (
    CONFIG_SCHEMA_VERSION,
    attached,
    load_methods,
    make_method,
    method_names,
    method_to_dict,
    parse_method,
    parse_value,
    save_methods,
)

# forecache's methods, diffusers' and cache-dit's first (the registry's order is the one of
# `method_names`), then any other module here: a new peer's module registers itself
for _name in (
    "builtin",
    "diffusers_hooks",
    "cachedit",
    *sorted(m.name for m in pkgutil.iter_modules(__path__)),
):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "BASELINE",
    "CONFIG_SCHEMA_VERSION",
    "KINDS",
    "METHODS",
    "TUNED",
    "TUNE_SEED",
    "Detach",
    "Knob",
    "Method",
    "MethodRun",
    "MethodSpec",
    "Style",
    "attached",
    "knob_for",
    "load_methods",
    "make_method",
    "method_named",
    "method_names",
    "method_to_dict",
    "parse_method",
    "parse_value",
    "refuse_unknown",
    "register_method",
    "save_methods",
]
