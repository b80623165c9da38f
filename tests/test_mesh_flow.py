"""Landmark-mesh flow: the mesh's dense flow, its use in the vid2vid generator, the flow loss, the recipe
switches (feature matching over layers, linear learning-rate decay)."""

import cv2
import numpy as np
import pytest
import torch

from eapc_lightning.data.vid2vid_datamodule import Vid2VidDataModule
from eapc_lightning.landmarks.mesh_warp import LandmarkMesh, mouth_interior_mask
from eapc_lightning.lit.vid2vid import Vid2VidModule, linear_decay
from eapc_lightning.losses.gan import feature_matching_loss
from eapc_lightning.models.vid2vid.flow import warp
from eapc_lightning.models.vid2vid.generator import FewShotGenerator
from eapc_lightning.render.warp_renderer import WarpRenderer
from eapc_lightning.synth.face import Identity, render_identity
from helpers.vid2vid_cache import TINY_GENERATOR, write_synthetic_cache

SIZE = 64


@pytest.fixture(scope="module")
def photo():
    """skimage's astronaut framed at 256 px, with its landmarks in OpenCV pixels."""
    return render_identity(Identity(), 256)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize(("angle", "scale", "shift"), [(0.0, 1.0, (5.5, -3.25)), (4.0, 1.06, (-2.0, 1.5))])
def test_flow_of_a_similarity_motion_is_the_inverse_similarity(photo, angle, scale, shift):
    _, points = photo
    matrix = cv2.getRotationMatrix2D((128.0, 128.0), angle, scale)
    matrix[:, 2] += shift
    target = points @ matrix[:, :2].T + matrix[:, 2]
    flow = LandmarkMesh(points, 256).flow(target)
    inverse = cv2.invertAffineTransform(matrix)
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float64)
    expected_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2] - xs
    expected_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2] - ys
    assert flow.shape == (2, 256, 256) and flow.dtype == np.float32
    assert np.abs(flow[0] - expected_x).max() < 1e-2
    assert np.abs(flow[1] - expected_y).max() < 1e-2


def test_torch_warp_by_the_mesh_flow_equals_the_warp_renderer(photo):
    """The generator's warp (grid_sample) by the mesh flow reproduces the warp renderer's frame (cv2.remap
    over the same mesh) outside the painted mouth."""
    image, points = photo
    renderer = WarpRenderer(image, points + 0.5)
    target = points.copy()
    target[[55, 56, 57, 58, 59, 65, 66, 67, *range(4, 13)], 1] += 9.0  # the mouth opens 9 px
    target += [3.0, -2.0]
    rendered = renderer.render(target + 0.5)
    flow = torch.from_numpy(LandmarkMesh(points, 256).flow(target))[None]
    warped = warp(to_tensor(image), flow)[0].permute(1, 2, 0).numpy()
    outside = mouth_interior_mask(target, 256) == 0
    outside = cv2.erode(outside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    outside[:8], outside[-8:], outside[:, :8], outside[:, -8:] = False, False, False, False  # borders differ
    difference = np.abs(warped - rendered.astype(np.float32))[outside]
    assert difference.mean() < 0.5 and np.percentile(difference, 99.9) < 4
    moved = np.abs(image.astype(np.float32) - rendered.astype(np.float32))[outside].mean()
    assert moved > 10 * difference.mean()


def test_mouth_interior_mask_covers_the_inner_lip_polygon(photo):
    _, points = photo
    opened = points.copy()
    opened[[65, 66, 67], 1] += 12.0
    mask = mouth_interior_mask(opened, 256)
    polygon = opened[60:68]
    inside = cv2.pointPolygonTest(polygon.astype(np.float32), tuple(map(float, polygon.mean(axis=0))), False)
    assert inside > 0 and mask[int(polygon[:, 1].mean()), int(polygon[:, 0].mean())] == 1
    area = cv2.contourArea(polygon.astype(np.float32))
    assert abs(mask.sum() - area) < 0.25 * area + 10
    assert mask[int(opened[8, 1]), int(opened[8, 0])] == 0  # the chin is outside


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    cache = write_synthetic_cache(tmp_path_factory.mktemp("mesh_cache"), num_frames=12, crop_size=SIZE)
    data = Vid2VidDataModule(
        cache_dir=str(cache), image_size=SIZE, sequence_length=2, eval_sequence_length=6,
        eval_windows_per_clip=1, batch_size=1, val_fraction=0.34, test_fraction=0.34,
    )  # fmt: skip
    data.setup("fit")
    return next(iter(data.val_dataloader()))


def test_samples_carry_mesh_flows_that_align_the_reference(batch):
    flows, masks = batch["mesh_flows"], batch["mouth_masks"]
    assert flows.shape == (1, 6, 1, 2, SIZE, SIZE) and masks.shape == (1, 6, 1, SIZE, SIZE)
    reference = batch["reference_images"][:, 0]
    outside = 1 - masks[0]
    warped_errors, copy_errors = [], []
    for t in range(6):
        target = batch["images"][:, t]
        warped = warp(reference, flows[:, t, 0])
        warped_errors.append(float(((warped - target).abs() * outside[t]).sum() / outside[t].sum()))
        copy_errors.append(float(((reference - target).abs() * outside[t]).sum() / outside[t].sum()))
    # measured: warped 0.041-0.058, copied 0.067-0.123 (the drawn face's integer polygon corners and the
    # resize to 64 px keep the warp from being exact)
    assert all(w < 0.8 * c for w, c in zip(warped_errors, copy_errors, strict=True)), (
        warped_errors,
        copy_errors,
    )
    assert np.mean(warped_errors) < 0.6 * np.mean(copy_errors)


def test_mesh_flow_generator_starts_at_the_mesh_warp(batch):
    torch.manual_seed(0)
    generator = FewShotGenerator(image_size=SIZE, **TINY_GENERATOR, mesh_flow=True)
    label, mesh = batch["labels"][:, 2], batch["mesh_flows"][:, 2]
    output = generator(label, batch["reference_images"], batch["reference_labels"], None, mesh)
    assert torch.allclose(output.reference_flow, mesh[:, 0], atol=1e-6)  # the residual starts at zero
    assert torch.allclose(output.reference_warped, warp(batch["reference_images"][:, 0], mesh[:, 0]))
    with pytest.raises(ValueError, match="mesh_flows"):
        generator(label, batch["reference_images"], batch["reference_labels"])


def tiny_module(**overrides) -> Vid2VidModule:
    arguments = {
        "image_size": SIZE,
        "generator": TINY_GENERATOR,
        "mesh_flow": True,
        "image_discriminator": {"num_scales": 1, "base_channels": 8, "num_layers": 2, "max_channels": 16},
        "perceptual_weight": 0.0,
        "fid_extractor": "none",
        "flow_weight": 10.0,
    }
    return Vid2VidModule(**{**arguments, **overrides})


def test_flow_loss_is_zero_on_the_mesh_and_measures_an_offset_in_half_frame_units(batch):
    module = tiny_module()
    outputs = module.generate_sequence(module.generator, batch, 2, detach_previous=True)
    assert module.flow_loss(batch, outputs) < 1e-6
    for output in outputs:
        output.reference_flow = output.reference_flow + torch.tensor([1.5, -2.0]).view(1, 2, 1, 1)
    # |1.5| + |-2| pixels at every pixel outside the mouth, in units of SIZE / 2 pixels
    assert module.flow_loss(batch, outputs).item() == pytest.approx(3.5 / (SIZE / 2), rel=1e-5)
    assert "flow" in module.generator_losses(batch, outputs)


def test_frame_stream_feeds_the_photo_mesh_flow(photo):
    image, points = photo
    module = tiny_module().eval()
    stream = module.frame_stream(image, points + 0.5)
    landmarks = np.stack([points + 0.5, points + 0.5 + [4.0, 0.0]])
    frames = list(stream(landmarks))
    assert len(frames) == 2 and frames[0].shape == (SIZE, SIZE, 3)
    flow = stream._mesh_flows(landmarks[1])
    # the whole face moved 4 px right in the 256 frame: each pixel samples the photo 1 px (at 64) left
    assert flow.shape == (1, 1, 2, SIZE, SIZE)
    assert torch.allclose(flow[0, 0, 0], torch.full((SIZE, SIZE), -1.0), atol=1e-3)


def test_feature_matching_sum_over_layers_is_the_layer_count_times_the_mean():
    torch.manual_seed(0)
    real = [[torch.randn(1, 4, 8, 8) for _ in range(4)] + [torch.randn(1, 1, 8, 8)] for _ in range(2)]
    fake = [[torch.randn(1, 4, 8, 8) for _ in range(4)] + [torch.randn(1, 1, 8, 8)] for _ in range(2)]
    by_hand = np.mean(
        [sum((f - r).abs().mean().item() for f, r in zip(fs[:-1], rs[:-1])) for fs, rs in zip(fake, real)]
    )
    assert feature_matching_loss(real, fake, "sum").item() == pytest.approx(by_hand, rel=1e-5)
    assert feature_matching_loss(real, fake, "mean").item() == pytest.approx(by_hand / 4, rel=1e-5)
    with pytest.raises(ValueError, match="layers"):
        feature_matching_loss(real, fake, "max")


def test_linear_decay_keeps_the_rate_then_decays_towards_zero():
    assert [linear_decay(e, 10, 0) for e in range(10)] == [1.0] * 10
    # 10 epochs, the last 4 decay: factor k is the one epoch k trains with
    factors = [linear_decay(e, 10, 4) for e in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
