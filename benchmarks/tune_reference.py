"""Issue 14's acceptance on the shipped reference models: what `forecache.tune` and the presets reach.

    python benchmarks/tune_reference.py [--models flux-digits flux-digits-deep dit-digits] [--held-out 20]
        [--no-damp]

For each model: `forecache.tune` on 4 calibration samples (seeds apart from the held-out ones) for
8x (FLUX-architecture models) or 6x (dit-digits), at 50 and at 28 steps; each tuned config then
runs on 20 held-out samples at its step count, and the 50-step one also at 28 steps (its
`Timeline` computes the same points of the trajectory there: fewer steps skipped, so a lower
ratio); `TimelineConfig()` (the preset, no tuning) runs on the same samples. PSNR is paired
against full compute over all pixels of the decoded images; the compute ratio is the
linear-layer FLOPs of full compute over the method's (`forecache.calibrate.flops`), stem and head
included. One torch thread. ``--no-damp``: the tuner keeps its chosen forecaster (no slope damping
fitted to each stretch, `forecache.calibrate.damping`).
"""

from __future__ import annotations

import argparse
import time

import torch

import forecache
from forecache.calibrate.flops import count_flops
from forecache.calibrate.frames import frame_psnr as _psnr
from forecache.calibrate.frames import output as _output
from forecache.calibrate.tuner import _calls
from forecache.reference import load_reference

GOALS = {"flux-digits": 8.0, "flux-digits-deep": 8.0, "dit-digits": 6.0}
CALIBRATION_SEED = 100_000


def held_out(pipe, steps: int, samples: int):
    return _calls(pipe, [{"class_labels": [i % 10 for i in range(samples)], "num_inference_steps": steps}])


def measure(pipe, calls, config=None):
    """Outputs and linear-layer FLOPs of the calls, cached with `config` (None: full compute)."""
    with count_flops(pipe.transformer) as flops:
        if config is None:
            outputs = [_output(c()) for c in calls]
        else:
            with forecache.cached(pipe, config):
                outputs = [_output(c()) for c in calls]
    return outputs, flops.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(GOALS))
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument("--no-damp", action="store_true", help="tune without the fitted slope damping")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | method | steps | ratio (FLOPs) | PSNR held-out | PSNR calibration |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        pipe = load_reference(name)
        pipe.set_progress_bar_config(disable=True)
        tuned = {}
        for steps in (50, 28):
            start = time.perf_counter()
            calibration = {"class_labels": list(range(args.calibration)), "num_inference_steps": steps}
            result = forecache.tune(
                pipe,
                calibration,
                ratio=GOALS[name],
                seed=CALIBRATION_SEED,
                progress=False,
                damp=not args.no_damp,
            )
            tuned[steps] = (result, time.perf_counter() - start)
        for steps in (50, 28):
            calls = held_out(pipe, steps, args.held_out)
            reference, full = measure(pipe, calls)
            rows = [(f"tuned at {steps}", tuned[steps][0].config, tuned[steps][0].chosen.psnr_db)]
            if steps == 28:
                rows.append(("tuned at 50, run at 28", tuned[50][0].config, None))
            rows.append(("TimelineConfig()", forecache.TimelineConfig(), None))
            for label, config, calibrated in rows:
                outputs, flops = measure(pipe, calls, config)
                shown = "-" if calibrated is None else f"{calibrated:.2f} dB"
                psnr = _psnr(reference, outputs)
                print(
                    f"| {name} | {label} | {steps} | {full / flops:.2f}x | {psnr:.2f} dB | {shown} |",
                    flush=True,
                )
        for steps, (result, seconds) in tuned.items():
            chosen = result.chosen
            print(
                f"| {name} | (tuned at {steps}: {chosen.forecaster!r}, computed steps {chosen.computed}, "
                f"partial {chosen.partial}; "
                f"tuning took {seconds:.0f} s) | | | | |",
                flush=True,
            )


if __name__ == "__main__":
    main()
