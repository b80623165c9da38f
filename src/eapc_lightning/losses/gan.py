"""Adversarial losses of the landmark-to-video stage: hinge GAN and discriminator feature matching.

Inputs are discriminator outputs as returned by eapc_lightning.models.vid2vid.discriminators: per scale a
list of feature maps with the patch logits last. Hinge loss as in SPADE / few-shot vid2vid:
``L_D = E[relu(1 - D(real))] + E[relu(1 + D(fake))]``, ``L_G = -E[D(fake)]``. Feature matching
(pix2pixHD, Wang et al., 2018, Eq. 4) is the L1 distance between the discriminator's intermediate
features of the real and the generated frame, averaged over scales and, by ``layers``, averaged
(``"mean"``) or summed (``"sum"``, pix2pixHD's and few-shot vid2vid's released code: with their 4/(n+1)
layer weight that is the sum over the n+1 = 4 layers of a 3-layer D) over layers; real features are
treated as constants.
"""

import torch
import torch.nn.functional as F

from eapc_lightning.models.vid2vid.discriminators import DiscriminatorOutput


def hinge_discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Mean over scales of relu(1 - real logits) + relu(1 + fake logits)."""
    losses = [
        F.relu(1 - real_scale[-1]).mean() + F.relu(1 + fake_scale[-1]).mean()
        for real_scale, fake_scale in zip(real, fake, strict=True)
    ]
    return torch.stack(losses).mean()


def hinge_generator_loss(fake: DiscriminatorOutput) -> torch.Tensor:
    """Mean over scales of -fake logits."""
    return torch.stack([-scale[-1].mean() for scale in fake]).mean()


FEATURE_MATCHING_LAYERS = ("mean", "sum")


def feature_matching_loss(
    real: DiscriminatorOutput, fake: DiscriminatorOutput, layers: str = "mean"
) -> torch.Tensor:
    """L1 between intermediate features (logits excluded), averaged or summed over layers (``layers``),
    averaged over scales."""
    if layers not in FEATURE_MATCHING_LAYERS:
        raise ValueError(f"layers must be one of {FEATURE_MATCHING_LAYERS}, got {layers!r}")
    reduce = torch.mean if layers == "mean" else torch.sum
    per_scale = []
    for real_scale, fake_scale in zip(real, fake, strict=True):
        terms = [
            F.l1_loss(fake_feature, real_feature.detach())
            for real_feature, fake_feature in zip(real_scale[:-1], fake_scale[:-1], strict=True)
        ]
        per_scale.append(reduce(torch.stack(terms)))
    return torch.stack(per_scale).mean()
