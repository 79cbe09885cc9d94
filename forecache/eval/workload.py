"""What is generated: the pipeline (reference, tiny, local folder or cached Hub id) and its inputs per seed.

A `Workload` turns a batch of sample indices into one pipeline call and its output into images
``(batch, H, W, C)`` in [0, 1]. Sample ``i`` always gets seed ``seeds[i]`` and condition
``conditions[i]`` (a class label or a prompt), with one generator per sample, so every method and
every batch size sees the same noise.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DTYPES", "REFERENCE_DEFAULT", "Workload", "load_pipeline", "load_prompts"]

REFERENCE_DEFAULT = "flux-digits"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_TINY_PREFIX = "tiny:"


def load_prompts(source: str) -> list[str]:
    """Read prompts: ``"drawbench"`` (the 200 DrawBench prompts shipped here) or a text file, one per line.

    Raises:
        ValueError: If the file cannot be read or holds no prompt.

    """
    if source == "drawbench":
        text = resources.files("forecache.eval").joinpath("data/drawbench200.txt").read_text("utf-8")
    else:
        try:
            text = Path(source).read_text("utf-8")
        except OSError as err:
            raise ValueError(
                f"`prompts` must be 'drawbench' or a readable text file, got {source!r}: {err}"
            ) from err
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"`prompts` must name a file with at least one prompt, got {source!r} (empty)")
    return prompts


def load_pipeline(model: Any, device: str, dtype: str) -> tuple[Any, str]:
    """Load the pipeline to benchmark.

    Args:
        model: A pipeline instance (used as it is, e.g. from a notebook); None or a reference
            name (``"flux-digits"``, ``"dit-digits"``): a shipped reference model;
            ``"tiny:<TransformerClass>"``: forecache's random-weight `TinyPipeline` (plumbing only,
            never quality); a local folder: ``DiffusionPipeline.from_pretrained``; anything
            else: a Hub id loaded with ``local_files_only=True`` (nothing is downloaded).
        device: Torch device string.
        dtype: A key of `DTYPES`.

    Returns:
        The pipeline (progress bar disabled) and a description of where it came from.

    Raises:
        ValueError: If the model cannot be found or loaded; the message says what was tried.

    """
    from diffusers import DiffusionPipeline

    from forecache import reference
    from forecache.testing.tiny_pipeline import TinyPipeline

    if model is not None and not isinstance(model, str):
        if not isinstance(getattr(model, "transformer", None), torch.nn.Module):
            raise ValueError(
                f"`model` must be a pipeline with a `transformer` or a name, got {type(model).__name__}"
            )
        model.set_progress_bar_config(disable=True)
        return model, f"{type(model).__name__} instance"
    torch_dtype = DTYPES[dtype]
    name = model or REFERENCE_DEFAULT
    try:
        if name in reference.reference_models():
            pipe, source = reference.load_reference(name, device, torch_dtype), f"reference model {name}"
        elif name.startswith(_TINY_PREFIX):
            pipe = TinyPipeline.from_tiny(name[len(_TINY_PREFIX) :]).to(device=device, dtype=torch_dtype)
            source = f"{name} (random weights: speed and plumbing only)"
        elif Path(name).is_dir():
            pipe, source = DiffusionPipeline.from_pretrained(name, torch_dtype=torch_dtype).to(device), name
        else:
            pipe = DiffusionPipeline.from_pretrained(name, torch_dtype=torch_dtype, local_files_only=True)
            pipe, source = pipe.to(device), f"{name} (local Hub cache)"
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"`model` must be a reference model {reference.reference_models()}, 'tiny:<TransformerClass>', "
            f"a local pipeline folder or a Hub id in the local cache; loading {name!r} failed: {err}"
        ) from err
    pipe.set_progress_bar_config(disable=True)
    return pipe, source


def _accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(type(pipe).__call__).parameters


def _latents_to_images(latents: torch.Tensor) -> np.ndarray:
    """Map raw latents of `TinyPipeline` to images with a fixed affine map (0 -> 0.5, +-3 -> 1/0)."""
    x = latents.float()
    if x.ndim == 5:
        x = x[:, :, 0]
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x[:, :3].permute(0, 2, 3, 1)
    return (x / 6.0 + 0.5).clamp(0.0, 1.0).cpu().numpy()


@dataclass
class Workload:
    """The pipeline, the per-sample seeds and conditions, and the fixed call arguments.

    Attributes:
        pipe: The pipeline.
        seeds: One seed per sample.
        conditions: One class label (int) or prompt (str) per sample; None for unconditional tiny runs.
        call_kwargs: Arguments of every call (steps, guidance scale, height, width).
        device: Where the noise is drawn.
        condition_key: The call argument the conditions go to (``"class_labels"`` or ``"prompt"``),
            read from the pipeline's signature before any method wraps it.

    """

    pipe: Any
    seeds: Sequence[int]
    conditions: Sequence[int | str] | None
    call_kwargs: dict[str, Any]
    device: torch.device
    condition_key: str = field(init=False, default="prompt")

    def __post_init__(self) -> None:
        self.condition_key = "class_labels" if _accepts(self.pipe, "class_labels") else "prompt"

    @property
    def is_tiny(self) -> bool:
        """Whether the pipeline is forecache's `TinyPipeline` (latents out, one generator per batch)."""
        from forecache.testing.tiny_pipeline import TinyPipeline

        return isinstance(self.pipe, TinyPipeline)

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        """Generate samples `indices`; returns images ``(len(indices), H, W, C)`` float32 in [0, 1]."""
        if self.is_tiny:
            seed = self.seeds[indices[0]]
            generator = torch.Generator().manual_seed(seed)
            out = self.pipe(batch_size=len(indices), generator=generator, **self.call_kwargs)
            return _latents_to_images(out.latents)
        generators = [torch.Generator(self.device).manual_seed(self.seeds[i]) for i in indices]
        kwargs = dict(self.call_kwargs)
        if self.conditions is not None:
            kwargs[self.condition_key] = [self.conditions[i] for i in indices]
        out = self.pipe(generator=generators, output_type="np", **kwargs)
        images = np.asarray(out.images, dtype=np.float32)
        return images[..., None] if images.ndim == 3 else images


def build_call_kwargs(
    pipe: Any, steps: int, guidance_scale: float | None, height: int | None, width: int | None
) -> dict[str, Any]:
    """Return the fixed call arguments, keeping only those the pipeline's ``__call__`` accepts.

    Raises:
        ValueError: If `height`/`width`/`guidance_scale` is given but the pipeline has no such argument.

    """
    kwargs: dict[str, Any] = {"num_inference_steps": steps}
    for key, value in (("guidance_scale", guidance_scale), ("height", height), ("width", width)):
        if value is None:
            continue
        if not _accepts(pipe, key):
            raise ValueError(f"`{key}` is not an argument of {type(pipe).__name__}, got {key}={value!r}")
        kwargs[key] = value
    return kwargs


def conditions_for(pipe: Any, n: int, prompts: str | None) -> tuple[list[int | str] | None, str]:
    """Per-sample conditions: class labels ``i % 10`` for class-conditional pipelines, prompts otherwise.

    Returns:
        The conditions and a description of them.

    Raises:
        ValueError: If prompts are given to a class-conditional pipeline or the tiny pipeline.

    """
    from forecache.testing.tiny_pipeline import TinyPipeline

    if isinstance(pipe, TinyPipeline) or _accepts(pipe, "class_labels"):
        if prompts is not None:
            raise ValueError(
                f"`prompts` must be None for {type(pipe).__name__} (it takes class labels), got {prompts!r}"
            )
        if isinstance(pipe, TinyPipeline):
            return None, "random tiny inputs"
        return [i % 10 for i in range(n)], "class labels i % 10"
    texts = load_prompts(prompts or "drawbench")
    return [texts[i % len(texts)] for i in range(n)], f"prompts from {prompts or 'drawbench'}"
