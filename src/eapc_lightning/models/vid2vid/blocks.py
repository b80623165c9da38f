"""Named building blocks of the few-shot vid2vid networks: conv blocks and (adaptive) SPADE residual blocks.

SPADE (Park et al., 2019) normalises activations without affine parameters and re-modulates them with a
per-pixel scale and shift computed from the label map: ``out = norm(x) * (1 + gamma(s)) + beta(s)`` with
``gamma, beta = conv(relu(conv(s)))``. In few-shot vid2vid (Wang et al., 2019, section 3.2) the weights of
the last convolutions (``gamma`` and ``beta``) are not learned parameters but *generated* per sample from
the reference images; :class:`AdaptiveSPADE` takes them as an argument (:class:`SPADEWeights`).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LEAKY_SLOPE = 0.2


def activation() -> nn.Module:
    return nn.LeakyReLU(LEAKY_SLOPE)


class ConvBlock(nn.Module):
    """Conv2d (optionally spectral-normalised) -> optional InstanceNorm -> LeakyReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        instance_norm: bool = True,
        spectral: bool = False,
    ):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
        self.conv = spectral_norm(conv) if spectral else conv
        self.norm = nn.InstanceNorm2d(out_channels) if instance_norm else nn.Identity()
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResidualConvBlock(nn.Module):
    """Two 3x3 ConvBlocks with an identity shortcut (same width and resolution)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels), ConvBlock(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass
class SPADEWeights:
    """Generated modulation weights of one SPADE layer for a batch of B samples.

    ``gamma_weight`` / ``beta_weight``: (B, C, hidden, k, k); ``gamma_bias`` / ``beta_bias``: (B, C).
    """

    gamma_weight: torch.Tensor
    gamma_bias: torch.Tensor
    beta_weight: torch.Tensor
    beta_bias: torch.Tensor

    @staticmethod
    def parameters_per_channel(hidden_channels: int, kernel_size: int) -> int:
        return 2 * (hidden_channels * kernel_size * kernel_size + 1)

    @classmethod
    def from_flat(cls, flat: torch.Tensor, hidden_channels: int, kernel_size: int) -> "SPADEWeights":
        """Split (B, C, parameters_per_channel) generated values into the four tensors."""
        batch, channels, _ = flat.shape
        kernel = hidden_channels * kernel_size * kernel_size
        shape = (batch, channels, hidden_channels, kernel_size, kernel_size)
        gamma_weight, gamma_bias, beta_weight, beta_bias = flat.split([kernel, 1, kernel, 1], dim=-1)
        return cls(
            gamma_weight.reshape(shape),
            gamma_bias.reshape(batch, channels),
            beta_weight.reshape(shape),
            beta_bias.reshape(batch, channels),
        )


def per_sample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Convolve each sample with its own kernel: x (B, Cin, H, W), weight (B, Cout, Cin, k, k), bias (B, Cout)."""
    batch, in_channels, height, width = x.shape
    out_channels, kernel_size = weight.shape[1], weight.shape[-1]
    if kernel_size == 1:  # a batched matrix product is much faster than a grouped convolution
        out = torch.baddbmm(
            bias.unsqueeze(-1), weight.reshape(batch, out_channels, in_channels), x.flatten(2)
        )
        return out.reshape(batch, out_channels, height, width)
    out = F.conv2d(
        x.reshape(1, batch * in_channels, height, width),
        weight.reshape(batch * out_channels, in_channels, kernel_size, kernel_size),
        bias.reshape(batch * out_channels),
        padding=kernel_size // 2,
        groups=batch,
    )
    return out.reshape(batch, out_channels, height, width)


class AdaptiveSPADE(nn.Module):
    """SPADE normalisation whose gamma/beta convolutions are learned (``adaptive=False``) or generated.

    ``label_features`` are resized (nearest) to the activation size when they differ.
    """

    def __init__(
        self,
        channels: int,
        label_channels: int,
        hidden_channels: int,
        kernel_size: int = 1,
        *,
        adaptive: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.adaptive = adaptive
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden_channels, 3, padding=1), nn.ReLU())
        if not adaptive:
            self.gamma = nn.Conv2d(hidden_channels, channels, kernel_size, padding=kernel_size // 2)
            self.beta = nn.Conv2d(hidden_channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(
        self, x: torch.Tensor, label_features: torch.Tensor, weights: SPADEWeights | None = None
    ) -> torch.Tensor:
        if label_features.shape[-2:] != x.shape[-2:]:
            label_features = F.interpolate(label_features, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(label_features)
        if self.adaptive:
            if weights is None:
                raise ValueError("adaptive SPADE needs generated weights")
            gamma = per_sample_conv2d(hidden, weights.gamma_weight, weights.gamma_bias)
            beta = per_sample_conv2d(hidden, weights.beta_weight, weights.beta_bias)
        else:
            gamma, beta = self.gamma(hidden), self.beta(hidden)
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """SPADE residual block (SPADE -> act -> conv, twice; learned shortcut when widths differ).

    Its SPADE layers are named ``norm_0``, ``norm_1`` and (with a learned shortcut) ``norm_s``;
    :meth:`spade_layers` lists them so a weight generator can produce their weights.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        label_channels: int,
        hidden_channels: int,
        spade_kernel_size: int = 1,
        *,
        adaptive: bool = True,
    ):
        super().__init__()
        middle = min(in_channels, out_channels)
        spade = {
            "label_channels": label_channels,
            "hidden_channels": hidden_channels,
            "kernel_size": spade_kernel_size,
            "adaptive": adaptive,
        }
        self.adaptive = adaptive
        self.norm_0 = AdaptiveSPADE(in_channels, **spade)
        self.conv_0 = nn.Conv2d(in_channels, middle, 3, padding=1)
        self.norm_1 = AdaptiveSPADE(middle, **spade)
        self.conv_1 = nn.Conv2d(middle, out_channels, 3, padding=1)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = AdaptiveSPADE(in_channels, **spade)
            self.conv_s = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.act = activation()

    def spade_layers(self) -> dict[str, AdaptiveSPADE]:
        names = ("norm_0", "norm_1", "norm_s") if self.learned_shortcut else ("norm_0", "norm_1")
        return {name: getattr(self, name) for name in names}

    def forward(
        self,
        x: torch.Tensor,
        label_features: torch.Tensor,
        weights: dict[str, SPADEWeights] | None = None,
    ) -> torch.Tensor:
        weights = weights or {}
        shortcut = x
        if self.learned_shortcut:
            shortcut = self.conv_s(self.norm_s(x, label_features, weights.get("norm_s")))
        out = self.conv_0(self.act(self.norm_0(x, label_features, weights.get("norm_0"))))
        out = self.conv_1(self.act(self.norm_1(out, label_features, weights.get("norm_1"))))
        return shortcut + out
