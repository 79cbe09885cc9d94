"""Does the scenes model bind each colour and shape to its own object? Rates per object count, a T5 probe.

    python benchmarks/scenes_binding.py [--folder DIR] [--samples 128] [--steps 28]

1. Full compute on the first `--samples` held-out prompts (seeds 0..N-1, the model's call defaults):
   for prompts of one, two and three objects, the fraction of objects the judge finds on their cell,
   with the asked shape, with the asked colour, and with the colour of *another* object of the same
   prompt (a binding error: the colour was drawn, on the wrong object). A model that draws a prompt's
   colours on its objects at random reads about 1/2 and 1/3 right on two- and three-object prompts
   and the rest as another object's colour.
2. The text encoder's probe: for a few two-object prompts, the two objects' places are swapped and
   the T5 states compared word by word (relative change of each word's state; the two places have as
   many words, so every other word keeps its position in the prompt): a word whose state
   does not change with its object's place cannot tell the transformer which object it belongs to
   (FluxPipeline gives every text token the same rotary position).

``--folder``: a scenes pipeline saved by ``python -m forecache.reference.train --model scenes``
(default: the shipped one).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from forecache.reference import REFERENCE_MODELS, load_reference
from forecache.reference.scenes.grammar import COLOURS, SHAPES, SIZES, parse_caption
from forecache.reference.scenes.judge import targets
from forecache.reference.scenes.prompts import prompt_set

BATCH = 32
PROBES = [
    ("a large red circle {} and a small blue square {}, on a grey background", ("on the left", "at the top")),
    (
        "a small green triangle {} and a large yellow cross {}, on a striped white background",
        ("at the bottom right", "at the top left"),
    ),
    (
        "a large purple square {} and a large orange circle {}, on a black background",
        ("in the center", "at the bottom"),
    ),
]


def binding_rates(images: np.ndarray, prompts: list[str], judge) -> dict[int, dict[str, float]]:
    """Per object count: objects found, right shape, right colour, another object's colour."""
    scenes = [parse_caption(p) for p in prompts]
    want = targets(scenes)
    reading = judge.read_output(images)
    counts: dict[int, np.ndarray] = {}
    for i, scene in enumerate(scenes):
        row = counts.setdefault(len(scene.objects), np.zeros(5))
        for obj in scene.objects:
            c = obj.cell
            colour = int(reading.colour[i, c])
            others = {int(want["colour"][i, o.cell]) for o in scene.objects if o.cell != c}
            right = colour == int(want["colour"][i, c])
            row += (
                1,
                reading.shape[i, c] != 0,
                reading.shape[i, c] == want["shape"][i, c],
                right,
                not right and colour in others,
            )
    return {
        n: dict(
            zip(
                ("objects", "found", "shape", "colour", "other"),
                (int(r[0]), *(r[1:] / r[0])),
                strict=True,
            )
        )
        for n, r in sorted(counts.items())
    }


def place_probe(pipe) -> dict[str, float]:
    """Mean relative change of the T5 states of size, colour and shape words when two objects swap places."""
    kinds = {
        **dict.fromkeys(SIZES, "size"),
        **dict.fromkeys(COLOURS, "colour"),
        **dict.fromkeys(SHAPES, "shape"),
    }
    changes: dict[str, list[float]] = {"size": [], "colour": [], "shape": []}
    length = REFERENCE_MODELS["scenes"].call_defaults["max_sequence_length"]
    for template, (first, second) in PROBES:
        states = []
        for places in ((first, second), (second, first)):
            ids = pipe.tokenizer_2(
                [template.format(*places)], padding="max_length", max_length=length, return_tensors="pt"
            ).input_ids
            with torch.no_grad():
                states.append(pipe.text_encoder_2(ids)[0][0])
        words = pipe.tokenizer_2.convert_ids_to_tokens(ids[0])
        change = (states[0] - states[1]).norm(dim=-1) / states[0].norm(dim=-1)
        for word, value in zip(words, change.tolist(), strict=True):
            if word in kinds:
                changes[kinds[word]].append(value)
    return {kind: float(np.mean(values)) for kind, values in changes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="a saved scenes pipeline (default: the shipped one)")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--steps", type=int, default=28)
    args = parser.parse_args()
    if args.samples < 1 or args.steps < 1:
        parser.error(f"--samples and --steps must be >= 1, got {args.samples} and {args.steps}")
    torch.set_num_threads(1)
    if args.folder is None:
        pipe = load_reference("scenes")
    else:
        from diffusers import FluxPipeline

        pipe = FluxPipeline.from_pretrained(args.folder)
    pipe.set_progress_bar_config(disable=True)
    judge = REFERENCE_MODELS["scenes"].judge()
    held = prompt_set("heldout")
    prompts = [held[i % len(held)] for i in range(args.samples)]
    defaults = REFERENCE_MODELS["scenes"].call_defaults
    started = time.perf_counter()
    images = []
    for start in range(0, len(prompts), BATCH):
        seeds = range(start, min(len(prompts), start + BATCH))
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        out = pipe(
            prompts[start : start + BATCH],
            generator=generators,
            num_inference_steps=args.steps,
            output_type="np",
            **defaults,
        )
        images.append(out.images)
    rates = binding_rates(np.concatenate(images), prompts, judge.judge)
    print(
        f"## {args.folder or 'shipped scenes model'}: {len(prompts)} held-out prompts, {args.steps} steps "
        f"({time.perf_counter() - started:.0f} s)"
    )
    print(
        "| objects in the prompt | objects | found on their cell | right shape | right colour "
        "| another object's colour |"
    )
    print("|---|---|---|---|---|---|")
    for count, row in rates.items():
        print(
            f"| {count} | {row['objects']} | {row['found']:.3f} | {row['shape']:.3f} | {row['colour']:.3f} | "
            f"{row['other']:.3f} |"
        )
    probe = place_probe(pipe)
    print(
        f"T5 states' relative change when two objects swap places ({len(PROBES)} prompts): "
        + ", ".join(f"{kind} words {value:.2f}" for kind, value in probe.items())
    )


if __name__ == "__main__":
    main()
