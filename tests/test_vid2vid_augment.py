"""Training augmentation and random frame steps of the vid2vid data (eapc_lightning.data.vid2vid_augment).

Expectations are hand computations (crop matrices, HSV values) or read back from the augmented images:
coloured dots drawn at landmarks are found again and compared with the transformed landmarks.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from eapc_lightning.constants import CANONICAL_FACE_SIZE
from eapc_lightning.data.index import list_clips
from eapc_lightning.data.vid2vid_augment import MIRRORED_LANDMARKS, AugmentParams, FaceAugmentation
from eapc_lightning.data.vid2vid_datamodule import ClipReader, Vid2VidDataModule, Vid2VidTrainDataset
from eapc_lightning.landmarks.mesh_warp import FaceFrame
from helpers.vid2vid_cache import canonical_template, write_clip, write_synthetic_cache

SIZE = 64
# strong geometry, no colour change: the dots keep their colours
GEOMETRY_ONLY = {
    "crop_scale_range": (0.7, 1.3),
    "shift_fraction": 0.1,
    "rotation_degrees": 15.0,
    "flip_probability": 0.5,
    "hue_degrees": 0.0,
    "saturation_range": (1.0, 1.0),
    "value_range": (1.0, 1.0),
    "colour_offset": 0.0,
}
# dots: landmark -> colour channel (right eye outer corner, left eye outer corner, lower lip centre)
DOTS = {36: 0, 45: 1, 57: 2}
# where each dot is after a flip: the iBUG layout mirrors 36 <-> 45; 57 is on the centre line
FLIPPED_DOTS = {36: 45, 45: 36, 57: 57}


def continuous_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y) of a size x size image: OpenCV pixel + 0.5."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return xs, ys


def dot_image(points: dict[int, np.ndarray], size: int, radius: float) -> np.ndarray:
    """Black image with a soft disc per point, in its own colour channel (points in continuous pixels)."""
    xs, ys = continuous_grid(size)
    image = np.zeros((size, size, 3), np.uint8)
    for index, channel in DOTS.items():
        distance = np.hypot(xs - points[index][0], ys - points[index][1])
        image[..., channel] = np.clip(255 * (radius - distance), 0, 255).astype(np.uint8)
    return image


def dot_centres(image: np.ndarray) -> dict[int, np.ndarray]:
    """Intensity-weighted centre (continuous pixels) of each channel's dot, where it dominates the others."""
    xs, ys = continuous_grid(image.shape[0])
    pixels = image.astype(np.float64)
    centres = {}
    for index, channel in DOTS.items():
        others = np.delete(pixels, channel, axis=-1).max(axis=-1)
        weight = np.clip(pixels[..., channel] - others - 40, 0, None)
        centres[index] = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    return centres


def test_crop_matrices_match_hand_computations():
    # crop of half the frame about the centre: x -> 2 (x - 128) + 128 in the 256 frame
    zoom = AugmentParams(crop_scale=0.5)
    np.testing.assert_allclose(
        zoom.transform_landmarks(np.array([[96.0, 128.0], [160.0, 100.0]])), [[64.0, 128.0], [192.0, 72.0]]
    )
    # the same crop in OpenCV pixels (p = x - 0.5) of a 64 frame: p -> 2 p - 31.5
    np.testing.assert_allclose(zoom.opencv_matrix(64), [[2.0, 0.0, -31.5], [0.0, 2.0, -31.5]], atol=1e-12)
    # crop centre 0.1 of the side to the right: the content moves 25.6 px left
    np.testing.assert_allclose(
        AugmentParams(shift=(0.1, 0.0)).transform_landmarks(np.array([[128.0, 128.0]])),
        [[102.4, 128.0]],
        atol=1e-5,
    )
    # crop of 1.25 frames (zoom out 0.8) shifted down by 0.1 of its side (32 px): y -> (y - 160) * 0.8 + 128
    np.testing.assert_allclose(
        AugmentParams(crop_scale=1.25, shift=(0.0, 0.1)).transform_landmarks(np.array([[128.0, 200.0]])),
        [[128.0, 160.0]],
        atol=1e-5,
    )
    # a quarter turn about the centre maps the right edge's midpoint onto the bottom's (y down)
    turned = AugmentParams(rotation=90.0).transform_landmarks(np.array([[256.0, 128.0]]))
    np.testing.assert_allclose(turned, [[128.0, 256.0]], atol=1e-4)
    # a flip: x -> 256 - x in continuous coordinates, OpenCV pixel p -> 63 - p in a 64 frame
    flip = AugmentParams(flip=True)
    np.testing.assert_allclose(flip.opencv_matrix(64), [[-1.0, 0.0, 63.0], [0.0, 1.0, 0.0]], atol=1e-12)
    landmarks = np.stack([np.arange(68.0), np.full(68, 7.0)], axis=1)
    flipped = flip.transform_landmarks(landmarks)
    assert flipped[36].tolist() == [256.0 - 45.0, 7.0] and flipped[45].tolist() == [256.0 - 36.0, 7.0]
    assert flipped[8].tolist() == [248.0, 7.0] and flipped[0].tolist() == [256.0 - 16.0, 7.0]
    assert flipped[60].tolist() == [256.0 - 64.0, 7.0] and flipped[66].tolist() == [256.0 - 66.0, 7.0]


def test_a_flip_renumbers_landmarks_so_each_side_keeps_its_name():
    order = np.array(MIRRORED_LANDMARKS)
    assert sorted(order.tolist()) == list(range(68)) and (order[order] == np.arange(68)).all()
    face = canonical_template()
    flip = AugmentParams(flip=True)
    flipped = flip.transform_landmarks(face)
    np.testing.assert_allclose(flip.transform_landmarks(flipped), face, atol=1e-4)
    for shape in (face, flipped):
        assert shape[36:42, 0].mean() < shape[42:48, 0].mean()  # the "right eye" is on the image's left
        assert shape[0, 0] < shape[16, 0] and shape[48, 0] < shape[54, 0] and shape[17, 0] < shape[26, 0]
        assert shape[37, 1] < shape[41, 1] and shape[51, 1] < shape[57, 1]  # upper lids and lips stay up
        assert FaceFrame.of(shape.astype(np.float64)).v[1] > 0  # the mesh's face frame still points down


def test_colour_jitter_matches_hand_computed_hsv_values():
    colours = np.array([[[255, 0, 0], [200, 100, 50], [0, 0, 0]]], np.uint8)
    hue = AugmentParams(hue=120.0).jitter_colours(colours)
    assert hue[0, 0].tolist() == [0, 255, 0]  # red turned a third of the circle: green
    value = AugmentParams(value=(0.5, 0.0)).jitter_colours(colours)
    assert value[0, 1].tolist() == [100, 50, 25]  # V halved scales RGB by 1/2
    grey = AugmentParams(saturation=(0.0, 0.0)).jitter_colours(colours)
    assert grey[0, 1].tolist() == [200, 200, 200]  # no saturation: grey of the same value (max channel)
    lifted = AugmentParams(value=(1.0, 0.2)).jitter_colours(colours)
    assert lifted[0, 2].tolist() == [51, 51, 51]  # black + 0.2 of the value range
    assert AugmentParams(value=(1.0, 0.5)).jitter_colours(colours)[0, 0].tolist() == [255, 0, 0]  # clipped


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_dots_drawn_at_landmarks_are_found_at_the_augmented_landmarks(seed):
    size = 96
    landmarks = canonical_template()[None]
    scale = size / CANONICAL_FACE_SIZE
    image = dot_image({i: landmarks[0, i] * scale for i in DOTS}, size, radius=3.0)
    np.testing.assert_allclose(
        np.stack(list(dot_centres(image).values())), landmarks[0, list(DOTS)] * scale, atol=0.05
    )
    params = FaceAugmentation(**GEOMETRY_ONLY).draw(torch.Generator().manual_seed(seed))
    faces, moved = params(image[None], landmarks)
    assert faces.shape == (1, size, size, 3) and moved.shape == (1, 68, 2)
    found = dot_centres(faces[0])
    for index in DOTS:
        expected = moved[0, FLIPPED_DOTS[index] if params.flip else index] * scale
        assert (expected > 8).all() and (expected < size - 8).all(), "the dot must stay inside the frame"
        assert np.abs(found[index] - expected).max() < 0.25, (params, index, found[index], expected)


def test_the_seeds_above_cover_flips_and_both_zoom_directions():
    draws = [FaceAugmentation(**GEOMETRY_ONLY).draw(torch.Generator().manual_seed(s)) for s in range(6)]
    assert {d.flip for d in draws} == {True, False}
    assert min(d.crop_scale for d in draws) < 1 < max(d.crop_scale for d in draws)


def test_parameters_are_drawn_uniformly_in_their_ranges():
    augmentation = FaceAugmentation(crop_scale_range=(0.9, 1.1), shift_fraction=0.05, rotation_degrees=5.0)
    generator = torch.Generator().manual_seed(0)
    draws = [augmentation.draw(generator) for _ in range(400)]
    scales = np.array([d.crop_scale for d in draws])
    shifts = np.array([d.shift for d in draws])
    assert 0.9 <= scales.min() < 0.91 and 1.09 < scales.max() <= 1.1
    assert np.abs(shifts).max() <= 0.05 and np.abs(shifts).max() > 0.049
    assert 0.4 < np.mean([d.flip for d in draws]) < 0.6  # the original's flip probability 0.5
    hues = np.array([d.hue for d in draws])
    assert np.abs(hues).max() <= 42.1875 and np.abs(hues).max() > 41  # +-30 of a 256-step circle
    gains = np.array([d.value[0] for d in draws])
    assert 0.8 <= gains.min() < 0.81 and 1.19 < gains.max() <= 1.2


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="crop_scale_range"):
        FaceAugmentation(crop_scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="flip_probability"):
        FaceAugmentation(flip_probability=1.5)
    with pytest.raises(ValueError, match="shift_fraction"):
        FaceAugmentation(shift_fraction=-0.1)
    with pytest.raises(ValueError, match="max_frame_step"):
        Vid2VidDataModule(max_frame_step=0)
    with pytest.raises(ValueError, match="saturation_range"):
        Vid2VidDataModule(augment=True, augment_saturation=(-1.0, 1.0))


# ---------------------------------------------------------------------------------------------- datasets


def dot_clip(num_frames: int, size: int) -> dict[str, np.ndarray]:
    """Identical frames: dots drawn at the canonical template's landmarks (for the whole data path)."""
    landmarks = canonical_template()
    scale = size / CANONICAL_FACE_SIZE
    face = dot_image({i: landmarks[i] * scale for i in DOTS}, size, radius=3.5)
    return {
        "landmarks": np.repeat(landmarks[None], num_frames, axis=0),
        "faces": np.repeat(face[None], num_frames, axis=0),
    }


@pytest.fixture(scope="module")
def dot_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("dot_cache")
    write_clip(cache, "dots", "a", dot_clip(12, SIZE))
    return cache


def train_dataset(cache: Path, augmentation=None, **overrides) -> Vid2VidTrainDataset:
    arguments = {"num_references": 2, "sequence_length": 3, "samples_per_clip": 4}
    arguments.update(overrides)
    return Vid2VidTrainDataset(list_clips(cache), ClipReader(SIZE, 1), augmentation=augmentation, **arguments)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)


def test_one_draw_serves_every_frame_of_a_sample_and_labels_follow_the_landmarks(dot_cache):
    dataset = train_dataset(dot_cache, FaceAugmentation(**GEOMETRY_ONLY))
    plain = train_dataset(dot_cache)
    torch.manual_seed(0)
    samples = [dataset[i] for i in range(4)]
    reference = plain[0]
    for sample in samples:
        # the clip's frames are identical, so equal parameters give equal frames
        frames = torch.cat([sample["reference_images"], sample["images"]])
        assert (frames == frames[:1]).all()
        points = torch.cat([sample["reference_landmarks"], sample["landmarks"]])
        assert (points == points[:1]).all()
        assert (sample["labels"] == sample["reference_labels"][:1]).all()
        # the dots are where the augmented landmarks (S pixels) say; the cache's JPEG blurs them a little
        found = dot_centres(to_uint8(sample["images"][0]))
        landmarks = sample["landmarks"][0].numpy()
        flipped = np.abs(found[36] - landmarks[45]).max() < np.abs(found[36] - landmarks[36]).max()
        for index in DOTS:
            expected = landmarks[FLIPPED_DOTS[index] if flipped else index]
            assert np.abs(found[index] - expected).max() < 0.5, (index, found[index], expected)
        # label maps are drawn from the augmented landmarks: lit under them
        pixels = sample["landmarks"][0].round().long().clamp(0, SIZE - 1)
        assert sample["labels"][0, 0][pixels[:, 1], pixels[:, 0]].mean() > 0.9
        assert not torch.equal(sample["images"], reference["images"])
    # different samples get different draws
    assert not torch.equal(samples[0]["landmarks"], samples[1]["landmarks"])


def test_mesh_flows_and_mouth_masks_use_the_augmented_landmarks(tmp_path):
    cache = write_synthetic_cache(tmp_path, speakers=("a",), num_frames=12, crop_size=SIZE)
    dataset = train_dataset(cache, FaceAugmentation(**GEOMETRY_ONLY), num_references=1, sequence_length=2)
    torch.manual_seed(1)
    sample = dataset[0]
    target = sample["landmarks"][1].numpy() - 0.5  # OpenCV pixels, the flows' convention
    reference = sample["reference_landmarks"][0].numpy() - 0.5
    flow = sample["mesh_flows"][1, 0].numpy()  # (2, S, S): pixel p samples the reference at p + flow(p)
    for index in (8, 30, 33, 39, 42):  # chin, nose, eye corners: inside the frame, away from the lips
        x, y = np.rint(target[index]).astype(int)
        assert 0 <= min(x, y) and max(x, y) < SIZE
        source = np.array([x, y]) + flow[:, y, x]
        assert np.abs(source - reference[index]).max() < 1.5, (index, source, reference[index])
    mask = sample["mouth_masks"][1, 0].numpy()
    if mask.any():  # the inner-lip interior, where it is open, lies between the augmented inner lips
        ys, xs = np.nonzero(mask)
        lips = target[60:68]
        assert lips[:, 0].min() - 1 <= xs.min() and xs.max() <= lips[:, 0].max() + 1


def test_same_torch_seed_same_sample_and_another_seed_another(dot_cache):
    dataset = train_dataset(dot_cache, FaceAugmentation(), max_frame_step=3)

    def draw(seed: int) -> dict:
        torch.manual_seed(seed)
        return dataset[1]

    first, again, other = draw(5), draw(5), draw(6)
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, again[key]), key
    assert not torch.equal(first["images"], other["images"])


def test_validation_and_test_batches_are_never_augmented(tmp_path):
    cache = write_synthetic_cache(tmp_path, num_frames=12, crop_size=SIZE)
    common = {
        "cache_dir": str(cache),
        "image_size": SIZE,
        "num_references": 2,
        "sequence_length": 3,
        "eval_sequence_length": 3,
        "eval_windows_per_clip": 2,
        "batch_size": 2,
        "val_fraction": 0.34,
        "test_fraction": 0.34,
    }
    plain = Vid2VidDataModule(**common)
    augmented = Vid2VidDataModule(
        **common, augment=True, augment_crop_scale=(0.6, 0.7), augment_flip=1.0, max_frame_step=3
    )
    for data in (plain, augmented):
        data.setup("fit")
    for split in ("val", "test"):
        torch.manual_seed(0)
        expected = list(getattr(plain, f"{split}_dataloader")())
        torch.manual_seed(1)
        actual = list(getattr(augmented, f"{split}_dataloader")())
        assert len(actual) == len(expected) > 0
        for batch, reference in zip(actual, expected, strict=True):
            for key, value in reference.items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(batch[key], value), (split, key)
            frames = batch["frame_indices"]
            assert (frames[:, 1:] - frames[:, :-1] == 1).all()
    torch.manual_seed(0)
    plain_train = next(iter(plain.train_dataloader()))
    torch.manual_seed(0)
    augmented_train = next(iter(augmented.train_dataloader()))
    assert not torch.equal(plain_train["images"], augmented_train["images"])


# ------------------------------------------------------------------------------------------- frame steps


def test_frame_steps_are_random_constant_within_a_sequence_and_inside_the_clip(dot_cache):
    dataset = train_dataset(dot_cache, sequence_length=4, max_frame_step=3)
    torch.manual_seed(0)
    seen: dict[int, set[int]] = {}
    for _ in range(300):
        frames = dataset.target_frames(12)
        steps = np.diff(frames)
        assert len(frames) == 4 and (steps == steps[0]).all()
        assert frames[0] >= 0 and frames[-1] <= 11
        seen.setdefault(int(steps[0]), set()).add(int(frames[0]))
    # every step 1..3 and, for each, every start that keeps the last frame in the clip
    assert seen == {step: set(range(12 - 3 * step)) for step in (1, 2, 3)}
    # a short clip caps the step: 7 frames hold 4 targets at most 2 apart
    assert {int(np.diff(dataset.target_frames(7))[0]) for _ in range(100)} == {1, 2}
    # the default is consecutive frames, and a single target is any frame
    consecutive = train_dataset(dot_cache, sequence_length=4)
    assert all((np.diff(consecutive.target_frames(12)) == 1).all() for _ in range(50))
    single = train_dataset(dot_cache, sequence_length=1, max_frame_step=4)
    assert {int(single.target_frames(5)[0]) for _ in range(100)} == set(range(5))


def test_samples_carry_the_stepped_frame_numbers(dot_cache):
    dataset = train_dataset(dot_cache, num_references=3, sequence_length=3, max_frame_step=4)
    torch.manual_seed(2)
    steps = set()
    for index in range(8):
        sample = dataset[index % len(dataset)]
        frames = sample["frame_indices"].numpy()
        steps.add(int(frames[1] - frames[0]))
        assert (np.diff(frames) == frames[1] - frames[0]).all() and 0 <= frames[0] and frames[-1] <= 11
        assert sample["images"].shape == (3, 3, SIZE, SIZE)
        assert sample["reference_images"].shape == (3, 3, SIZE, SIZE)
    assert len(steps) > 1 and max(steps) <= 4
