"""The ``forecache`` command line: a thin layer over `forecache.eval.bench`, `.sweep` and the registry.

Subcommands::

    forecache bench  [--model M] [--methods SPEC ...] [--config FILE ...] [--out DIR] ...
    forecache sweep  --preset taylorseer --grid interval=2:8 order=0:3 [--out DIR] ...
    forecache models
    forecache profile --arch flux-dev [--size tiny|full] [--height H --width W --frames F] ...

All checking happens in the config dataclasses; this module only turns strings into their fields.
Bad input exits with status 2 and a message naming the field, the allowed values and the value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main", "parse_seeds"]


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse ``--seeds``: ``"0-7"`` (inclusive range), ``"0,3,5"``, or a mix ``"0-3,10"``.

    Raises:
        ValueError: Naming the option, the allowed forms and the value given.

    """
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, sep, high = part.partition("-")
            seeds += list(range(int(low), int(high) + 1)) if sep else [int(part)]
    except ValueError:
        seeds = []
    if not seeds:
        raise ValueError(f"`seeds` must look like '0-7' or '0,3,5' (ints >= 0), got {text!r}")
    return tuple(seeds)


def _add_run_options(parser: argparse.ArgumentParser, repeats: int) -> None:
    from forecache.eval.workload import DTYPES

    run = parser.add_argument_group("what to generate")
    run.add_argument(
        "--model",
        help="reference name (default flux-digits), tiny:<Class>, a pipeline folder or a cached Hub id",
    )
    run.add_argument(
        "--prompts", help="'drawbench' or a text file with one prompt per line (text-to-image models)"
    )
    run.add_argument("--steps", type=int, default=28, help="denoising steps (default 28)")
    run.add_argument("--height", type=int, help="image height, for pipelines that take one")
    run.add_argument("--width", type=int, help="image width, for pipelines that take one")
    run.add_argument(
        "--guidance-scale", type=float, help="classifier-free guidance scale (default: the pipeline's)"
    )
    run.add_argument("--dtype", default="float32", help=f"one of {', '.join(DTYPES)} (default float32)")
    run.add_argument("--device", default="cpu", help="torch device (default cpu)")
    run.add_argument("--seeds", default="0-7", help="one sample per seed: '0-7' or '0,3,5' (default 0-7)")
    run.add_argument("--batch-size", type=int, default=8, help="samples per pipeline call (default 8)")
    run.add_argument(
        "--repeats", type=int, default=repeats, help=f"timed runs per method (default {repeats})"
    )
    run.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    run.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1 for reference/tiny models on CPU, else torch's)",
    )
    run.add_argument("--out", help="folder for results.json, report.md and the figures")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``forecache`` command."""
    from forecache.eval.methods import method_names

    parser = argparse.ArgumentParser(
        prog="forecache", description="Benchmark and tune forecache's feature caches."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="baseline and methods on the same seeds: speed, compute, quality")
    _add_run_options(bench, repeats=3)
    bench.add_argument(
        "--methods",
        nargs="+",
        help=f"specs name[:key=value,...]; names: {', '.join(method_names())} "
        "(default: taylorseer ab cg and every peer, unless --config is given)",
    )
    bench.add_argument("--config", nargs="+", default=[], help="config files (JSON, or YAML with PyYAML)")
    sweep = sub.add_parser(
        "sweep", help="grid over a preset's fields; Pareto front; best config per speed bucket"
    )
    _add_run_options(sweep, repeats=1)
    sweep.add_argument(
        "--preset", default="taylorseer", help="taylorseer, ab, cg or cache (default taylorseer)"
    )
    sweep.add_argument(
        "--grid", nargs="+", default=["interval=2:6"], help="axes: field=a:b (inclusive), a:b:step or v1,v2"
    )
    sweep.add_argument("--bucket-edges", default="1.5,2,3,4", help="speed bucket edges (default 1.5,2,3,4)")
    sweep.add_argument("--bucket-by", default="speedup", help="speedup (default) or compute_ratio")
    sweep.add_argument("--quality", default="psnr", help="best per bucket by psnr (default) or fid")
    models = sub.add_parser(
        "models", help="list the supported transformer classes, reference models and peers"
    )
    models.add_argument("--markdown", action="store_true", help="print the README's supported-model table")
    _add_profile(sub)
    return parser


def _add_profile(sub: Any) -> None:
    from forecache.eval.profile import DEFAULT_PROFILE_METHODS
    from forecache.testing.arch import arch_names

    profile = sub.add_parser(
        "profile", help="speed and memory of a published architecture with random weights (no quality)"
    )
    profile.add_argument("--arch", required=True, help=f"one of {', '.join(arch_names())}")
    profile.add_argument(
        "--random-weights",
        action="store_true",
        help="accepted for clarity: profile always uses random weights",
    )
    profile.add_argument("--size", default="full", help="full (published config, default) or tiny (CPU)")
    profile.add_argument("--height", type=int, help="pixels (default: the architecture's)")
    profile.add_argument("--width", type=int, help="pixels (default: the architecture's)")
    profile.add_argument("--frames", type=int, help="video frames, 4k+1 (default: the architecture's)")
    profile.add_argument("--steps", type=int, default=28, help="denoising steps (default 28)")
    profile.add_argument("--device", default="cpu", help="torch device (default cpu)")
    profile.add_argument("--dtype", help="default bfloat16 on CUDA, float32 otherwise")
    profile.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_PROFILE_METHODS),
        help="method specs (baseline always runs)",
    )
    profile.add_argument("--warmup", type=int, default=1, help="untimed trajectories per method (default 1)")
    profile.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed trajectories per method; the median is reported (default 1)",
    )
    profile.add_argument("--out", help="folder for profile.json and profile.md")
    profile.add_argument(
        "--compile",
        metavar="BACKEND",
        help="compile the blocks (diffusers' compile_repeated_blocks) with this backend, count recompiles",
    )


def _profile(args: argparse.Namespace) -> int:
    from forecache.eval.profile import ProfileConfig, format_profile, profile

    dtype = args.dtype or ("bfloat16" if str(args.device).startswith("cuda") else "float32")
    try:
        config = ProfileConfig(
            arch=args.arch,
            size=args.size,
            height=args.height,
            width=args.width,
            frames=args.frames,
            steps=args.steps,
            device=args.device,
            dtype=dtype,
            methods=tuple(args.methods),
            warmup=args.warmup,
            repeats=args.repeats,
            out=args.out,
            compile=args.compile,
        )
        print(format_profile(profile(config)))
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        print(f"forecache profile: error: {err}", file=sys.stderr)
        return 2
    if args.out:
        print(f"wrote {args.out}/profile.json and profile.md")
    return 0


def _run_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "prompts": args.prompts,
        "steps": args.steps,
        "height": args.height,
        "width": args.width,
        "guidance_scale": args.guidance_scale,
        "dtype": args.dtype,
        "device": args.device,
        "seeds": parse_seeds(args.seeds),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "out": args.out,
        "progress": not args.no_progress,
    }


def _edges(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise ValueError(
            f"`bucket_edges` must be comma-separated numbers > 1 like '1.5,2,3', got {text!r}"
        ) from err


def _models(markdown: bool) -> int:
    import forecache
    from forecache.eval.peers import PEERS
    from forecache.layouts.registry import supported_models_markdown
    from forecache.reference import reference_models

    if markdown:
        print(supported_models_markdown(), end="")
        return 0

    names = forecache.supported_models()
    print(f"Supported transformer classes ({len(names)}):")
    for name in names:
        print(f"  {name}")
    print(f"Reference models: {', '.join(reference_models())}")
    print(f"Peers: {', '.join(PEERS)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``forecache`` command; returns the exit status (0 ok, 2 bad input or failed run)."""
    from forecache._extras import MissingExtraError, require_extra

    try:
        require_extra("eval", "the forecache command")
    except MissingExtraError as err:
        print(f"forecache: error: {err}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models":
        return _models(args.markdown)
    if args.command == "profile":
        return _profile(args)
    from forecache.eval import BenchConfig, SweepConfig, bench, sweep
    from forecache.eval.report import format_table

    try:
        if args.command == "bench":
            config = BenchConfig(methods=args.methods, config_files=tuple(args.config), **_run_fields(args))
            result = bench(config)
            print(format_table(result))
        else:
            sweep_config = SweepConfig(
                preset=args.preset,
                grid=tuple(args.grid),
                bucket_edges=_edges(args.bucket_edges),
                bucket_by=args.bucket_by,
                quality=args.quality,
                **_run_fields(args),
            )
            swept = sweep(sweep_config)
            print(format_table(swept.bench))
            print(f"Pareto front (speed vs PSNR): {', '.join(swept.front_psnr) or 'none'}")
            for name, spec in swept.best.items():
                print(f"best {name}: {spec.label}")
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        print(f"forecache {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.out:
        print(f"wrote {args.out}/results.json, report.md and figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
