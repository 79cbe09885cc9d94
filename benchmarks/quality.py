"""PSNR against full compute versus compute ratio, per forecaster, on the shipped reference models.

    python benchmarks/quality.py --models flux-digits dit-digits --seeds 8 --json quality.json

For every interval in --intervals it runs reuse, Taylor orders 1-3 and Adams-Bashforth orders 2-3
on the same schedule (blocks target unless --target; the guard's fallback per --fallback), plus
the confidence gate at several thresholds, and prints a markdown table: compute ratio, mean
paired PSNR (dB) against the full-compute output of the same seed and class, and class accuracy
by the shipped classifier. CPU by default; a few minutes per model.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

import forecache
from forecache import AdamsBashforth, CacheConfig, ConfidenceGate, Interval, Reuse, Taylor
from forecache.reference import load_classifier, load_reference


def generate(pipe, labels, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    images = pipe(
        class_labels=labels, num_inference_steps=steps, generator=generator, output_type="pt"
    ).images
    return images.float().cpu()


def psnr(a, b):
    values = [float(peak_signal_noise_ratio(x, y, data_range=1.0)) for x, y in zip(a, b, strict=True)]
    return sum(min(v, 100.0) for v in values) / len(values)


def accuracy(classifier, images, labels):
    with torch.no_grad():
        predicted = classifier(images[:, :1] * 2 - 1).argmax(-1)  # pt images are [0, 1]
    return float((predicted == torch.tensor(labels)).float().mean())


def methods(intervals, target, thresholds, fallback):
    common = {"target": target, "fallback": fallback}
    for every in intervals:
        policy = Interval(every=every, warmup=2, cooldown=1)
        yield f"reuse N={every}", CacheConfig(policy, Reuse(), **common)
        for order in (1, 2, 3):
            yield f"taylor{order} N={every}", CacheConfig(policy, Taylor(order=order), **common)
        for order in (2, 3):
            yield f"ab{order} N={every}", CacheConfig(policy, AdamsBashforth(order=order), **common)
    for threshold in thresholds:
        gate = ConfidenceGate(threshold=threshold, max_consecutive=5, warmup=2)
        yield f"gate t={threshold}", CacheConfig(gate, Taylor(order=1), **common)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["flux-digits", "dit-digits"])
    parser.add_argument("--seeds", type=int, default=4, help="batches of 10 samples (one per class)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--intervals", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4])
    parser.add_argument("--fallback", default="reuse", choices=["reuse", "recompute"], help="guard fallback")
    parser.add_argument("--target", default="blocks", choices=["modules", "blocks", "output"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    labels = list(range(10))
    classifier = load_classifier()
    rows = []
    for model in args.models:
        pipe = load_reference(model)
        pipe.set_progress_bar_config(disable=True)
        start = time.perf_counter()
        baseline = [generate(pipe, labels, args.steps, seed) for seed in range(args.seeds)]
        base_time = time.perf_counter() - start
        base_acc = sum(accuracy(classifier, b, labels) for b in baseline) / len(baseline)
        rows.append(
            {"model": model, "method": "full compute", "ratio": 1.0, "psnr": math.inf, "acc": base_acc}
        )
        print(
            f"{model}: full compute {base_time:.1f}s for {args.seeds * 10} samples, accuracy {base_acc:.3f}"
        )
        for name, config in methods(args.intervals, args.target, args.thresholds, args.fallback):
            outputs, ratios = [], []
            with forecache.cached(pipe, config):
                for seed in range(args.seeds):
                    outputs.append(generate(pipe, labels, args.steps, seed))
                    ratios.append(forecache.stats(pipe).compute_ratio)
            row = {
                "model": model,
                "method": name,
                "ratio": sum(ratios) / len(ratios),
                "psnr": sum(psnr(o, b) for o, b in zip(outputs, baseline, strict=True)) / len(outputs),
                "acc": sum(accuracy(classifier, o, labels) for o in outputs) / len(outputs),
            }
            rows.append(row)
            print(f"  {name:16s} ratio {row['ratio']:.2f}x  PSNR {row['psnr']:.2f} dB  acc {row['acc']:.3f}")
    print("\n| model | method | compute ratio | PSNR (dB) | class accuracy |\n|---|---|---|---|---|")
    for row in rows:
        cells = (
            row["model"],
            row["method"],
            f"{row['ratio']:.2f}x",
            f"{row['psnr']:.2f}",
            f"{row['acc']:.3f}",
        )
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            settings = {key: getattr(args, key) for key in ("target", "fallback", "steps", "seeds")}
            json.dump({**settings, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
