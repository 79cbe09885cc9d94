"""Which untuned schedule holds on every reference model: the evidence behind `TimelineConfig`'s default.

    python benchmarks/timeline_default.py [--steps 28 50] [--ratios 3 4 5] [--models scenes ...]
        [--set lead|partial]

For each model (default: scenes, flux-digits, dit-digits), step count and ratio of steps to computed
steps (default 3, 4, 5), every candidate runs on the same 8 samples (scenes: the first 8 held-out
prompts; the digit models: labels 0-7), seed i for sample i, one torch thread, and is scored by PSNR
against full compute (pooled over the 8, and the worst sample). The candidates: the former default
(`Shaped` on the step index, shape 1.3, Taylor 2) and `Shaped` on the noise levels
(``axis="noise"``) for shapes 0.7-1.2 with Taylor 1-2 and Hermite 1-2 (sigma 0.5). The table ranks
them by the worst model's PSNR, since a default has to hold on the model the user has, not on
average. About 6 minutes at 28 steps and 12 at 50 on one core.

``--set lead``: the spread without a lead (the default before the partial lead) against a lead
step (``Shaped(lead=2)``: the second step computed too, in place of the spread's last) with reuse,
Taylor 1 and shapes 0.8-1.2, and the spread with reuse (about 2 minutes for both step counts at 4
ratios).

``--set partial``: the default (``lead=1.5``: the second step partial, running the first and last
quarter of the blocks, counted as half a step; the slope 0.8 after it, none across it) against
the spread without a lead (Taylor 1, the default before; and with the slope 0.8, to tell the lead
from the damping), the partial lead with a full slope or Taylor 1 across it, and a whole lead step.

Every cell gives the compute ratio measured (linear-layer FLOPs of full compute over the
candidate's), since a partial step is a fraction of one.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import forecache
from forecache.accel.forecasters import Damped, Hermite, Reuse, Taylor
from forecache.accel.policies import Shaped
from forecache.calibrate.flops import count_flops
from forecache.reference import REFERENCE_MODELS, load_reference

SAMPLES = 8
FORECASTERS = {
    "Taylor 1": Taylor(order=1),
    "Taylor 2": Taylor(order=2),
    "Hermite 1": Hermite(order=1, sigma=0.5),
    "Hermite 2": Hermite(order=2, sigma=0.5),
}


def _config(policy: Callable[[float], Any], forecaster: Any) -> Callable[[float], forecache.CacheConfig]:
    return lambda ratio: forecache.CacheConfig(policy=policy(ratio), forecaster=forecaster, target="blocks")


def partial_candidates() -> list[tuple[str, Callable[[float], forecache.CacheConfig]]]:
    """The default (a partial lead, the slope 0.8 after it) and what it is made of, one change at a time."""

    def shaped(lead: float) -> Callable[[float], Shaped]:
        return lambda r: Shaped(r, 1.0, axis="noise", lead=lead)

    return [
        ("partial lead, slope 0.8 (default)", forecache.TimelineConfig),
        ("no lead, Taylor 1 (default before)", _config(shaped(1.0), Taylor(order=1))),
        ("no lead, slope 0.8", _config(shaped(1.0), Damped((0.0, 0.8)))),
        ("partial lead, slope 1", _config(shaped(1.5), Damped((0.0, 0.0, 1.0)))),
        ("partial lead, slope 0.5 across it, 0.8", _config(shaped(1.5), Damped((0.0, 0.5, 0.8)))),
        ("partial lead, slope across it, 0.8", _config(shaped(1.5), Damped((0.0, 1.0, 0.8)))),
        ("partial lead, Taylor 1 across it", _config(shaped(1.5), Taylor(order=1))),
        ("whole lead step, slope 0.8", _config(shaped(2.0), Damped((0.0, 0.0, 0.8)))),
    ]


def lead_candidates() -> list[tuple[str, Callable[[float], forecache.CacheConfig]]]:
    """The spread without a lead (shape 1, Taylor 1), with reuse, and lead 2 variants."""
    rows = []
    for lead, shape, name, forecaster in [
        (1, 1.0, "Taylor 1", Taylor(order=1)),
        (1, 1.0, "Reuse", Reuse()),
        (2, 1.0, "Reuse", Reuse()),
        (2, 1.0, "Taylor 1", Taylor(order=1)),
        (2, 0.8, "Reuse", Reuse()),
        (2, 1.2, "Reuse", Reuse()),
    ]:
        policy = (lambda s, k: lambda r: Shaped(r, s, axis="noise", lead=k))(shape, lead)
        rows.append((f"lead {lead}, shape {shape:g}, {name}", _config(policy, forecaster)))
    return rows


def candidates() -> list[tuple[str, Callable[[float], forecache.CacheConfig]]]:
    """The former default, then the noise-axis shapes x forecasters."""
    config = _config
    rows = [
        ("step axis, shape 1.3, Taylor 2 (former default)", config(lambda r: Shaped(r, 1.3), Taylor(order=2)))
    ]
    for shape, (name, forecaster) in itertools.product((0.7, 0.8, 0.9, 1.0, 1.2), FORECASTERS.items()):
        policy = (lambda s: lambda r: Shaped(r, s, axis="noise"))(shape)
        rows.append((f"noise axis, shape {shape:g}, {name}", config(policy, forecaster)))
    return rows


SETS = {"noise": candidates, "lead": lead_candidates, "partial": partial_candidates}


def scores(
    model: str, steps: int, ratios: list[float], rows: Callable[[], list[tuple[str, Any]]] = candidates
) -> dict[tuple[str, float], tuple[float, float, float]]:
    """Pooled and worst-sample PSNR, and the compute ratio, of every candidate at every ratio on one model."""
    pipe = load_reference(model)
    pipe.set_progress_bar_config(disable=True)
    entry = REFERENCE_MODELS[model]
    defaults = dict(entry.call_defaults)
    conditions = entry.conditions(None, SAMPLES)[0]  # held-out prompts, or labels 0..7
    defaults["prompt" if entry.prompt_sets else "class_labels"] = conditions

    def run() -> tuple[np.ndarray, int]:
        generators = [torch.Generator().manual_seed(i) for i in range(SAMPLES)]
        with count_flops(pipe.transformer) as flops:
            result = pipe(num_inference_steps=steps, generator=generators, output_type="np", **defaults)
        images = result.images
        return np.asarray(images, dtype=np.float64), flops.total

    full, full_flops = run()
    out = {}
    for (label, make), ratio in itertools.product(rows(), ratios):
        with forecache.cached(pipe, make(ratio)):
            images, flops = run()
        errors = ((images - full) ** 2).reshape(SAMPLES, -1).mean(1)
        pooled, worst = 10 * np.log10(1 / errors.mean()), float(10 * np.log10(1 / errors.max()))
        out[label, ratio] = (pooled, worst, full_flops / flops)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[28, 50])
    parser.add_argument("--ratios", type=float, nargs="+", default=[3.0, 4.0, 5.0])
    parser.add_argument("--models", nargs="+", default=["scenes", "flux-digits", "dit-digits"])
    parser.add_argument("--set", choices=sorted(SETS), default="noise", help="the candidates (default noise)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = SETS[args.set]
    for steps in args.steps:
        table = {model: scores(model, steps, args.ratios, rows) for model in args.models}
        for ratio in args.ratios:
            print(f"\n{steps} steps, {ratio:g}x asked: PSNR (worst sample) @ratio, worst model first\n")
            print("| candidate | worst model | " + " | ".join(args.models) + " |")
            print("|---|---|" + "---|" * len(args.models))
            ranked = [(min(table[m][label, ratio][0] for m in args.models), label) for label, _ in rows()]
            for worst, label in sorted(ranked, reverse=True):
                cells = " | ".join(
                    "{:.1f} ({:.1f}) @{:.2f}x".format(*table[m][label, ratio]) for m in args.models
                )
                print(f"| {label} | {worst:.1f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
