"""The engage / refuse / crash table of forecache's presets over every diffusers transformer class.

``forecache models --check`` and ``benchmarks/model_check.py`` print it: each class of the catalog
present in the installed diffusers gets each preset with its defaults (`check_preset`). CPU, one
thread; about a minute for the 73 classes of diffusers 0.42.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter

import torch

from forecache.testing.catalog import catalog_names, installed_names
from forecache.testing.engage import PRESETS, STEPS, Outcome, check_preset

__all__ = ["COLUMNS", "check_all", "details", "table"]

COLUMNS = ("engages", "refuses", "declines", "no-op", "crashes")


def table(results: dict[str, dict[str, Outcome]]) -> str:
    """Return the markdown table: per preset, how many classes engage, refuse, decline, no-op, crash."""
    import diffusers

    lines = [
        f"diffusers {diffusers.__version__}, torch {torch.__version__}: {len(results)} transformer classes, "
        f"{STEPS}-call loop, presets with their defaults",
        "",
        "| preset | engages | refuses clearly | gate declines | silent no-op | crashes |",
        "|---|---|---|---|---|---|",
    ]
    for preset in PRESETS:
        counts = Counter(outcomes[preset].status for outcomes in results.values())
        lines.append(f"| forecache {preset} | " + " | ".join(str(counts.get(c, 0)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def details(results: dict[str, dict[str, Outcome]]) -> str:
    """Return one line per class: each preset's outcome, its compute ratio or its reason."""
    lines = []
    for name, outcomes in results.items():
        parts = []
        for preset, o in outcomes.items():
            text = o.status if o.status == "engages" else f"{o.status}: {o.detail[:200]}"
            ratio = f" x{o.total / o.executed:.2f}" if o.status == "engages" and o.executed else ""
            parts.append(f"{preset.removesuffix('Config')} {text}{ratio}")
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def check_all(names: list[str] | None = None, with_details: bool = True) -> tuple[str, list[str]]:
    """Run every preset on every class (or `names`); return the text and the classes that crash or no-op."""
    unavailable = installed_names()
    names = names or [n for n in catalog_names() if not unavailable[n]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.time()
    results: dict[str, dict[str, Outcome]] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            for name in names:
                results[name] = {preset: check_preset(name, preset) for preset in PRESETS}
    finally:
        logging.disable(logging.NOTSET)
        torch.set_num_threads(threads)
    text = table(results) + f"\n({time.time() - start:.0f} s, CPU, one thread)\n"
    if with_details:
        text += "\n" + details(results)
    bad = [n for n, o in results.items() if any(x.status in ("crashes", "no-op") for x in o.values())]
    return text, bad
