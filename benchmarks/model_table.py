"""What forecache.apply does with every diffusers transformer class: the README's table, inferred layouts.

    python benchmarks/model_table.py [--markdown | --inferred] [--classes NAME ...]

Each class of the tiny-model catalog (`tests.fixtures.catalog`) present in the installed diffusers
is built at its tiny size and laid out as `forecache.apply` would, without running it
(`tests.fixtures.models_table`). With no option: one line per class (registered or inferred, the
targets that accept it, the gate's probe block). ``--markdown``: the README's supported-model table
(``tests/test_readme.py`` checks the README holds it). ``--inferred``: each inferred layout, checked
against the registered one where both exist (exit status 1 if a registered class disagrees on
block lists or streams). Whether each class really engages: ``benchmarks/model_check.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the fixtures live with the tests, not in the installed package
    sys.path.insert(0, str(REPO))

from tests.fixtures.models_table import inferred_report, model_rows, supported_models_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true", help="print the README's supported-model table")
    shown.add_argument(
        "--inferred",
        action="store_true",
        help="print the inferred layout of every class, checked against the registered one where both exist",
    )
    parser.add_argument(
        "--classes", nargs="*", default=None, help="catalog class names (default: all installed)"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(supported_models_markdown(), end="")
        return 0
    if args.inferred:
        text, disagree = inferred_report(args.classes)
        print(text, end="")
        if disagree:
            print(f"{disagree} registered class(es) disagree with inference on block lists or streams")
        return 1 if disagree else 0
    rows = model_rows(args.classes)
    print(
        f"Every transformer class of the installed diffusers ({len(rows)}), as forecache.apply lays it out:"
    )
    width = max((len(row.name) for row in rows), default=10)
    print(f"{'class':<{width}} layout      targets                 gate probe")
    for row in rows:
        targets = ",".join(row.available) or "none"
        print(f"{row.name:<{width}} {row.source:<11} {targets:<23} {row.probe or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
