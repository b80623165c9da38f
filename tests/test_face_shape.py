"""Random face-shape changes of training windows (data/face_shape.py), checked by hand computations."""

from dataclasses import replace

import numpy as np
import pytest

from eapc_lightning.constants import MOUTH
from eapc_lightning.data.datamodule import LandmarkDataModule
from eapc_lightning.data.face_shape import FaceShapeChange, apply_shape_change, draw_shape_change
from helpers.fake_clip_cache import write_fake_cache

IDENTITY = FaceShapeChange.identity()


def _face(seed=0):
    return np.random.default_rng(seed).uniform(60, 200, size=(68, 2)).astype(np.float32)


def test_the_identity_change_moves_nothing():
    face = _face()
    np.testing.assert_allclose(apply_shape_change(face, face, IDENTITY), face, atol=1e-4)


def test_mouth_width_scales_the_reference_mouth_about_its_centre():
    face = _face()
    out = apply_shape_change(face, face, replace(IDENTITY, mouth_width=1.2))
    width = lambda points: points[54, 0] - points[48, 0]  # noqa: E731
    assert width(out) == pytest.approx(1.2 * width(face), rel=1e-5)
    np.testing.assert_allclose(out[list(MOUTH)].mean(axis=0), face[list(MOUTH)].mean(axis=0), atol=1e-3)
    np.testing.assert_array_equal(out[:48], face[:48])  # only the mouth moved


def test_a_motion_is_carried_over_and_scaled_with_the_face():
    reference = _face()
    opened = reference.copy()
    opened[66, 1] += 6.0  # the lower inner lip drops by 6 px
    change = replace(IDENTITY, mouth_height=1.5, mouth_shift=3.0)
    moved_reference = apply_shape_change(reference, reference, change)
    moved_opened = apply_shape_change(opened, reference, change)
    assert moved_opened[66, 1] - moved_reference[66, 1] == pytest.approx(9.0, rel=1e-5)
    assert np.abs(moved_opened[:66] - moved_reference[:66]).max() < 1e-4


def test_scale_rotation_and_shift_keep_the_face_similar():
    face = _face()
    out = apply_shape_change(face, face, replace(IDENTITY, scale=1.1, rotation=4.0, shift=(5.0, -3.0)))
    pairs = np.linalg.norm(face[:, None] - face[None], axis=-1)
    moved = np.linalg.norm(out[:, None] - out[None], axis=-1)
    np.testing.assert_allclose(moved[pairs > 1], 1.1 * pairs[pairs > 1], rtol=1e-4)


def test_strength_zero_draws_the_identity_and_draws_vary():
    assert draw_shape_change(np.random.default_rng(0), 0.0) == IDENTITY
    widths = [draw_shape_change(np.random.default_rng(seed), 1.0).mouth_width for seed in range(50)]
    assert min(widths) < 0.95 and max(widths) > 1.05


def test_only_training_windows_get_new_face_shapes(tmp_path):
    arrays = write_fake_cache(tmp_path)
    datamodule = LandmarkDataModule(
        cache_dir=str(tmp_path),
        window=10,
        stride=5,
        face_shape_jitter=1.0,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    datamodule.setup("fit")
    train = datamodule._datasets["train"]
    sample = train[(0, 0)]
    clip = train.records[int(train.windows[0][0])]
    raw = arrays[clip.clip_id]["landmarks"]
    start = int(sample["start"])
    assert not np.allclose(sample["landmarks"].numpy(), raw[start : start + 10], atol=1e-2)
    assert sample["landmarks"].numpy() == pytest.approx(train[(0, 0)]["landmarks"].numpy())  # reproducible
    val = datamodule._datasets["val"]
    val_sample = val[0]
    val_clip = val.records[int(val.windows[0][0])]
    np.testing.assert_array_equal(val_sample["landmarks"].numpy(), arrays[val_clip.clip_id]["landmarks"][:10])
