"""What is generated: the pipeline (reference, registered source, folder or cached Hub id) and its inputs.

A `Workload` turns a batch of sample indices into one pipeline call and its output into images
``(batch, H, W, C)`` in [0, 1]. Sample ``i`` always gets seed ``seeds[i]`` and condition
``conditions[i]`` (a class label or a prompt), with one generator per sample, so every method and
every batch size sees the same noise.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DTYPES",
    "OUTPUTS",
    "PIPELINE_SOURCES",
    "REFERENCE_DEFAULT",
    "NoTransformerError",
    "Workload",
    "check_denoiser",
    "check_folder",
    "load_pipeline",
    "load_prompts",
    "reference_of",
    "register_pipeline_source",
    "samples_latents",
    "source_of",
]

REFERENCE_DEFAULT = "flux-digits"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
OUTPUTS = ("images", "latent")
"""What a run keeps: decoded outputs (images or video frames, scored) or latents (speed only)."""

PIPELINE_SOURCES: dict[str, Callable[[str], Any]] = {}
"""Model-name prefix -> loader of the rest of the name (see `register_pipeline_source`)."""


def register_pipeline_source(prefix: str, load: Callable[[str], Any]) -> None:
    """Let ``model="<prefix><name>"`` (and ``--model``) load ``load(name)``, then moved to the run's device.

    For small test and demo models (they run on one CPU thread by default, like the reference
    models): the test suite registers ``"tiny:"`` for its random-weight `TinyPipeline` of every
    diffusers transformer class. A pipeline whose ``__call__`` takes ``batch_size`` and no
    ``output_type`` is run as a latent sampler (see `Workload.samples_latents`).

    Raises:
        ValueError: If `prefix` is empty or does not end with ``":"``.

    """
    if not prefix.endswith(":") or len(prefix) < 2:
        raise ValueError(f"`prefix` must be a name ending with ':' like 'tiny:', got {prefix!r}")
    PIPELINE_SOURCES[prefix] = load


def source_of(model: Any) -> str | None:
    """Return the registered prefix `model` starts with, or None."""
    if not isinstance(model, str):
        return None
    return next((prefix for prefix in PIPELINE_SOURCES if model.startswith(prefix)), None)


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


def reference_of(model: Any) -> Any:
    """Return the shipped `ReferenceModel` that `model` is, else None.

    `model` is a reference model when it names one (None: the default one), is a pipeline loaded
    from a shipped model's folder (its ``name_or_path``) or an instance of a pipeline class only a
    reference family uses (`ReferenceModel.pipeline_class`). Other pipelines, folders, Hub ids and
    tiny models get the generic conditions (prompts or class labels) and no judge.
    """
    from forecache.reference import REFERENCE_MODELS

    if model is None:
        return REFERENCE_MODELS[REFERENCE_DEFAULT]
    if isinstance(model, str):
        return REFERENCE_MODELS.get(model)
    origin = getattr(model, "name_or_path", None)
    if isinstance(origin, (str, Path)) and str(origin):
        where = Path(origin).resolve()
        found = next((ref for ref in REFERENCE_MODELS.values() if ref.path.resolve() == where), None)
        if found is not None:
            return found
    kind = type(model).__name__
    return next((ref for ref in REFERENCE_MODELS.values() if ref.pipeline_class == kind), None)


def load_pipeline(model: Any, device: str, dtype: str) -> tuple[Any, str]:
    """Load the pipeline to benchmark.

    Args:
        model: A pipeline instance (used as it is, e.g. from a notebook); None or a reference
            name (``"flux-digits"``, ``"dit-digits"``): a shipped reference model;
            ``"<prefix><name>"`` for a prefix given to `register_pipeline_source` (the tests'
            ``"tiny:<TransformerClass>"``); a local folder: ``DiffusionPipeline.from_pretrained``; anything
            else: a Hub id loaded with ``local_files_only=True`` (nothing is downloaded).
        device: Torch device string.
        dtype: A key of `DTYPES`.

    Returns:
        The pipeline (progress bar disabled) and a description of where it came from.

    Raises:
        ValueError: If the model cannot be found or loaded (the message says what was tried), or
            if it has no `transformer` (`NoTransformerError`, e.g. a UNet pipeline), refused before
            its weights are read when its ``model_index.json`` tells.

    """
    from diffusers import DiffusionPipeline

    from forecache import reference

    if model is not None and not isinstance(model, str):
        check_denoiser(model, f"a {type(model).__name__} instance")
        model.set_progress_bar_config(disable=True)
        return model, f"{type(model).__name__} instance"
    torch_dtype = DTYPES[dtype]
    name = model or REFERENCE_DEFAULT
    try:
        if name in reference.reference_models():
            pipe, source = reference.load_reference(name, device, torch_dtype), f"reference model {name}"
        elif (prefix := source_of(name)) is not None:
            pipe = PIPELINE_SOURCES[prefix](name[len(prefix) :]).to(device=device, dtype=torch_dtype)
            source = f"{name} (random weights: speed and plumbing only)"
        elif Path(name).is_dir():
            check_folder(Path(name))
            pipe, source = DiffusionPipeline.from_pretrained(name, torch_dtype=torch_dtype).to(device), name
        else:
            pipe = DiffusionPipeline.from_pretrained(name, torch_dtype=torch_dtype, local_files_only=True)
            pipe, source = pipe.to(device), f"{name} (local Hub cache)"
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, NoTransformerError):
            raise
        raise ValueError(
            f"`model` must be a reference model {reference.reference_models()}, "
            + "".join(f"'{prefix}<name>', " for prefix in PIPELINE_SOURCES)
            + f"a local pipeline folder or a Hub id in the local cache; loading {name!r} failed: {err}"
        ) from err
    check_denoiser(pipe, repr(name))
    pipe.set_progress_bar_config(disable=True)
    return pipe, source


class NoTransformerError(ValueError):
    """The pipeline denoises with something other than a diffusion transformer (e.g. a UNet)."""


def check_folder(folder: Path) -> None:
    """Refuse a pipeline folder whose ``model_index.json`` names no ``transformer``, before loading it.

    Raises:
        NoTransformerError: Naming the pipeline class and the denoiser it has instead.

    """
    index = folder / "model_index.json"
    if not index.is_file():
        return  # from_pretrained reports what is missing
    try:
        doc = json.loads(index.read_text("utf-8"))
    except (OSError, ValueError):
        return
    entry = doc.get("transformer")
    if isinstance(entry, list) and entry and entry[-1]:
        return
    others = {k: v[-1] for k, v in doc.items() if k in ("unet", "prior", "decoder") and isinstance(v, list)}
    found = ", ".join(f"`{k}` ({v})" for k, v in others.items()) or "no `transformer` entry"
    raise NoTransformerError(
        f"`model`: {str(folder)!r} holds a {doc.get('_class_name', 'pipeline')} whose denoiser is {found}: "
        "forecache caches diffusion transformers (a pipeline with a `transformer` component) only"
    )


def check_denoiser(pipe: Any, where: str) -> None:
    """Refuse a loaded pipeline without a `transformer` module.

    Raises:
        NoTransformerError: Naming the pipeline and the denoiser it has instead.

    """
    if isinstance(getattr(pipe, "transformer", None), torch.nn.Module):
        return
    unet = getattr(pipe, "unet", None)
    found = f"a `unet` ({type(unet).__name__})" if unet is not None else "no `transformer`"
    raise NoTransformerError(
        f"`model`: {where} is a {type(pipe).__name__} with {found}: forecache caches diffusion "
        "transformers (a pipeline with a `transformer` component) only"
    )


def _accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(type(pipe).__call__).parameters


def samples_latents(pipe: Any) -> bool:
    """Whether `pipe` is a latent sampler: it draws its own inputs and returns ``.latents``.

    Such a pipeline's ``__call__`` takes ``batch_size`` and a single ``generator`` and no
    ``output_type``; it gets no conditions, and its latents are shown through a fixed affine map.
    """
    return _accepts(pipe, "batch_size") and not _accepts(pipe, "output_type")


def _latents_to_images(latents: torch.Tensor) -> np.ndarray:
    """Map raw latents of a latent sampler to images with a fixed affine map (0 -> 0.5, +-3 -> 1/0)."""
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
        conditions: One class label (int) or prompt (str) per sample; None for a latent sampler.
        call_kwargs: Arguments of every call (steps, guidance scale, height, width, frames).
        device: Where the noise is drawn.
        output: ``"images"`` (decoded: images or video frames, in [0, 1]) or ``"latent"``
            (``output_type="latent"``: no decoding, for speed-only runs).
        condition_key: The call argument the conditions go to (``"class_labels"`` or ``"prompt"``),
            read from the pipeline's signature before any method wraps it.
        kind: What the outputs are, set by the first call: ``"images"``, ``"frames"`` or ``"latent"``.
        calibration_conditions: The conditions calibrations use (a reference model's calibration
            prompts); None: the workload's own `conditions`.

    """

    pipe: Any
    seeds: Sequence[int]
    conditions: Sequence[int | str] | None
    call_kwargs: dict[str, Any]
    device: torch.device
    output: str = "images"
    calibration_conditions: Sequence[int | str] | None = None
    condition_key: str = field(init=False, default="prompt")
    kind: str = field(init=False, default="images")

    def __post_init__(self) -> None:
        self.condition_key = "class_labels" if _accepts(self.pipe, "class_labels") else "prompt"
        if self.output not in OUTPUTS:
            raise ValueError(f"`output` must be one of {list(OUTPUTS)}, got {self.output!r}")
        if self.output == "latent" and not self.samples_latents and not _accepts(self.pipe, "output_type"):
            raise ValueError(f"`output`: {type(self.pipe).__name__} takes no `output_type`, got 'latent'")

    @property
    def samples_latents(self) -> bool:
        """Whether the pipeline is a latent sampler (see `samples_latents`)."""
        return samples_latents(self.pipe)

    def calibration_kwargs(self, count: int) -> dict[str, Any]:
        """Return the arguments of one call generating `count` samples of this workload's conditions.

        Without a generator: whoever runs it seeds it (`forecache.tune` seeds its calibration
        calls itself, apart from the benchmark's seeds).
        """
        kwargs = dict(self.call_kwargs)
        if self.samples_latents:
            return {**kwargs, "batch_size": count}
        source = self.calibration_conditions or self.conditions
        if source is not None:
            kwargs[self.condition_key] = [source[i % len(source)] for i in range(count)]
        if self.output == "latent":
            kwargs["output_type"] = "latent"
        return kwargs

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        """Generate samples `indices`.

        Returns:
            float32 outputs: images ``(len(indices), H, W, C)`` or video frames ``(len(indices),
            frames, H, W, C)`` in [0, 1], or the raw latents for ``output="latent"``.

        """
        if self.samples_latents:
            seed = self.seeds[indices[0]]
            generator = torch.Generator().manual_seed(seed)
            out = self.pipe(batch_size=len(indices), generator=generator, **self.call_kwargs)
            self.kind = "latent" if self.output == "latent" else "images"
            latents = out.latents
            return latents.float().cpu().numpy() if self.output == "latent" else _latents_to_images(latents)
        generators = [torch.Generator(self.device).manual_seed(self.seeds[i]) for i in indices]
        kwargs = dict(self.call_kwargs)
        if self.conditions is not None:
            kwargs[self.condition_key] = [self.conditions[i] for i in indices]
        output_type = "latent" if self.output == "latent" else "np"
        out = self.pipe(generator=generators, output_type=output_type, **kwargs)
        frames = getattr(out, "frames", None)
        value = frames if frames is not None else getattr(out, "images", None)
        if value is None:
            value = out[0]
        if self.output == "latent":
            self.kind = "latent"
            tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
            return tensor.float().cpu().numpy()
        self.kind = "frames" if frames is not None else "images"
        array = np.asarray(
            value.float().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32
        )
        return array[..., None] if array.ndim == (4 if frames is not None else 3) else array


def build_call_kwargs(
    pipe: Any,
    steps: int,
    guidance_scale: float | None,
    height: int | None,
    width: int | None,
    frames: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the fixed call arguments, keeping only those the pipeline's ``__call__`` accepts.

    `defaults` (a reference model's `call_defaults`) fill what is not given.

    Raises:
        ValueError: If `height`/`width`/`guidance_scale`/`frames` is given but the pipeline has no
            such argument.

    """
    kwargs: dict[str, Any] = {**(defaults or {}), "num_inference_steps": steps}
    given = (("guidance_scale", guidance_scale), ("height", height), ("width", width), ("num_frames", frames))
    for key, value in given:
        if value is None:
            continue
        if not _accepts(pipe, key):
            field_name = "frames" if key == "num_frames" else key
            raise ValueError(
                f"`{field_name}` is not an argument of {type(pipe).__name__}, got {field_name}={value!r}"
            )
        kwargs[key] = value
    return kwargs


def conditions_for(
    pipe: Any, n: int, prompts: str | None, reference: Any = None
) -> tuple[list[int | str] | None, str]:
    """Per-sample conditions: a reference model's own, class labels ``i % 10``, or prompts.

    A reference model (`reference_of`) gives its own (the scenes model: the prompt set named by
    `prompts`, its held-out set by default); other class-conditional pipelines get labels
    ``i % 10``; text pipelines the prompts of `prompts` (DrawBench by default).

    Returns:
        The conditions and a description of them.

    Raises:
        ValueError: If prompts are given to a class-conditional pipeline or a latent sampler.

    """
    if reference is not None:
        return reference.conditions(prompts, n)
    if samples_latents(pipe) or _accepts(pipe, "class_labels"):
        if prompts is not None:
            raise ValueError(
                f"`prompts` must be None for {type(pipe).__name__} (it takes class labels), got {prompts!r}"
            )
        if samples_latents(pipe):
            return None, "random tiny inputs"
        return [i % 10 for i in range(n)], "class labels i % 10"
    texts = load_prompts(prompts or "drawbench")
    return [texts[i % len(texts)] for i in range(n)], f"prompts from {prompts or 'drawbench'}"
