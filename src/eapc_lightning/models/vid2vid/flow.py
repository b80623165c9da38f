"""Flow network of few-shot vid2vid: dense flow + soft occlusion mask for warping a source frame.

Given the target label map and a source frame (the reference image, or the previously generated frame)
with its label map, the network predicts a backward flow in pixels (where each output pixel samples the
source) and a soft mask in [0, 1]: the weight of the warped source in the output (vid2vid, Wang et al.,
2018, Eq. 3-4; few-shot vid2vid section 3.2). No optical-flow ground truth is used (FlowNet2 is not
available): the flow is learned only through the warp loss and the image losses, as the original's
``--no_flow_gt`` setting.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from eapc_lightning.models.vid2vid.blocks import ConvBlock, ResidualConvBlock


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` (B,C,H,W) by ``flow`` (B,2,H,W) in pixels (x, y); borders replicate."""
    batch, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=image.device, dtype=flow.dtype),
        torch.arange(width, device=image.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )


class FlowNetwork(nn.Module):
    """Encoder (stride-2 ConvBlocks) -> residual blocks -> decoder; heads for flow (2 ch) and mask (1 ch).

    The network works at half the input resolution and below (its first block has stride 2); flow and
    mask are predicted at half resolution and upsampled bilinearly (flow values doubled), which keeps
    the cost of the full-resolution layers out of the flow estimate. The flow head starts at zero
    (identity warp) and the mask at ``initial_mask`` everywhere, so training starts from a fixed blend
    of the generated and the unwarped source frame.
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 16,
        num_downsamples: int = 3,
        num_residual_blocks: int = 2,
        max_channels: int = 128,
        initial_mask: float = 0.5,
    ):
        super().__init__()
        if not 0 < initial_mask < 1:
            raise ValueError(f"initial_mask must be in (0, 1), got {initial_mask}")
        widths = [min(max_channels, base_channels * 2**i) for i in range(num_downsamples + 1)]
        self.first = ConvBlock(in_channels, widths[0], stride=2)
        self.down = nn.Sequential(
            *(ConvBlock(widths[i], widths[i + 1], stride=2) for i in range(num_downsamples))
        )
        self.middle = nn.Sequential(*(ResidualConvBlock(widths[-1]) for _ in range(num_residual_blocks)))
        self.up = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(widths[i + 1], widths[i])
                )
                for i in reversed(range(num_downsamples))
            )
        )
        self.flow_head = nn.Conv2d(widths[0], 2, 3, padding=1)
        self.mask_head = nn.Conv2d(widths[0], 1, 3, padding=1)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)
        nn.init.zeros_(self.mask_head.weight)
        nn.init.constant_(self.mask_head.bias, math.log(initial_mask / (1 - initial_mask)))

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (B, in_channels, H, W) -> flow (B, 2, H, W) in pixels, mask (B, 1, H, W) in [0, 1]."""
        features = self.up(self.middle(self.down(self.first(inputs))))
        size = inputs.shape[-2:]
        flow = 2 * F.interpolate(self.flow_head(features), size=size, mode="bilinear", align_corners=False)
        mask = F.interpolate(self.mask_head(features), size=size, mode="bilinear", align_corners=False)
        return flow, torch.sigmoid(mask)
