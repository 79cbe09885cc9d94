"""Engage / refuse / crash table of forecache's presets over every diffusers transformer class.

    python benchmarks/model_check.py [--classes NAME ...] [--out table.md] [--no-details]

Each class of the tiny-model catalog present in the
installed diffusers gets each preset with its defaults on an 8-call loop of bare transformer calls
(`tests.fixtures.engage.check_preset`: executions counted and compared with `forecache.stats`,
bitwise checks at full compute and after `remove`). Prints the table (engages / refuses clearly /
gate declines / silent no-op / crashes per preset) and one line per class. Exit status 1 if a class
crashes or is a silent no-op. CPU, one thread; about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the fixtures live with the tests, not in the installed package
    sys.path.insert(0, str(REPO))

from tests.fixtures.model_check import check_all  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--classes", nargs="*", default=None, help="catalog class names (default: all installed)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the text here")
    parser.add_argument("--no-details", action="store_true", help="only the table")
    args = parser.parse_args(argv)
    text, bad = check_all(args.classes, with_details=not args.no_details)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if bad:
        print(f"crashes or silent no-ops: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
