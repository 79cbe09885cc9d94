"""The ``forecache`` command line: a thin layer over `forecache.eval.bench`, `.sweep` and the registry.

Subcommands::

    forecache bench  [--model M] [--methods SPEC ...] [--match 2,3,4,5|none] [--out DIR] [--resume DIR] ...
    forecache sweep  --preset taylorseer --grid interval=2:8 order=0:3 [--out DIR] ...
    forecache tune   [--model M] (--ratio R | --budget-db D) [--steps N] [--calibration K] [--refine N]
                     [--no-damp] [--validate N] ...
    forecache models [--model M]
    forecache profile --arch flux-dev [--size tiny|full] [--height H --width W --frames F] ...

All checking happens in the config dataclasses; this module only turns strings into their fields.
Exit status: 0 done; 1 done, but some method failed (its row holds the error, the report is
written); 2 bad input (one line naming the field, the allowed values and the value); 130
interrupted (Ctrl-C; the finished rows are on disk, ``--resume DIR`` continues).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "default_out", "main", "parse_seeds", "parse_targets"]

OUT_ROOT = "forecache-bench"


def default_out(now: datetime | None = None) -> str:
    """Return the output folder used when none is given: ``forecache-bench/<YYYYmmdd-HHMMSS>``."""
    return str(Path(OUT_ROOT) / (now or datetime.now()).strftime("%Y%m%d-%H%M%S"))


def _field_defaults(config: type) -> dict[str, Any]:
    """Return the dataclass `config`'s field defaults by name: the CLI's options take the API's."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}


def _seeds_text(seeds: Sequence[int]) -> str:
    """Write seeds as ``--seeds`` reads them: ``"0-7"`` for a run of consecutive seeds, else ``"0,3,5"``."""
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def parse_targets(text: str) -> tuple[float, ...]:
    """Parse ``--match``: ``"2,3,4,5"``, or ``"none"`` to run each method as given.

    Raises:
        ValueError: Naming the option, the allowed forms and the value given.

    """
    if text.strip().lower() in ("none", "off", ""):
        return ()
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as err:
        raise ValueError(f"`match` must be ratios like '2,3,4,5' or 'none', got {text!r}") from err


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse ``--seeds``: ``"0-7"`` (inclusive range), ``"0,3,5"``, or a mix ``"0-3,10"``.

    Raises:
        ValueError: Naming the option, the allowed forms and the value given.

    """
    allowed = "'0-7' (an increasing inclusive range), '0,3,5' or a mix like '0-3,10' (ints >= 0)"
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, sep, high = part.partition("-")
            if sep and int(high) < int(low):
                raise ValueError(
                    f"`seeds` must be {allowed}; the range {part!r} runs backwards, got {text!r}"
                )
            seeds += list(range(int(low), int(high) + 1)) if sep else [int(part)]
    except ValueError as err:
        if str(err).startswith("`seeds`"):
            raise
        seeds = []
    if not seeds:
        raise ValueError(f"`seeds` must be {allowed}, got {text!r}")
    return tuple(seeds)


def _add_run_options(parser: argparse.ArgumentParser, defaults: dict[str, Any], repeats: str) -> None:
    """Add the options every run takes, their defaults those of its config (`_field_defaults`)."""
    from forecache.eval.workload import DTYPES, OUTPUTS

    run = parser.add_argument_group("what to generate")
    run.add_argument(
        "--model",
        help="reference name (default flux-digits), a pipeline folder or a cached Hub id",
    )
    run.add_argument(
        "--prompts",
        help="'drawbench' or a text file with one prompt per line (text-to-image models); the scenes "
        "model: calibration, benchmark or heldout (default heldout)",
    )
    run.add_argument(
        "--steps", type=int, default=defaults["steps"], help="denoising steps (default %(default)s)"
    )
    run.add_argument("--height", type=int, help="image height, for pipelines that take one")
    run.add_argument("--width", type=int, help="image width, for pipelines that take one")
    run.add_argument("--frames", type=int, help="video frames (num_frames), for video pipelines")
    run.add_argument(
        "--guidance-scale", type=float, help="classifier-free guidance scale (default: the pipeline's)"
    )
    run.add_argument(
        "--dtype", default=defaults["dtype"], help=f"one of {', '.join(DTYPES)} (default %(default)s)"
    )
    run.add_argument("--device", default=defaults["device"], help="torch device (default %(default)s)")
    run.add_argument(
        "--output",
        default=defaults["output"],
        help=f"one of {', '.join(OUTPUTS)}: decoded outputs, scored, or latents (speed only) "
        "(default %(default)s)",
    )
    run.add_argument(
        "--seeds",
        default=_seeds_text(defaults["seeds"]),
        help="one sample per seed: '0-7' or '0,3,5' (default %(default)s)",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=defaults["batch_size"],
        help="samples per pipeline call (default %(default)s)",
    )
    run.add_argument("--repeats", type=int, help=f"timed runs per row, 0: not timed (default {repeats})")
    run.add_argument(
        "--warmup",
        type=int,
        default=defaults["warmup"],
        help="untimed runs before timing (default %(default)s)",
    )
    run.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1 for reference models on CPU, else torch's)",
    )
    run.add_argument("--out", help=f"a new or empty folder for the run (default {OUT_ROOT}/<timestamp>)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--verbose", action="store_true", help="show third-party logs (cache-dit...) instead of log.txt"
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``forecache`` command."""
    from forecache.eval.config import BenchConfig
    from forecache.eval.methods import method_names
    from forecache.eval.sweep import SweepConfig

    bench_defaults, sweep_defaults = _field_defaults(BenchConfig), _field_defaults(SweepConfig)
    parser = argparse.ArgumentParser(
        prog="forecache", description="Benchmark and tune forecache's feature caches."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="baseline and methods on the same seeds, at matched compute")
    _add_run_options(bench, bench_defaults, repeats="3; 0 when matching")
    bench.add_argument(
        "--methods",
        nargs="+",
        help=f"specs name[:key=value,...]; names: {', '.join(method_names())} "
        "(default: the presets and every peer, unless --config is given)",
    )
    bench.add_argument("--config", nargs="+", default=[], help="config files (JSON, or YAML with PyYAML)")
    bench.add_argument(
        "--match",
        help="target compute ratios '2,3,4,5': each method's knob is tuned onto each; 'none': run the "
        "methods as given (default: 2,3,4,5 without --methods/--config, else none)",
    )
    bench.add_argument(
        "--tolerance",
        type=float,
        default=bench_defaults["tolerance"],
        help="relative distance counted as on target (default %(default)s)",
    )
    bench.add_argument("--resume", help="continue the interrupted run in this folder (same settings)")
    sweep = sub.add_parser(
        "sweep", help="grid over a method's fields; Pareto front; best config per speed bucket"
    )
    _add_run_options(sweep, sweep_defaults, repeats="1")
    sweep.add_argument(
        "--preset",
        default=sweep_defaults["preset"],
        help="the method swept: a preset (taylorseer, ab, cg, timeline, cache or one registered with "
        "forecache.register_preset) or a peer (default %(default)s)",
    )
    sweep.add_argument(
        "--grid",
        nargs="+",
        default=list(sweep_defaults["grid"]),
        help=f"axes: field=a:b (inclusive), a:b:step or v1,v2 (default {' '.join(sweep_defaults['grid'])})",
    )
    sweep.add_argument(
        "--bucket-edges",
        default=",".join(f"{edge:g}" for edge in sweep_defaults["bucket_edges"]),
        help="speed bucket edges (default %(default)s)",
    )
    sweep.add_argument(
        "--bucket-by",
        default=sweep_defaults["bucket_by"],
        help="speedup or compute_ratio (default %(default)s)",
    )
    sweep.add_argument(
        "--quality",
        default=sweep_defaults["quality"],
        help="best per bucket by psnr or fid (default %(default)s)",
    )
    _add_tune(sub)
    models = sub.add_parser(
        "models",
        help="the registered transformer classes, reference models and peers; with --model, how forecache "
        "lays out that model (registered or inferred, targets, gate probe)",
    )
    models.add_argument(
        "--model",
        help="reference name, a pipeline folder or a cached Hub id: print how forecache.apply lays out its "
        "transformer(s), without running it",
    )
    _add_profile(sub)
    return parser


def _add_tune(sub: Any) -> None:
    from forecache.calibrate.frames import FRAME_SCORES
    from forecache.calibrate.tuner import tune_defaults

    defaults = tune_defaults()
    tune = sub.add_parser(
        "tune", help="fit the schedule and forecaster to a model on calibration samples; write a config file"
    )
    tune.add_argument(
        "--model",
        help="reference name (default flux-digits), a pipeline folder or a cached Hub id",
    )
    goal = tune.add_mutually_exclusive_group(required=True)
    goal.add_argument("--ratio", type=float, help="wanted compute ratio (linear-layer FLOPs), e.g. 8")
    goal.add_argument(
        "--budget-db", type=float, help="lowest PSNR against full compute: the highest ratio above it"
    )
    tune.add_argument("--steps", type=int, default=50, help="denoising steps to tune at (default 50)")
    tune.add_argument("--calibration", type=int, default=4, help="calibration samples (default 4)")
    tune.add_argument(
        "--prompts",
        help="'drawbench' or a text file (text-to-image models); the scenes model: one of its prompt sets "
        "(default: its calibration set)",
    )
    tune.add_argument("--guidance-scale", type=float, help="guidance scale (default: the pipeline's)")
    tune.add_argument("--height", type=int, help="image height, for pipelines that take one")
    tune.add_argument("--width", type=int, help="image width, for pipelines that take one")
    tune.add_argument(
        "--trials",
        "--verify",
        dest="trials",
        type=int,
        default=defaults["trials"],
        help="real cached runs per searched step count (default %(default)s; --verify: its former name)",
    )
    tune.add_argument(
        "--frame-score",
        choices=list(FRAME_SCORES),
        default=defaults["frames"],
        help="videos: score candidates over all frames alike (pooled) or by their worst frame "
        "(default %(default)s)",
    )
    tune.add_argument(
        "--no-partial",
        action="store_true",
        help="with --ratio: whole steps only (no partial step spending the budget between step counts)",
    )
    tune.add_argument(
        "--images-per-prompt",
        type=int,
        default=1,
        help="text-to-image: images of each calibration prompt (num_images_per_prompt; default 1)",
    )
    tune.add_argument(
        "--refine",
        type=int,
        default=defaults["refine"],
        help="rounds of moving each computed step by real runs (default %(default)s; pays on 16+ samples)",
    )
    tune.add_argument(
        "--no-damp",
        action="store_true",
        help="keep the chosen forecaster (no slope damping fitted to each stretch and run for real)",
    )
    tune.add_argument(
        "--validate",
        type=int,
        default=defaults["validate"],
        help="then run the calibration samples N times more with new seeds, full and tuned: the PSNR to "
        "expect on new prompts (default %(default)s)",
    )
    tune.add_argument(
        "--seed",
        type=int,
        default=defaults["seed"],
        help="seed of the calibration call (default %(default)s)",
    )
    tune.add_argument("--device", default="cpu", help="torch device (default cpu)")
    tune.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    tune.add_argument(
        "--out", help="folder for tuned.json, tune-report.md and schedule.png (default forecache-tune/<time>)"
    )
    tune.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _tune(args: argparse.Namespace) -> int:
    import forecache
    from forecache.eval.bench import torch_threads
    from forecache.eval.files import atomic_write_image, atomic_write_text
    from forecache.eval.workload import build_call_kwargs, conditions_for, load_pipeline, reference_of

    if isinstance(args.calibration, bool) or args.calibration < 1:
        raise ValueError(f"`calibration` must be an int >= 1, got {args.calibration!r}")
    pipe, source = load_pipeline(args.model, args.device, args.dtype)
    reference = reference_of(args.model)
    defaults = dict(reference.call_defaults) if reference is not None else None
    call = build_call_kwargs(
        pipe, args.steps, args.guidance_scale, args.height, args.width, defaults=defaults
    )
    if reference is not None and args.prompts is None:
        conditions: list | None = reference.calibration_conditions(args.calibration)
    else:
        conditions, _ = conditions_for(pipe, args.calibration, args.prompts, reference)
    if conditions is None:
        call["batch_size"] = args.calibration
    else:
        call["class_labels" if isinstance(conditions[0], int) else "prompt"] = conditions
    per_prompt = args.images_per_prompt
    if isinstance(per_prompt, bool) or per_prompt < 1:
        raise ValueError(f"`images_per_prompt` must be an int >= 1, got {per_prompt!r}")
    if per_prompt > 1:
        if "prompt" not in call:
            raise ValueError(
                f"`images_per_prompt` needs a text-to-image pipeline (prompts), got {per_prompt!r} for "
                f"{type(pipe).__name__}"
            )
        call["num_images_per_prompt"] = per_prompt
    threads = (
        1 if args.device == "cpu" and (args.model is None or not Path(str(args.model)).is_dir()) else None
    )
    with torch_threads(threads):
        result = forecache.tune(
            pipe,
            call,
            ratio=args.ratio,
            budget_db=args.budget_db,
            trials=args.trials,
            seed=args.seed,
            progress=not args.no_progress,
            frames=args.frame_score,
            partial=not args.no_partial,
            refine=args.refine,
            damp=not args.no_damp,
            validate=args.validate,
        )
    out = Path(args.out or str(Path("forecache-tune") / datetime.now().strftime("%Y%m%d-%H%M%S")))
    config_path = result.save(out / "tuned.json")
    atomic_write_text(out / "tune-report.md", f"Model: {source}\n\n" + result.report())
    atomic_write_image(out / "schedule.png", result.plot())
    for component, part in (result.experts or {"": result}).items():
        chosen = part.chosen
        print(
            f"forecache tune: {component + ': ' if component else ''}{chosen.forecaster!r} on "
            f"{chosen.described} of {part.steps} steps, {chosen.ratio:.2f}x, {chosen.psnr_db:.2f} dB "
            f"against full compute on {args.calibration * per_prompt} calibration samples"
        )
    if result.experts:
        print(f"forecache tune: the experts together: {result.ratio:.2f}x, {result.psnr_db:.2f} dB")
    if result.validation is not None:
        check = result.validation
        print(
            f"forecache tune: validated on {check.samples} new samples: {check.psnr_db:.2f} dB (90 % "
            f"interval {check.interval_db[0]:.2f}-{check.interval_db[1]:.2f}, worst {check.worst_db:.2f} "
            "dB), the figure to expect on new prompts"
        )
    print(
        f"wrote {config_path} (forecache.apply(pipe, path), forecache bench --config), "
        "tune-report.md, schedule.png"
    )
    return 0


def _add_profile(sub: Any) -> None:
    from forecache.eval.arch import arch_names
    from forecache.eval.profile import DEFAULT_PROFILE_METHODS

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
        "frames": args.frames,
        "guidance_scale": args.guidance_scale,
        "dtype": args.dtype,
        "device": args.device,
        "output": args.output,
        "seeds": parse_seeds(args.seeds),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "progress": not args.no_progress,
        "verbose": args.verbose,
    }


def _edges(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise ValueError(
            f"`bucket_edges` must be comma-separated numbers > 1 like '1.5,2,3', got {text!r}"
        ) from err


def _models(args: argparse.Namespace) -> int:
    import forecache
    from forecache.api import TRANSFORMER_COMPONENTS
    from forecache.eval.methods import METHODS
    from forecache.layouts.report import describe_model
    from forecache.reference import reference_models

    if args.model is not None:
        from forecache.eval.workload import load_pipeline

        try:
            pipe, source = load_pipeline(args.model, "cpu", "float32")
        except ValueError as err:
            print(f"forecache models: error: {err}", file=sys.stderr)
            return 2
        print(f"{source}:")
        for name in TRANSFORMER_COMPONENTS:
            module = getattr(pipe, name, None)
            if module is not None:
                print(describe_model(module, name))
        return 0
    names = forecache.supported_models()
    print(f"Supported transformer classes ({len(names)}):")
    for name in names:
        print(f"  {name}")
    print(
        "Registered layouts are listed above; any other diffusers transformer is laid out from the model "
        "itself at apply (the README's table lists every class of diffusers 0.42); "
        "`forecache models --model M` shows how a model is laid out."
    )
    print(f"Reference models: {', '.join(reference_models())}")
    print(f"Peers: {', '.join(name for name, method in METHODS.items() if method.kind == 'peer')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``forecache`` command; returns the exit status (see the module docstring)."""
    from forecache._extras import MissingExtraError, require_extra

    try:
        require_extra("eval", "the forecache command")
    except MissingExtraError as err:
        print(f"forecache: error: {err}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command == "profile":
        return _profile(args)
    try:
        if args.command == "tune":
            return _tune(args)
        return _bench(args) if args.command == "bench" else _sweep(args)
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        print(f"forecache {args.command}: error: {err}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    from forecache.eval import BenchConfig, bench
    from forecache.eval.report import format_table

    out = args.out if args.out or args.resume else default_out()
    config = BenchConfig(
        methods=args.methods,
        config_files=tuple(args.config),
        match=None if args.match is None else parse_targets(args.match),
        tolerance=args.tolerance,
        out=out,
        resume=args.resume,
        **_run_fields(args),
    )
    folder = Path(args.resume or out)
    try:
        result = bench(config)
    except KeyboardInterrupt:
        print(
            f"forecache bench: interrupted; the finished rows and the report are in {folder}/ "
            f"(continue with: forecache bench --resume {folder} and the same options)",
            file=sys.stderr,
        )
        return 130
    print(format_table(result))
    for role in ("pareto", "grid", "heatmaps", "timeline"):
        if role in result.files:
            print(f"{role}: {result.files[role]}")
    print(f"wrote {folder}/ (results.json, report.md, figures, rows/)")
    if result.failed:
        print(
            f"forecache bench: {len(result.failed)} method(s) failed; see the errors above", file=sys.stderr
        )
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from forecache.eval import SweepConfig, sweep
    from forecache.eval.report import format_table

    out = args.out or default_out()
    sweep_config = SweepConfig(
        preset=args.preset,
        grid=tuple(args.grid),
        bucket_edges=_edges(args.bucket_edges),
        bucket_by=args.bucket_by,
        quality=args.quality,
        out=out,
        **_run_fields(args),
    )
    swept = sweep(sweep_config)
    print(format_table(swept.bench))
    print(f"Pareto front (speed vs PSNR): {', '.join(swept.front_psnr) or 'none'}")
    for name, spec in swept.best.items():
        print(f"best {name}: {spec.label}")
    print(f"wrote {out}/ (results.json, report.md, pareto.png, best_*.json)")
    return 1 if swept.bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
