"""Discriminators of few-shot vid2vid: multi-scale PatchGAN on (label, image, reference), temporal, mouth.

Every discriminator returns, per scale, the list of its intermediate feature maps with the patch logits
last, so the same call serves the hinge GAN loss (last entry) and feature matching (the others).

* :class:`ImageDiscriminator`: input is the target label map, the (real or generated) frame and the
  reference image with its label map, concatenated along channels (few-shot vid2vid conditions its
  image discriminator on the reference); ``num_scales`` PatchGANs on a 2x average-pooled pyramid.
* :class:`TemporalDiscriminator`: ``num_frames`` consecutive frames and their label maps concatenated
  (vid2vid's video discriminator, without flow inputs since there is no flow ground truth); off by default.
* :class:`MouthDiscriminator`: a PatchGAN on the mouth region cropped (``roi_align``) around landmarks
  48-67 from the frame and its label map (the original's ``--add_face_D`` region discriminator).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from eapc_lightning.constants import MOUTH
from eapc_lightning.models.vid2vid.blocks import ConvBlock

DiscriminatorOutput = list[list[torch.Tensor]]  # per scale: features..., logits


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs, ``num_layers`` stride-2 downsamplings, spectral norm, one logit per patch."""

    def __init__(
        self, in_channels: int, base_channels: int = 32, num_layers: int = 3, max_channels: int = 256
    ):
        super().__init__()
        layers = [ConvBlock(in_channels, base_channels, 4, 2, instance_norm=False, spectral=True)]
        width = base_channels
        for index in range(1, num_layers + 1):
            stride = 2 if index < num_layers else 1
            next_width = min(max_channels, width * 2)
            layers.append(ConvBlock(width, next_width, 4, stride, instance_norm=True, spectral=True))
            width = next_width
        self.layers = nn.ModuleList(layers)
        self.logits = nn.utils.parametrizations.spectral_norm(nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        features.append(self.logits(x))
        return features


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs; scale s sees the input average-pooled s times by 2."""

    def __init__(self, in_channels: int, num_scales: int = 2, **patch_kwargs):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, **patch_kwargs) for _ in range(num_scales)
        )

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class ImageDiscriminator(MultiScaleDiscriminator):
    """Multi-scale PatchGAN on concat(label, image, reference label, reference image): 1 + 3 + 1 + 3 channels."""

    def __init__(self, num_scales: int = 2, **patch_kwargs):
        super().__init__(8, num_scales, **patch_kwargs)

    def forward(  # type: ignore[override]
        self,
        label: torch.Tensor,
        image: torch.Tensor,
        reference_label: torch.Tensor,
        reference_image: torch.Tensor,
    ) -> DiscriminatorOutput:
        return super().forward(torch.cat([label, image, reference_label, reference_image], dim=1))


class TemporalDiscriminator(MultiScaleDiscriminator):
    """Multi-scale PatchGAN on ``num_frames`` consecutive (label, image) pairs stacked along channels."""

    def __init__(self, num_frames: int = 3, num_scales: int = 1, **patch_kwargs):
        super().__init__(4 * num_frames, num_scales, **patch_kwargs)
        self.num_frames = num_frames

    def forward(self, labels: torch.Tensor, images: torch.Tensor) -> DiscriminatorOutput:  # type: ignore[override]
        """labels (B, T, 1, H, W), images (B, T, 3, H, W) with T == num_frames."""
        if labels.shape[1] != self.num_frames:
            raise ValueError(f"temporal discriminator takes {self.num_frames} frames, got {labels.shape[1]}")
        return super().forward(torch.cat([labels, images], dim=2).flatten(1, 2))


def mouth_boxes(landmarks: torch.Tensor, margin: float = 0.25, min_size: float = 8.0) -> torch.Tensor:
    """(B, 5) roi_align boxes (batch index, x1, y1, x2, y2): a square around points 48-67 plus ``margin``."""
    mouth = landmarks[:, list(MOUTH)]
    low, high = mouth.min(dim=1).values, mouth.max(dim=1).values
    centre = (low + high) / 2
    half = ((high - low).max(dim=1).values * (1 + 2 * margin)).clamp(min=min_size) / 2
    index = torch.arange(len(landmarks), device=landmarks.device, dtype=landmarks.dtype)
    return torch.stack(
        [index, centre[:, 0] - half, centre[:, 1] - half, centre[:, 0] + half, centre[:, 1] + half], dim=1
    )


class MouthDiscriminator(nn.Module):
    """Single-scale PatchGAN on the mouth crop (``crop_size`` square) of concat(label, image)."""

    def __init__(self, crop_size: int = 32, margin: float = 0.25, **patch_kwargs):
        super().__init__()
        self.crop_size = crop_size
        self.margin = margin
        self.discriminator = PatchDiscriminator(4, **patch_kwargs)

    def crop(self, label: torch.Tensor, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """landmarks (B, 68, 2) in the pixels of ``image``."""
        boxes = mouth_boxes(landmarks.float(), self.margin).to(image.dtype)
        return roi_align(torch.cat([label, image], dim=1), boxes, self.crop_size, aligned=True)

    def forward(
        self, label: torch.Tensor, image: torch.Tensor, landmarks: torch.Tensor
    ) -> DiscriminatorOutput:
        return [self.discriminator(self.crop(label, image, landmarks))]
