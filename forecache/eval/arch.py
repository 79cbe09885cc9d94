"""Published diffusers transformer architectures (shipped JSON configs, no weights) and random inputs."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forecache.eval._private import keep_in_fp32_modules
from forecache.reference.inputs import flux_image_ids

__all__ = ["ARCH_DIR", "SIZES", "Arch", "LatentInputs", "arch_names", "load_arch"]

ARCH_DIR = Path(__file__).parent / "archs"
SIZES = ("tiny", "full")
_INPUTS = ("flux", "wan", "hunyuan", "dit")
_SCHEDULERS = ("flow", "ddim")


def arch_names() -> list[str]:
    """Return the names of the shipped architectures (the JSON files in `ARCH_DIR`), sorted."""
    return sorted(path.stem for path in ARCH_DIR.glob("*.json"))


@dataclass(frozen=True)
class LatentInputs:
    """One denoising trajectory's inputs.

    Attributes:
        latents: The initial noise: ``(batch, tokens, channels)`` for FLUX (packed 2x2), else
            ``(batch, channels, frames, height, width)`` or ``(batch, channels, height, width)``.
        kwargs: The transformer's other keyword arguments (text embeddings, ids, guidance, labels).
        shapes: Human-readable shapes for reports.

    """

    latents: torch.Tensor
    kwargs: dict[str, Any]
    shapes: dict[str, list[int]]


@dataclass(frozen=True)
class Arch:
    """A shipped architecture: a diffusers transformer class and its published configuration.

    Attributes:
        name: The ``--arch`` value (the JSON file's stem).
        description: Where the configuration comes from.
        class_name: The diffusers transformer class.
        published_params: The published parameter count.
        inputs: How inputs are built: one of ``flux``, ``wan``, ``hunyuan``, ``dit``.
        scheduler: ``{"type": "flow", "shift": s}`` (flow-matching Euler) or ``{"type": "ddim"}``.
        timestep_scale: Multiplies a timestep in [0, 1000] before the call (FLUX takes ``t / 1000``).
        text_tokens: Text-embedding length (0: class-conditional).
        defaults: Default ``height``, ``width``, ``frames`` for the full size.
        config: The published ``__init__`` keyword arguments.
        tiny: Overrides for ``--size tiny``: ``config`` (fewer layers, heads, smaller dims),
            ``text_tokens``, ``defaults``.
        duplicated_params: Regex of parameters diffusers repeats where the original model shares
            one copy (DiT's per-block timestep/label embedders); left out of `param_count`.

    """

    name: str
    description: str
    class_name: str
    published_params: float
    inputs: str
    scheduler: Mapping[str, Any]
    timestep_scale: float
    text_tokens: int
    defaults: Mapping[str, int]
    config: Mapping[str, Any]
    tiny: Mapping[str, Any] = field(default_factory=dict)
    duplicated_params: str | None = None

    def __post_init__(self) -> None:
        if self.inputs not in _INPUTS:
            raise ValueError(f"{self.name}: `inputs` must be one of {list(_INPUTS)}, got {self.inputs!r}")
        if self.scheduler.get("type") not in _SCHEDULERS:
            raise ValueError(
                f"{self.name}: `scheduler.type` must be one of {list(_SCHEDULERS)}, got {self.scheduler!r}"
            )
        unknown = set(self.tiny.get("config", {})) - set(self.config)
        if unknown:
            raise ValueError(f"{self.name}: `tiny.config` overrides unknown keys {sorted(unknown)}")

    def model_class(self) -> type:
        """Return the diffusers class (imports diffusers)."""
        import diffusers

        cls: type = getattr(diffusers, self.class_name)
        return cls

    def check_signature(self) -> None:
        """Raise `ValueError` if a config key is not a parameter of the class's ``__init__``."""
        accepted = set(inspect.signature(self.model_class()).parameters)
        unknown = sorted(set(self.config) - accepted)
        if unknown:
            raise ValueError(f"{self.name}: {self.class_name} does not accept {unknown}")

    def model_config(self, size: str) -> dict[str, Any]:
        """Return the ``__init__`` keyword arguments for ``size`` (``"tiny"`` or ``"full"``)."""
        if size not in SIZES:
            raise ValueError(f"`size` must be one of {list(SIZES)}, got {size!r}")
        config = dict(self.config)
        if size == "tiny":
            config.update(self.tiny.get("config", {}))
        return config

    def sized(self, size: str, key: str) -> Any:
        """Return `text_tokens` or `defaults` for ``size`` (the tiny override where one is given)."""
        return self.tiny.get(key, getattr(self, key)) if size == "tiny" else getattr(self, key)

    def build(self, size: str, device: torch.device | str, dtype: torch.dtype) -> torch.nn.Module:
        """Instantiate with random weights directly on `device` in `dtype` (``"meta"`` allocates nothing).

        Modules the class keeps in float32 (``_keep_in_fp32_modules``) stay float32, as when loading.
        """
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = self.model_class()(**self.model_config(size))
        finally:
            torch.set_default_dtype(previous)
        keep = keep_in_fp32_modules(model)
        if keep and dtype != torch.float32:  # as from_pretrained(torch_dtype=...) does
            for name, param in model.named_parameters():
                if keep & set(name.split(".")):
                    param.data = param.data.float()
        return model.eval().requires_grad_(False)

    def param_count(self, size: str = "full") -> int:
        """Parameters of a ``meta``-device instance, less `duplicated_params`."""
        model = self.build(size, "meta", torch.float32)
        pattern = re.compile(self.duplicated_params) if self.duplicated_params else None
        return sum(p.numel() for n, p in model.named_parameters() if not (pattern and pattern.search(n)))

    def make_inputs(
        self, model_config: Mapping[str, Any], size: str, height: int, width: int, frames: int, **where: Any
    ) -> LatentInputs:
        """Random inputs of one trajectory with the shapes the real pipeline computes.

        Args:
            model_config: The built model's configuration.
            size: ``"tiny"`` or ``"full"`` (text length).
            height: Image height in pixels (8x VAE; FLUX also packs 2x2, so a multiple of 16).
            width: Image width in pixels.
            frames: Video frames (Wan, HunyuanVideo: 4x temporal VAE, ``frames = 4k + 1``).
            **where: ``device``, ``dtype`` and ``generator`` of the tensors.

        Raises:
            ValueError: A size the VAE and patching cannot take, naming the rule and the value.

        """
        device, dtype, gen = where["device"], where["dtype"], where["generator"]
        multiple = 16 if self.inputs != "dit" else 8 * int(model_config["patch_size"])
        for key, value in (("height", height), ("width", width)):
            if value < multiple or value % multiple:
                raise ValueError(
                    f"`{key}` must be a positive multiple of {multiple} for {self.name}, got {value}"
                )
        video = self.inputs in ("wan", "hunyuan")
        if video and (frames < 1 or (frames - 1) % 4):
            raise ValueError(f"`frames` must be 4k+1 (1, 5, 9, ...) for {self.name}, got {frames}")

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen, device="cpu").to(device=device, dtype=dtype)

        tokens = int(self.sized(size, "text_tokens"))
        kwargs: dict[str, Any] = {}
        h, w = height // 8, width // 8
        if self.inputs == "flux":
            latents = randn(1, (h // 2) * (w // 2), int(model_config["in_channels"]))
            kwargs["img_ids"] = flux_image_ids(h // 2, w // 2, device=device, dtype=dtype)
            kwargs["txt_ids"] = torch.zeros(tokens, 3, device=device, dtype=dtype)
            kwargs["encoder_hidden_states"] = randn(1, tokens, int(model_config["joint_attention_dim"]))
            kwargs["pooled_projections"] = randn(1, int(model_config["pooled_projection_dim"]))
            if model_config.get("guidance_embeds"):
                kwargs["guidance"] = torch.full((1,), 3.5, device=device, dtype=dtype)
        elif video:
            latents = randn(1, int(model_config["in_channels"]), (frames - 1) // 4 + 1, h, w)
            dim_key = "text_dim" if self.inputs == "wan" else "text_embed_dim"
            kwargs["encoder_hidden_states"] = randn(1, tokens, int(model_config[dim_key]))
            if self.inputs == "hunyuan":
                kwargs["encoder_attention_mask"] = torch.ones(1, tokens, device=device, dtype=dtype)
                kwargs["pooled_projections"] = randn(1, int(model_config["pooled_projection_dim"]))
                kwargs["guidance"] = torch.full((1,), 6000.0, device=device, dtype=dtype)
        else:
            latents = randn(1, int(model_config["in_channels"]), h, w)
            label = torch.randint(0, int(model_config["num_embeds_ada_norm"]), (1,), generator=gen)
            kwargs["class_labels"] = label.to(device)
        shapes = {"latents": list(latents.shape)}
        shapes.update({k: list(v.shape) for k, v in kwargs.items() if k != "guidance"})
        return LatentInputs(latents, kwargs, shapes)


def load_arch(name: str) -> Arch:
    """Load and validate a shipped architecture by name.

    Raises:
        ValueError: Unknown name (the message lists the shipped ones) or a malformed file.

    """
    names = arch_names()
    if name not in names:
        raise ValueError(f"`arch` must be one of {names}, got {name!r}")
    doc = json.loads((ARCH_DIR / f"{name}.json").read_text(encoding="utf-8"))
    doc["class_name"] = doc.pop("class")
    try:
        arch = Arch(**doc)
    except TypeError as err:
        raise ValueError(f"{ARCH_DIR / name}.json: {err}") from err
    if arch.name != name:
        raise ValueError(f"{name}.json: `name` must be the file's stem {name!r}, got {arch.name!r}")
    return arch
