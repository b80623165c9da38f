"""Weight-generation network of few-shot vid2vid (Wang et al., 2019, section 3.2, networks E_F, E_A, E_P).

* E_F, the reference encoder, turns each reference image concatenated with its label map into a pyramid
  of feature maps, one per generator scale (resolution ``image_size / 2**i``, ``channels[i]`` wide).
* E_A, the attention module, is used when K > 1 references are given: keys are encoded from the
  reference label maps, queries from the target label map, both on the bottleneck grid; the softmax of
  their dot products over all K x P reference positions gives, for every target position, a mix of the
  references' features (the paper's attention-weighted combination of the K feature maps).
  With K = 1 the single reference's features are used as they are.
* E_P, the weight generator proper, maps the (attended) reference features of a scale to the weights
  of the SPADE gamma/beta convolutions of the decoder block at that scale. Each output channel of a
  SPADE layer gets its own token: the reference feature map is projected to that many channels
  (1x1 conv) and pooled to the bottleneck grid, and a small MLP shared by all channels turns each
  channel's flattened grid into that channel's kernel row and bias (the per-channel generation the
  original uses to keep the generator's parameter count independent of the width).

Outputs: the attended bottleneck features (the decoder's starting activation), the generated
:class:`SPADEWeights` per decoder block and SPADE layer, the attention map, and per sample the index of
the reference that received the most attention (the one the flow network warps).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from eapc_lightning.models.vid2vid.blocks import ConvBlock, SPADEWeights


@dataclass
class SPADELayerSpec:
    """One SPADE layer whose gamma/beta weights are generated: where it is and how big it is."""

    block: str
    layer: str
    scale: int
    channels: int
    hidden_channels: int
    kernel_size: int


@dataclass
class GeneratedWeights:
    bottleneck: torch.Tensor  # (B, channels[-1], s, s)
    spade: dict[str, dict[str, SPADEWeights]]  # block name -> SPADE layer name -> weights
    attention: torch.Tensor | None  # (B, P, K * P) or None when K == 1
    reference_index: torch.Tensor  # (B,) long


class PyramidEncoder(nn.Module):
    """ConvBlock to ``channels[0]`` then one stride-2 ConvBlock per further scale; returns every scale."""

    def __init__(self, in_channels: int, channels: list[int]):
        super().__init__()
        self.first = ConvBlock(in_channels, channels[0])
        self.down = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1], stride=2) for i in range(len(channels) - 1)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.first(x)]
        for layer in self.down:
            features.append(layer(features[-1]))
        return features


class ChannelTokenMLP(nn.Module):
    """Generates one SPADE layer's weights from a reference feature map (B, C_ref, s, s)."""

    def __init__(self, spec: SPADELayerSpec, reference_channels: int, grid_size: int, hidden: int):
        super().__init__()
        self.spec = spec
        self.to_tokens = nn.Conv2d(reference_channels, spec.channels, 1)
        out = SPADEWeights.parameters_per_channel(spec.hidden_channels, spec.kernel_size)
        self.mlp = nn.Sequential(
            nn.Linear(grid_size * grid_size, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, out),
        )

    def forward(self, reference_features: torch.Tensor) -> SPADEWeights:
        tokens = self.to_tokens(reference_features).flatten(2)  # (B, C, s*s)
        return SPADEWeights.from_flat(self.mlp(tokens), self.spec.hidden_channels, self.spec.kernel_size)


class WeightGenerator(nn.Module):
    """E_F + E_A + E_P: reference images and label maps -> SPADE weights (see module docstring)."""

    def __init__(
        self,
        *,
        image_size: int,
        channels: list[int],
        spade_layers: list[SPADELayerSpec],
        num_references: int,
        image_channels: int = 3,
        label_channels: int = 1,
        attention_channels: int = 32,
        mlp_hidden: int = 64,
    ):
        super().__init__()
        self.num_scales = len(channels)
        self.grid_size = image_size // 2 ** (len(channels) - 1)
        self.num_references = num_references
        self.reference_encoder = PyramidEncoder(image_channels + label_channels, channels)
        if num_references > 1:
            attention_widths = [min(attention_channels, c) for c in channels[:-1]] + [attention_channels]
            self.key_encoder = PyramidEncoder(label_channels, attention_widths)
            self.query_encoder = PyramidEncoder(label_channels, attention_widths)
        self.generators = nn.ModuleDict(
            {
                f"{spec.block}__{spec.layer}": ChannelTokenMLP(
                    spec, channels[spec.scale], self.grid_size, mlp_hidden
                )
                for spec in spade_layers
            }
        )

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(features, self.grid_size)

    def attention(self, label: torch.Tensor, reference_labels: torch.Tensor) -> torch.Tensor:
        """(B, P, K*P) softmax attention of each target grid position over all reference positions."""
        batch, num_refs = reference_labels.shape[:2]
        keys = self._pool(self.key_encoder(reference_labels.flatten(0, 1))[-1])  # (B*K, C, s, s)
        queries = self._pool(self.query_encoder(label)[-1])  # (B, C, s, s)
        channels = keys.shape[1]
        keys = keys.reshape(batch, num_refs, channels, -1).permute(0, 2, 1, 3).reshape(batch, channels, -1)
        queries = queries.flatten(2)  # (B, C, P)
        energy = torch.einsum("bcp,bcq->bpq", queries, keys) / channels**0.5
        return energy.softmax(dim=-1)

    def forward(
        self, label: torch.Tensor, reference_images: torch.Tensor, reference_labels: torch.Tensor
    ) -> GeneratedWeights:
        """label (B,1,H,W); reference_images (B,K,3,H,W); reference_labels (B,K,1,H,W)."""
        batch, num_refs = reference_images.shape[:2]
        pyramid = self.reference_encoder(torch.cat([reference_images, reference_labels], dim=2).flatten(0, 1))
        pooled = [self._pool(level) for level in pyramid]  # each (B*K, C_i, s, s)
        if num_refs == 1:
            attention = None
            attended = pooled
            reference_index = torch.zeros(batch, dtype=torch.long, device=label.device)
        else:
            attention = self.attention(label, reference_labels)  # (B, P, K*P)
            attended = []
            for level in pooled:
                channels = level.shape[1]
                values = level.reshape(batch, num_refs, channels, -1).permute(0, 2, 1, 3).flatten(2)
                mixed = torch.einsum("bpk,bck->bcp", attention, values)
                attended.append(mixed.reshape(batch, channels, self.grid_size, self.grid_size))
            per_reference = attention.reshape(batch, -1, num_refs, self.grid_size**2).sum(dim=(1, 3))
            reference_index = per_reference.argmax(dim=1)
        spade: dict[str, dict[str, SPADEWeights]] = {}
        for generator in self.generators.values():
            spec = generator.spec
            spade.setdefault(spec.block, {})[spec.layer] = generator(attended[spec.scale])
        return GeneratedWeights(attended[-1], spade, attention, reference_index)
