"""VGG19 perceptual loss (pix2pixHD / vid2vid): weighted L1 between VGG19 activations of two images.

Layers relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 with weights 1/32, 1/16, 1/8, 1/4 and 1 (the
weights of pix2pixHD's and few-shot vid2vid's ``VGGLoss``). The VGG19 ImageNet weights
(torchvision's ``vgg19-dcbb9e9d.pth``) are read from a local file: ``weights_path`` when given, else the
torch hub cache (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). Nothing is
downloaded; a missing file raises :class:`~eapc_lightning.errors.MissingWeightsError` saying which file
and where to put it.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg19

from eapc_lightning.errors import MissingWeightsError

VGG19_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
# indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19().features
VGG19_LAYERS = (1, 6, 11, 20, 29)
VGG19_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_vgg19_weights(weights_path: str | Path | None) -> Path:
    """The VGG19 weights file to load, or MissingWeightsError naming the file and where to put it."""
    path = Path(weights_path).expanduser() if weights_path else hub_checkpoint_dir() / VGG19_WEIGHTS_FILE
    if not path.is_file():
        raise MissingWeightsError(
            f"{path}: VGG19 weights for the perceptual loss not found. Put torchvision's ImageNet VGG19 "
            f"weights ({VGG19_WEIGHTS_FILE}) there or in {hub_checkpoint_dir()}, or set the perceptual "
            "loss weight to 0 (model.perceptual_weight: 0) to train without it."
        )
    return path


class VGG19PerceptualLoss(nn.Module):
    """sum_l w_l * L1(vgg_l(x), vgg_l(y)) for images in [-1, 1]; the network is frozen."""

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        state = torch.load(resolve_vgg19_weights(weights_path), map_location="cpu", weights_only=True)
        network = vgg19(weights=None)
        network.load_state_dict(state)
        self.features = network.features[: VGG19_LAYERS[-1] + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGG19PerceptualLoss":
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = ((generated + 1) / 2 - self.mean) / self.std
        y = ((target + 1) / 2 - self.mean) / self.std
        loss = x.new_zeros(())
        weights = dict(zip(VGG19_LAYERS, VGG19_LAYER_WEIGHTS))
        for index, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if index in weights:
                loss = loss + weights[index] * F.l1_loss(x, y.detach())
        return loss
