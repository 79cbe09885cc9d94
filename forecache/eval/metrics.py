"""Image quality metrics: paired PSNR/SSIM/LPIPS against the baseline, FID, adherence, CLIP score.

Images are numpy arrays ``(batch, H, W, C)`` in [0, 1], videos ``(batch, frames, H, W, C)``.
Metrics whose weights are not on this machine (Inception for FID, LPIPS backbones, CLIP) are never
downloaded: they are reported as unavailable, with the reason, never as 0. FID is computed with
Inception-v3 features when their weights are local, or, on the shipped reference models only, with
their judge's features (the digit classifier, the scenes judge; labelled so); never from fewer than
`FID_MIN_SAMPLES` generated samples, below which it says nothing a reader could use. Adherence is
the reference model's judge's score of what each image shows against what was asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["FID_MIN_SAMPLES", "Metric", "QualityScorer", "paired_scores", "psnr", "ssim", "to_tensor"]

_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
_CLIP_ID = "openai/clip-vit-base-patch16"
FID_MIN_SAMPLES = 64
"""Fewest generated samples behind a reported FID."""


@dataclass(frozen=True)
class Metric:
    """A metric value, or why there is none.

    Attributes:
        value: The number, or None when unavailable.
        note: What was measured and how (always set when `value` is None).

    """

    value: float | None
    note: str = ""


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(batch, H, W, C)`` numpy in [0, 1] -> ``(batch, C, H, W)`` float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)


def psnr(reference: np.ndarray, images: np.ndarray) -> tuple[float, list[float]]:
    """Peak signal-to-noise ratio in dB (data range 1.0), pooled and per image.

    ``10 log10(1 / MSE)``; the pooled value uses the MSE over all images. Identical images give
    ``inf``.

    Returns:
        ``(pooled, per_image)``.

    """
    ref, img = to_tensor(reference).double(), to_tensor(images).double()
    pooled = float(peak_signal_noise_ratio(img, ref, data_range=1.0))
    per = peak_signal_noise_ratio(img, ref, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return pooled, [float(v) for v in per]


def ssim(reference: np.ndarray, images: np.ndarray) -> float:
    """Mean structural similarity (Gaussian window, data range 1.0; window shrunk for images < 11 px).

    Computed in float32: on CPU the Gaussian window's convolution is about 16x slower in float64
    (0.15 s against 0.01 s for 16 images of 32x32) and the means agree to 1e-6.
    """
    ref, img = to_tensor(reference), to_tensor(images)
    side = min(ref.shape[-2:])
    kernel = min(11, side - 1 if side % 2 == 0 else side)
    sigma = 1.5 * kernel / 11  # torchmetrics sizes the Gaussian window from sigma, not kernel_size
    value = structural_similarity_index_measure(img, ref, data_range=1.0, kernel_size=kernel, sigma=sigma)
    return float(value[0] if isinstance(value, tuple) else value)


def _hub_checkpoint(name: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def paired_scores(reference: np.ndarray, images: np.ndarray, with_ssim: bool = True) -> dict[str, Any]:
    """PSNR and SSIM of outputs against the baseline's outputs of the same seeds.

    Args:
        reference: The baseline's outputs, images ``(batch, H, W, C)`` or videos
            ``(batch, frames, H, W, C)``.
        images: The method's outputs, same shape.
        with_ssim: Also compute SSIM (and per-frame scores). Default True; False: PSNR only (cheap).

    Returns:
        ``psnr_db`` (pooled over every image or frame), ``psnr_db_per_sample``, ``ssim`` (mean), and
        for videos ``psnr_db_per_frame`` and ``ssim_per_frame`` (each over the samples).

    """
    if reference.ndim == 5:
        batch, frames = reference.shape[:2]
        if not with_ssim:
            flat = reference.reshape(-1, *reference.shape[2:]), images.reshape(-1, *images.shape[2:])
            per_sample = [psnr(reference[i], images[i])[0] for i in range(batch)]
            return {"psnr_db": psnr(*flat)[0], "psnr_db_per_sample": per_sample}
        flat_ref, flat_img = (
            reference.reshape(-1, *reference.shape[2:]),
            images.reshape(-1, *images.shape[2:]),
        )
        pooled, _ = psnr(flat_ref, flat_img)
        per_sample = [psnr(reference[i], images[i])[0] for i in range(batch)]
        per_frame = [psnr(reference[:, f], images[:, f])[0] for f in range(frames)]
        ssim_frames = [ssim(reference[:, f], images[:, f]) for f in range(frames)]
        return {
            "psnr_db": pooled,
            "psnr_db_per_sample": per_sample,
            "psnr_db_per_frame": per_frame,
            "ssim_per_frame": ssim_frames,
            "ssim": float(np.mean(ssim_frames)),
        }
    pooled, per_sample = psnr(reference, images)
    scores: dict[str, Any] = {"psnr_db": pooled, "psnr_db_per_sample": per_sample}
    if with_ssim:
        scores["ssim"] = ssim(reference, images)
    return scores


@dataclass
class QualityScorer:
    """Distribution and perceptual metrics, set up once per benchmark.

    Attributes:
        real_images: The FID reference set ``(N, H, W, C)``.
        real_note: What the reference set is.
        conditions: Requested condition per sample (class label or prompt), or None.
        judge: The reference model's `forecache.reference.Judge` (adherence, and FID features
            standing in for Inception's, labelled so), or None for other models.
        notes: What each metric measures, or why it is unavailable (filled on construction).

    """

    real_images: np.ndarray | None
    real_note: str
    conditions: Sequence[int | str] | None = None
    judge: Any = None
    notes: dict[str, str] = field(default_factory=dict)
    _fid: Any = None
    _fid_rgb: bool = True
    _lpips: Any = None

    def __post_init__(self) -> None:
        self._fid = self._make_fid()
        self._lpips = self._make_lpips()
        self.notes["clip_score"] = self._clip_status()
        self.notes["adherence"] = (
            self.judge.note
            if self.judge is not None and self.conditions is not None
            else "unavailable: needs a shipped reference model (its judge)"
        )

    @property
    def prompts(self) -> list[str] | None:
        """The per-sample prompts, or None when the conditions are not text."""
        texts = [c for c in self.conditions or [] if isinstance(c, str)]
        return texts or None

    def set_reference(self, images: np.ndarray, note: str) -> None:
        """Replace the FID reference set (e.g. by the baseline's images for models without a data set)."""
        self.real_images, self.real_note = images, note
        self._fid = self._make_fid()

    def _make_fid(self) -> Any:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if self.real_images is None or len(self.real_images) < 2:
            self.notes["fid"] = "unavailable: no reference set of at least 2 images"
            return None
        try:
            if _hub_checkpoint(_INCEPTION_FILE) is not None:
                fid = FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False)
                self.notes["fid"] = f"Inception-v3 pool features (2048-d) against {self.real_note}"
            elif self.judge is not None:
                extractor = self.judge.feature_extractor()
                fid = FrechetInceptionDistance(feature=extractor, normalize=True, reset_real_features=False)
                self.notes["fid"] = (
                    f"judge FID: the reference model's judge's features ({type(extractor).__name__}, "
                    f"{extractor.num_features}-d), "
                    f"NOT Inception (no local Inception weights), against {self.real_note}"
                )
            else:
                self.notes["fid"] = (
                    "unavailable: no local Inception weights (torch hub checkpoint "
                    f"{_INCEPTION_FILE}; never downloaded)"
                )
                return None
            self._fid_rgb = self.judge is None or "Inception" in self.notes["fid"]
            fid.update(self._prepare(self.real_images), real=True)
        except Exception as err:  # an optional metric must not stop the benchmark
            self.notes["fid"] = f"unavailable: {type(err).__name__}: {err}"
            return None
        return fid

    @staticmethod
    def _rgb(images: np.ndarray) -> np.ndarray:
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]

    def _prepare(self, images: np.ndarray) -> torch.Tensor:
        return to_tensor(self._rgb(images) if self._fid_rgb else images)

    def fid(self, images: np.ndarray) -> Metric:
        """FID of `images` against the reference set (``notes["fid"]``), from >= `FID_MIN_SAMPLES` samples."""
        if self._fid is None:
            return Metric(None, self.notes.get("fid", "unavailable"))
        if len(images) < FID_MIN_SAMPLES:
            return Metric(None, f"not computed: {len(images)} samples < {FID_MIN_SAMPLES}")
        if images.ndim != 4:
            return Metric(None, "not computed for videos")
        self._fid.reset()
        self._fid.update(self._prepare(images), real=False)
        return Metric(float(self._fid.compute()), self.notes["fid"])

    def adherence(self, images: np.ndarray) -> Metric:
        """Mean adherence of the samples to their conditions, by the reference model's judge."""
        if self.judge is None or self.conditions is None:
            return Metric(None, self.notes["adherence"])
        scores = self.judge.adherence(images, list(self.conditions)[: len(images)])
        return Metric(float(np.mean(scores)), self.notes["adherence"])

    def _make_lpips(self) -> Any:
        if _hub_checkpoint(_ALEXNET_FILE) is None:
            self.notes["lpips"] = "unavailable: no local AlexNet weights for LPIPS (never downloaded)"
            return None
        try:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            lpips = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
        except Exception as err:  # optional dependency (torchvision) or weights missing
            self.notes["lpips"] = f"unavailable: {type(err).__name__}: {err}"
            return None
        self.notes["lpips"] = "LPIPS (AlexNet), lower is closer to the baseline"
        return lpips

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> Metric:
        """LPIPS of each image against the baseline image of the same seed (mean), when available."""
        if self._lpips is None:
            return Metric(None, self.notes["lpips"])
        self._lpips.reset()
        value = self._lpips(to_tensor(self._rgb(images)), to_tensor(self._rgb(reference)))
        return Metric(float(value), self.notes["lpips"])

    def _clip_status(self) -> str:
        if self.prompts is None:
            return "unavailable: the model takes no text prompts"
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(_CLIP_ID, "config.json")
        except ImportError:
            cached = None
        if not isinstance(cached, str):
            return f"unavailable: {_CLIP_ID} is not in the local Hugging Face cache (never downloaded)"
        return f"CLIP score ({_CLIP_ID})"

    def clip_score(self, images: np.ndarray) -> Metric:
        """CLIP score of images against their prompts, when prompts and local CLIP weights exist."""
        if self.notes["clip_score"].startswith("unavailable"):
            return Metric(None, self.notes["clip_score"])
        try:
            from torchmetrics.multimodal.clip_score import CLIPScore

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            metric = CLIPScore(model_name_or_path=_CLIP_ID)  # type: ignore[arg-type]  # literal of ids
            pixels = (to_tensor(self._rgb(images)) * 255).to(torch.uint8)
            value = metric(list(pixels), list(self.prompts or [])[: len(images)])
        except Exception as err:  # optional model: report, never fail the benchmark
            return Metric(None, f"unavailable: {type(err).__name__}: {err}")
        return Metric(float(value), self.notes["clip_score"])
