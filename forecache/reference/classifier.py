"""The digit classifier shipped with the reference models: class accuracy and FID features of samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from forecache.reference.data import IMAGE_SIZE, NUM_CLASSES

__all__ = ["DigitClassifier", "DigitFeatureExtractor"]


class DigitClassifier(ModelMixin, ConfigMixin):
    """A small CNN on 16x16 grayscale digits in [-1, 1].

    Three 3x3 convolutions (two 2x2 poolings, 16 -> 4 pixels) and a hidden layer whose activations
    are the FID features.

    Args:
        num_classes (`int`, defaults to 10): Output logits.
        width (`int`, defaults to 32): Channels of the first convolution (the others have twice that).
        num_features (`int`, defaults to 64): Width of the feature layer.

    """

    @register_to_config
    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32, num_features: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(2 * width * (IMAGE_SIZE // 4) ** 2, num_features)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(num_features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature vectors (post-ReLU activations of the hidden layer).

        Args:
            images (`torch.Tensor`): Shape `(batch, 1, 16, 16)`, float in [-1, 1].

        Returns:
            `torch.Tensor` of shape `(batch, num_features)`.

        """
        return F.relu(self.fc(self.conv(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            images (`torch.Tensor`): Shape `(batch, 1, 16, 16)`, float in [-1, 1].

        Returns:
            `torch.Tensor` of shape `(batch, num_classes)`.

        """
        return self.head(self.dropout(self.features(images)))


class DigitFeatureExtractor(nn.Module):
    """Adapts `DigitClassifier.features` to torchmetrics' custom FID feature extractor contract.

    torchmetrics' `FrechetInceptionDistance(feature=module)` calls the module on the images given to
    `update` unchanged: uint8 in [0, 255] with `normalize=False`, float in [0, 1] with
    `normalize=True`, and once at construction on a dummy batch unless `num_features` is set (it is).
    This wrapper accepts both dtypes, 1 or 3 channels (3 are averaged) and any size (resized to
    16x16 bilinearly), and maps pixels to the classifier's [-1, 1].

    Args:
        classifier (`DigitClassifier`): The trained classifier; it is put in eval mode.

    """

    def __init__(self, classifier: DigitClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = int(classifier.config["num_features"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Compute features.

        Args:
            images (`torch.Tensor`): Shape `(batch, 1 or 3, H, W)`, uint8 in [0, 255] or float in [0, 1].

        Returns:
            `torch.Tensor` of shape `(batch, num_features)`, float32.

        Raises:
            ValueError: the images are not 4-D with 1 or 3 channels.

        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"`images` must have shape (batch, 1 or 3, H, W), got {tuple(images.shape)}")
        param = next(self.classifier.parameters())
        x = images.to(device=param.device, dtype=torch.float32)
        if images.dtype == torch.uint8:
            x = x / 255.0
        x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        with torch.no_grad():
            return self.classifier.features((x * 2.0 - 1.0).to(param.dtype)).float()
