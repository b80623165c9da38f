"""Fine-tuning vid2vid on the audio-to-landmark model's output (paper section 3.1): the per-checkpoint cache of
predicted landmarks, the DataModule's training targets drawn from them, and ``init_weights``."""

import hashlib
import json
import logging
import os
import shutil

import lightning as L
import numpy as np
import pytest
import torch

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.data.cache import load_clip, save_clip
from eapc_lightning.data.index import list_clips, read_clip_meta
from eapc_lightning.errors import InputError
from eapc_lightning.evaluation.predicted_landmarks import (
    INDEX_FILENAME,
    PREDICTIONS_FOLDER,
    ensure_predicted_landmarks,
)
from eapc_lightning.landmarks.draw import draw_label_map
from eapc_lightning.landmarks.mesh_warp import LandmarkMesh
from eapc_lightning.lit.a2l import A2LModule
from helpers.checkpoints import save_module_checkpoint, untrained_a2l_checkpoint
from helpers.vid2vid_cache import TINY_GENERATOR, write_synthetic_cache
from test_vid2vid_module import SIZE, tiny_data, tiny_module

SCALE = SIZE / 256


pytestmark = pytest.mark.usefixtures("single_thread")


def with_random_audio(cache, seed: int = 0):
    """Give the cache's clips random MFCC / LLF features (the helper writes zeros), so predictions move."""
    rng = np.random.default_rng(seed)
    for record in list_clips(cache):
        arrays = dict(np.load(record.path))
        arrays.pop("meta")
        frames = record.num_frames
        arrays["mfcc"] = rng.standard_normal((frames, 28, 12)).astype(np.float32)
        arrays["llf"] = rng.standard_normal((frames, 25)).astype(np.float32)
        save_clip(record.path, arrays, read_clip_meta(record.path))
    return cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return with_random_audio(write_synthetic_cache(root / "cache", num_frames=12, crop_size=SIZE))


@pytest.fixture(scope="module")
def a2l(tmp_path_factory):
    return untrained_a2l_checkpoint(tmp_path_factory.mktemp("a2l") / "a2l.ckpt", seed=0)


def expected_prediction(checkpoint, record) -> np.ndarray:
    """What the a2l model predicts for a cached clip, computed here from its raw arrays."""
    module = A2LModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    arrays = load_clip(record.path, ("mfcc", "llf", "landmarks")).arrays
    return module.predict_clip(arrays["mfcc"], arrays["llf"], arrays["landmarks"][0]).numpy()


def test_predictions_are_made_once_per_checkpoint_and_reused(cache, a2l, tmp_path):
    records = list_clips(cache)
    first = ensure_predicted_landmarks(cache, a2l, records)
    digest = hashlib.sha256(a2l.read_bytes()).hexdigest()
    assert first.folder == cache / PREDICTIONS_FOLDER / digest[:16]
    assert sorted(first.computed) == sorted(first.files) == sorted(r.clip_id for r in records)
    for record in records:
        predicted = first.load(record.clip_id)
        assert predicted.shape == (record.num_frames, 68, 2) and predicted.dtype == np.float32
        np.testing.assert_allclose(predicted, expected_prediction(a2l, record), atol=1e-5)
        cached = load_clip(record.path, ("landmarks",)).arrays["landmarks"]
        assert np.abs(predicted - cached).max() > 0.5  # not the clip's own landmarks
        # the canonical 256 frame of the cache: frame 0's reference sits where the clip's face is
        assert np.abs(predicted.mean(axis=(0, 1)) - cached.mean(axis=(0, 1))).max() < 40
    index = json.loads((first.folder / INDEX_FILENAME).read_text())
    assert index["checkpoint"] == str(a2l) and index["sha256"] == digest
    assert index["clips"] == sorted(r.clip_id for r in records) and index["failed"] == {}
    times = {path.name: path.stat().st_mtime_ns for path in first.folder.iterdir()}

    again = ensure_predicted_landmarks(cache, a2l, records)
    assert again.computed == [] and again.files == first.files
    assert {path.name: path.stat().st_mtime_ns for path in again.folder.iterdir()} == times

    copy = shutil.copy(a2l, tmp_path / "copied.ckpt")  # the same bytes elsewhere: the same predictions
    assert ensure_predicted_landmarks(cache, copy, records).computed == []

    other = untrained_a2l_checkpoint(tmp_path / "other.ckpt", seed=1)
    second = ensure_predicted_landmarks(cache, other, records)
    assert second.folder != first.folder and second.folder.parent == first.folder.parent
    assert sorted(second.computed) == sorted(r.clip_id for r in records)
    clip_id = records[0].clip_id
    assert not np.allclose(second.load(clip_id), first.load(clip_id))

    # a clip file written after its prediction (prepared again) is predicted again, the others are not
    stamp = records[1].path.stat().st_mtime_ns - 10**9
    os.utime(first.files[records[1].clip_id], ns=(stamp, stamp))
    assert ensure_predicted_landmarks(cache, a2l, records).computed == [records[1].clip_id]


def test_a_failing_clip_is_logged_and_skipped_and_the_others_go_on(cache, a2l, tmp_path, caplog):
    import dataclasses

    records = list_clips(cache)
    broken_file = tmp_path / "broken.npz"
    broken_file.write_bytes(b"not a clip")
    broken = dataclasses.replace(records[0], clip_id="broken_clip", path=broken_file)
    copy = shutil.copy(a2l, tmp_path / "a2l_copy.ckpt")
    with caplog.at_level(logging.WARNING):
        result = ensure_predicted_landmarks(tmp_path / "cache_copy", copy, [broken, *records])
    assert "broken_clip" in result.failures and "broken_clip" not in result.files
    assert sorted(result.files) == sorted(r.clip_id for r in records)
    assert any(str(broken_file) in message and "skipped" in message for message in caplog.messages)
    index = json.loads((result.folder / INDEX_FILENAME).read_text())
    assert list(index["failed"]) == ["broken_clip"] and "broken_clip" not in index["clips"]
    assert not list(result.folder.glob("*.tmp"))


def test_a_model_of_other_audio_features_is_refused(cache, a2l, tmp_path):
    record = list_clips(cache)[0]
    meta = read_clip_meta(record.path)
    meta["audio_features"] = {**AudioFeatureConfig().to_dict(), "n_mels": 64}
    arrays = dict(np.load(record.path))
    arrays.pop("meta")
    other = tmp_path / "other" / "clips" / record.path.name
    save_clip(other, arrays, meta)
    with pytest.raises(InputError, match="other settings"):
        ensure_predicted_landmarks(tmp_path / "other", a2l, list_clips(tmp_path / "other"))
    with pytest.raises(InputError, match="not found"):
        ensure_predicted_landmarks(cache, tmp_path / "absent.ckpt", [record])


def test_training_targets_are_drawn_from_the_predicted_landmarks(cache, a2l):
    data = tiny_data(cache, predicted_landmarks=str(a2l), sequence_length=3, samples_per_clip=3)
    data.setup("fit")
    predictions = ensure_predicted_landmarks(cache, a2l, data.splits["train"])
    assert predictions.computed == []  # setup made them
    dataset = data.train_dataloader().dataset
    for index in range(len(dataset)):
        sample = dataset[index]
        record = next(r for r in data.splits["train"] if r.clip_id == sample["clip_id"])
        clip = load_clip(record.path)
        truth = clip.arrays["landmarks"].astype(np.float32)
        predicted = predictions.load(record.clip_id)
        targets = sample["frame_indices"].numpy()
        # targets: the a2l landmarks, their label maps and mesh flows, over the real frames
        np.testing.assert_allclose(sample["landmarks"].numpy(), predicted[targets] * SCALE, rtol=1e-6)
        for t, frame in enumerate(targets):
            from_predicted = draw_label_map(predicted[frame], SIZE)
            np.testing.assert_array_equal(sample["labels"][t, 0].numpy(), from_predicted)
            assert not np.array_equal(from_predicted, draw_label_map(truth[frame], SIZE))
        real = torch.from_numpy(clip.faces(targets)).permute(0, 3, 1, 2).float() / 127.5 - 1
        torch.testing.assert_close(sample["images"], real)
        # references keep their real landmarks and label maps
        reference = sample["reference_landmarks"][0].numpy() / SCALE
        matches = np.flatnonzero(np.abs(truth - reference).max(axis=(1, 2)) < 1e-3)
        assert len(matches) and not set(matches) & set(targets)
        frame = matches[0]
        np.testing.assert_array_equal(
            sample["reference_labels"][0, 0].numpy(), draw_label_map(truth[frame], SIZE)
        )
        mesh = LandmarkMesh(truth[frame] * SCALE - 0.5, SIZE)
        flow = mesh.flow(predicted[targets[0]] * SCALE - 0.5)
        np.testing.assert_allclose(sample["mesh_flows"][0, 0].numpy(), flow, atol=1e-4)
    # validation targets keep the clips' own landmarks
    val = data.val_dataloader().dataset[0]
    record = data.splits["val"][0]
    truth = load_clip(record.path, ("landmarks",)).arrays["landmarks"]
    frames = val["frame_indices"].numpy()
    np.testing.assert_allclose(val["landmarks"].numpy(), truth[frames] * SCALE, rtol=1e-6)


def test_testing_a_finetuned_model_needs_no_predictions(cache, tmp_path):
    other = tmp_path / "never_used.ckpt"  # absent: a test stage must not even look at it
    data = tiny_data(cache, predicted_landmarks=str(other))
    data.setup("test")
    assert data.target_landmarks is None
    assert data.test_dataloader().dataset[0]["labels"].shape[0] == 3
    with pytest.raises(InputError, match="not found"):
        data.setup("fit")


def attached(module):
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    module.trainer = trainer
    return module


def test_init_weights_load_generator_ema_and_discriminators_when_fitting(tmp_path):
    torch.manual_seed(0)
    base = tiny_module()
    with torch.no_grad():
        for parameter in base.generator_ema.parameters():  # an EMA that differs from the generator
            parameter.add_(0.25)
    checkpoint = save_module_checkpoint(base, tmp_path / "base.ckpt")
    torch.manual_seed(1)
    module = attached(tiny_module(init_weights=str(checkpoint)))
    parts = ("generator", "generator_ema", "image_discriminator")
    before = {key: value.clone() for key, value in module.state_dict().items()}
    module.setup("test")  # evaluating a fine-tuned checkpoint: its own weights, not the initial ones
    assert all(torch.equal(value, before[key]) for key, value in module.state_dict().items())
    module.setup("fit")
    loaded = module.state_dict()
    wanted = base.state_dict()
    for key in loaded:
        if key.split(".", 1)[0] in parts:
            torch.testing.assert_close(loaded[key], wanted[key], rtol=0, atol=0)
    assert any(
        not torch.equal(loaded[key], before[key]) for key in loaded if key.startswith("generator_ema.")
    )
    key = next(k for k in loaded if k.startswith("generator_ema.") and k.endswith("weight"))
    assert not torch.equal(loaded[key], loaded[key.replace("generator_ema.", "generator.", 1)])


def test_init_weights_refuses_other_shapes_and_files(tmp_path, a2l):
    checkpoint = save_module_checkpoint(tiny_module(), tmp_path / "base.ckpt")
    narrow = tiny_module(generator={**TINY_GENERATOR, "base_channels": 4})
    with pytest.raises(InputError, match="network shape"):
        narrow.load_initial_weights(str(checkpoint))
    with pytest.raises(InputError, match="network shape"):
        tiny_module().load_initial_weights(str(a2l))  # an audio-to-landmark checkpoint
    with pytest.raises(InputError, match="no such vid2vid checkpoint"):
        tiny_module().load_initial_weights(str(tmp_path / "absent.ckpt"))
