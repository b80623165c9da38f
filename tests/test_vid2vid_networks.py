"""Few-shot vid2vid networks: output shapes (K = 1 and K > 1), per-sample convolution, warping, attention."""

import pytest
import torch
import torch.nn.functional as F

from eapc_lightning.models.vid2vid.blocks import SPADEWeights, per_sample_conv2d
from eapc_lightning.models.vid2vid.discriminators import (
    ImageDiscriminator,
    MouthDiscriminator,
    TemporalDiscriminator,
    mouth_boxes,
)
from eapc_lightning.models.vid2vid.flow import warp
from eapc_lightning.models.vid2vid.generator import FewShotGenerator
from helpers.vid2vid_cache import TINY_GENERATOR

SIZE = 32


pytestmark = pytest.mark.usefixtures("single_thread")


def inputs(batch: int, refs: int, size: int = SIZE):
    torch.manual_seed(0)
    label = (torch.rand(batch, 1, size, size) > 0.9).float()
    reference_images = torch.rand(batch, refs, 3, size, size) * 2 - 1
    reference_labels = (torch.rand(batch, refs, 1, size, size) > 0.9).float()
    return label, reference_images, reference_labels


@pytest.mark.parametrize("refs", [1, 3])
def test_generator_output_shapes(refs):
    generator = FewShotGenerator(image_size=SIZE, num_references=refs, **TINY_GENERATOR)
    label, reference_images, reference_labels = inputs(2, refs)
    first = generator(label, reference_images, reference_labels)
    assert first.image.shape == (2, 3, SIZE, SIZE)
    assert first.raw_image.shape == first.reference_warped.shape == (2, 3, SIZE, SIZE)
    assert first.reference_mask.shape == (2, 1, SIZE, SIZE)
    assert first.previous_warped is None and first.previous_mask is None
    assert first.image.abs().max() <= 1.0
    assert ((first.reference_mask >= 0) & (first.reference_mask <= 1)).all()
    assert first.reference_index.shape == (2,) and (first.reference_index < refs).all()
    second = generator(label, reference_images, reference_labels, previous=(label, first.image.detach()))
    assert second.previous_warped.shape == (2, 3, SIZE, SIZE)
    assert second.previous_mask.shape == (2, 1, SIZE, SIZE)
    if refs == 1:
        assert first.attention is None
    else:
        grid = (SIZE // 4) ** 2
        assert first.attention.shape == (2, grid, refs * grid)
        torch.testing.assert_close(first.attention.sum(-1), torch.ones(2, grid))


def test_generator_depends_on_the_references_through_generated_weights():
    """Changing only the reference changes the raw SPADE output (weights come from the references)."""
    generator = FewShotGenerator(image_size=SIZE, num_references=1, **TINY_GENERATOR).eval()
    label, reference_images, reference_labels = inputs(1, 1)
    with torch.no_grad():
        a = generator(label, reference_images, reference_labels).raw_image
        b = generator(label, -reference_images, reference_labels).raw_image
    assert (a - b).abs().mean() > 1e-4


def test_generator_rejects_wrong_sizes():
    generator = FewShotGenerator(image_size=SIZE, num_references=2, **TINY_GENERATOR)
    label, reference_images, reference_labels = inputs(1, 1)
    with pytest.raises(ValueError, match="references"):
        generator(label, reference_images, reference_labels)
    label, reference_images, reference_labels = inputs(1, 2, size=SIZE * 2)
    with pytest.raises(ValueError, match="built for"):
        generator(label, reference_images, reference_labels)


@pytest.mark.parametrize("kernel", [1, 3])
def test_per_sample_conv_equals_separate_convolutions(kernel):
    torch.manual_seed(1)
    x = torch.randn(3, 5, 7, 7)
    weight = torch.randn(3, 4, 5, kernel, kernel)
    bias = torch.randn(3, 4)
    expected = torch.cat([F.conv2d(x[i : i + 1], weight[i], bias[i], padding=kernel // 2) for i in range(3)])
    torch.testing.assert_close(per_sample_conv2d(x, weight, bias), expected, rtol=1e-4, atol=1e-4)


def test_spade_weights_split_round_trip():
    flat = torch.arange(2 * 3 * SPADEWeights.parameters_per_channel(4, 1), dtype=torch.float32).view(2, 3, -1)
    weights = SPADEWeights.from_flat(flat, 4, 1)
    assert weights.gamma_weight.shape == (2, 3, 4, 1, 1) and weights.beta_bias.shape == (2, 3)
    torch.testing.assert_close(weights.gamma_weight.flatten(2), flat[..., :4])
    torch.testing.assert_close(weights.gamma_bias, flat[..., 4])
    torch.testing.assert_close(weights.beta_weight.flatten(2), flat[..., 5:9])
    torch.testing.assert_close(weights.beta_bias, flat[..., 9])


def test_warp_zero_flow_is_identity_and_integer_flow_shifts():
    image = torch.rand(2, 3, 8, 10)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 8, 10)), image)
    flow = torch.zeros(2, 2, 8, 10)
    flow[:, 0] = 2.0  # each output pixel samples two columns to the right
    flow[:, 1] = -1.0  # and one row up
    shifted = warp(image, flow)
    torch.testing.assert_close(shifted[:, :, 1:, :-2], image[:, :, :-1, 2:])


@pytest.mark.parametrize("refs", [1, 2])
def test_image_discriminator_shapes(refs):
    discriminator = ImageDiscriminator(num_scales=2, base_channels=8, num_layers=3, max_channels=32)
    label, reference_images, reference_labels = inputs(2, refs)
    image = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    outputs = discriminator(label, image, reference_labels[:, 0], reference_images[:, 0])
    assert len(outputs) == 2
    for scale, features in enumerate(outputs):
        assert len(features) == 5  # 4 conv blocks + logits
        logits = features[-1]
        assert logits.shape[:2] == (2, 1)
        assert logits.shape[-1] == features[-2].shape[-1]
        if scale:
            assert logits.shape[-1] < outputs[0][-1].shape[-1]


def test_temporal_and_mouth_discriminator_shapes():
    temporal = TemporalDiscriminator(num_frames=3, num_scales=1, base_channels=8, num_layers=2)
    labels = torch.rand(2, 3, 1, SIZE, SIZE)
    images = torch.rand(2, 3, 3, SIZE, SIZE)
    outputs = temporal(labels, images)
    assert len(outputs) == 1 and outputs[0][-1].shape[:2] == (2, 1)
    with pytest.raises(ValueError, match="3 frames"):
        temporal(labels[:, :2], images[:, :2])

    mouth = MouthDiscriminator(crop_size=16, base_channels=8, num_layers=2)
    landmarks = torch.rand(2, 68, 2) * 10 + 10
    crops = mouth.crop(labels[:, 0], images[:, 0], landmarks)
    assert crops.shape == (2, 4, 16, 16)
    assert mouth(labels[:, 0], images[:, 0], landmarks)[0][-1].shape[:2] == (2, 1)


def test_mouth_box_covers_the_mouth_points_with_margin():
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 48:68] = torch.tensor([[10.0, 20.0], [30.0, 26.0]]).repeat(10, 1)
    box = mouth_boxes(landmarks, margin=0.25)[0]
    # centre (20, 23); side = max extent 20 * 1.5 = 30 -> half 15
    torch.testing.assert_close(box, torch.tensor([0.0, 5.0, 8.0, 35.0, 38.0]))
