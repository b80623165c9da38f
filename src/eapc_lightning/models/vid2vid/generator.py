"""Few-shot vid2vid generator (Wang et al., NeurIPS 2019): label map + K references -> face frame.

Paper Eq. 10 of EAPC, ``X_vid = f_vid2vid(X_face, Output_lm)``, per frame t:

1. The :class:`~eapc_lightning.models.vid2vid.weight_generator.WeightGenerator` encodes the K reference
   images with their label maps (attention over them when K > 1) and generates the SPADE weights of the
   decoder blocks (the first ``num_adaptive_blocks`` counted from the output resolution; the others learn
   theirs) and the decoder's starting activation.
2. A label encoder turns the target label map into one feature map per scale; the SPADE residual decoder
   upsamples from the bottleneck, modulated by those features, to the raw frame ``raw`` (tanh).
3. A flow network warps the reference picked by the attention (``flow_ref``, mask ``m_ref``, which starts
   at ``initial_reference_weight`` everywhere: 0.5 is a plain blend, values near 1 start training from
   the warped reference and let the mask loss hand regions to the decoder), and, from
   the second frame of a sequence on, a second one warps the previous generated frame
   (``flow_prev``, ``m_prev``). With ``mesh_flow`` the reference flow is the landmark-mesh flow
   (piecewise-affine over the 68 points and head-rigid support points,
   :class:`eapc_lightning.landmarks.mesh_warp.LandmarkMesh`, given with the inputs) plus a residual the
   network predicts from the mesh-warped reference: ``flow_ref = flow_mesh + residual``, the residual
   starting at zero. The output blends them in::

       out = (1 - m_ref) * raw + m_ref * warp(ref, flow_ref)
       out = (1 - m_prev) * out + m_prev * warp(prev, flow_prev)        (when a previous frame is given)

Images are in [-1, 1]; label maps in [0, 1].
"""

from dataclasses import dataclass

import torch
from torch import nn

from eapc_lightning.models.vid2vid.blocks import SPADEResBlock, activation
from eapc_lightning.models.vid2vid.flow import FlowNetwork, warp
from eapc_lightning.models.vid2vid.weight_generator import PyramidEncoder, SPADELayerSpec, WeightGenerator


@dataclass
class GeneratorOutput:
    image: torch.Tensor  # (B, 3, H, W) final frame
    raw_image: torch.Tensor  # (B, 3, H, W) SPADE decoder output before blending
    reference_warped: torch.Tensor  # (B, 3, H, W)
    reference_mask: torch.Tensor  # (B, 1, H, W) weight of the warped reference
    reference_index: torch.Tensor  # (B,) which reference was warped
    reference_flow: torch.Tensor  # (B, 2, H, W) backward flow (pixels) applied to that reference
    previous_warped: torch.Tensor | None
    previous_mask: torch.Tensor | None
    attention: torch.Tensor | None


def channel_widths(base_channels: int, num_downsamples: int, max_channels: int) -> list[int]:
    """Width per scale i = 0 (full resolution) .. num_downsamples (bottleneck)."""
    return [min(max_channels, base_channels * 2**i) for i in range(num_downsamples + 1)]


class FewShotGenerator(nn.Module):
    """See the module docstring. All sizes are constructor arguments (YAML knobs of the LightningModule)."""

    def __init__(
        self,
        *,
        image_size: int = 64,
        num_references: int = 1,
        base_channels: int = 16,
        max_channels: int = 128,
        num_downsamples: int = 3,
        num_adaptive_blocks: int = 3,
        spade_hidden_channels: int = 32,
        spade_kernel_size: int = 1,
        weight_mlp_hidden: int = 64,
        attention_channels: int = 32,
        flow_base_channels: int = 16,
        flow_num_downsamples: int = 3,
        flow_residual_blocks: int = 2,
        warp_previous: bool = True,
        initial_reference_weight: float = 0.5,
        mesh_flow: bool = False,
    ):
        super().__init__()
        if image_size % 2**num_downsamples:
            raise ValueError(f"image_size {image_size} is not divisible by 2**{num_downsamples}")
        self.image_size = image_size
        self.num_references = num_references
        self.num_downsamples = num_downsamples
        self.warp_previous = warp_previous
        self.mesh_flow = mesh_flow
        widths = channel_widths(base_channels, num_downsamples, max_channels)
        self.label_encoder = PyramidEncoder(1, widths)
        # block "up_i" works at scale i (resolution image_size / 2**i): widths[i+1] -> widths[i];
        # the bottleneck block keeps widths[-1].
        self.blocks = nn.ModuleDict()
        specs: list[SPADELayerSpec] = []
        for scale in reversed(range(num_downsamples + 1)):
            name = f"up_{scale}"
            in_width = widths[min(scale + 1, num_downsamples)]
            adaptive = scale < num_adaptive_blocks
            block = SPADEResBlock(
                in_width,
                widths[scale],
                widths[scale],
                spade_hidden_channels,
                spade_kernel_size,
                adaptive=adaptive,
            )
            self.blocks[name] = block
            if adaptive:
                specs += [
                    SPADELayerSpec(
                        name, layer, scale, spade.channels, spade_hidden_channels, spade_kernel_size
                    )
                    for layer, spade in block.spade_layers().items()
                ]
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.to_image = nn.Sequential(activation(), nn.Conv2d(widths[0], 3, 3, padding=1), nn.Tanh())
        self.weight_generator = WeightGenerator(
            image_size=image_size,
            channels=widths,
            spade_layers=specs,
            num_references=num_references,
            attention_channels=attention_channels,
            mlp_hidden=weight_mlp_hidden,
        )
        flow = {
            "base_channels": flow_base_channels,
            "num_downsamples": flow_num_downsamples,
            "num_residual_blocks": flow_residual_blocks,
        }
        # inputs: target label (1) + source label (1) + source image (3; the mesh-warped reference with
        # mesh_flow)
        self.reference_flow = FlowNetwork(5, **flow, initial_mask=initial_reference_weight)
        self.previous_flow = FlowNetwork(5, **flow) if warp_previous else None

    def forward(
        self,
        label: torch.Tensor,
        reference_images: torch.Tensor,
        reference_labels: torch.Tensor,
        previous: tuple[torch.Tensor, torch.Tensor] | None = None,
        mesh_flows: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """label (B,1,H,W); reference_images (B,K,3,H,W); reference_labels (B,K,1,H,W);
        previous: (label (B,1,H,W), generated image (B,3,H,W)) of the previous frame, or None;
        mesh_flows (B,K,2,H,W): the mesh flow from each reference to this frame (needed with mesh_flow)."""
        expected = (self.image_size, self.image_size)
        if tuple(label.shape[-2:]) != expected or tuple(reference_images.shape[-2:]) != expected:
            raise ValueError(f"generator built for {expected} inputs, got {tuple(label.shape[-2:])}")
        if reference_images.shape[1] != self.num_references:
            raise ValueError(f"expected {self.num_references} references, got {reference_images.shape[1]}")
        if self.mesh_flow and mesh_flows is None:
            raise ValueError("a generator built with mesh_flow needs the references' mesh_flows")
        generated = self.weight_generator(label, reference_images, reference_labels)
        label_features = self.label_encoder(label)
        x = generated.bottleneck
        for scale in reversed(range(self.num_downsamples + 1)):
            if scale < self.num_downsamples:
                x = self.upsample(x)
            name = f"up_{scale}"
            x = self.blocks[name](x, label_features[scale], generated.spade.get(name))
        raw = self.to_image(x)

        batch = torch.arange(label.shape[0], device=label.device)
        reference_image = reference_images[batch, generated.reference_index]
        reference_label = reference_labels[batch, generated.reference_index]
        if self.mesh_flow:
            mesh = mesh_flows[batch, generated.reference_index].to(reference_image.dtype)
            residual, reference_mask = self.reference_flow(
                torch.cat([label, reference_label, warp(reference_image, mesh)], dim=1)
            )
            reference_flow = mesh + residual
        else:
            reference_flow, reference_mask = self.reference_flow(
                torch.cat([label, reference_label, reference_image], dim=1)
            )
        reference_warped = warp(reference_image, reference_flow)
        image = (1 - reference_mask) * raw + reference_mask * reference_warped
        previous_warped = previous_mask = None
        if previous is not None and self.previous_flow is not None:
            previous_label, previous_image = previous
            flow, previous_mask = self.previous_flow(
                torch.cat([label, previous_label, previous_image], dim=1)
            )
            previous_warped = warp(previous_image, flow)
            image = (1 - previous_mask) * image + previous_mask * previous_warped
        return GeneratorOutput(
            image=image,
            raw_image=raw,
            reference_warped=reference_warped,
            reference_mask=reference_mask,
            reference_index=generated.reference_index,
            reference_flow=reference_flow,
            previous_warped=previous_warped,
            previous_mask=previous_mask,
            attention=generated.attention,
        )
