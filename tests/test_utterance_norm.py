"""Per-utterance normalisation (``FeatureStats.utterance_frames``): the running statistics against a
computation from their definitions, streaming against one pass, and its path through the
datamodule, the checkpoint and ``predict_clip``."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from eapc_lightning.data.datamodule import LandmarkDataModule
from eapc_lightning.data.feature_stats import FeatureStats
from eapc_lightning.lit import A2LModule
from eapc_lightning.models import DualLSTMConfig
from helpers.a2l_toy_data import FEATURE_STATS, TINY_NETWORK, ToyLandmarkData
from helpers.fake_clip_cache import write_fake_cache

PRIOR = 6  # frames of prior weight


def stats(utterance_frames: float = PRIOR) -> FeatureStats:
    rng = np.random.default_rng(3)
    return FeatureStats(
        rng.normal(0, 5, 12).astype(np.float32),
        rng.uniform(1, 3, 12).astype(np.float32),
        rng.normal(0, 5, 25).astype(np.float32),
        rng.uniform(1, 3, 25).astype(np.float32),
        utterance_frames=utterance_frames,
    )


def features(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(10, 4, (frames, 28, 12)).astype(np.float32),
        rng.normal(-3, 2, (frames, 25)).astype(np.float32),
    )


def pooled_standardised(values: np.ndarray, row_weight: float, mean, std) -> np.ndarray:
    """Frame t standardised from the definitions: the mean of the rows of frames 0..t (each row weighing
    row_weight frames) pooled with the prior mean weighing PRIOR frames; their variance about their own
    mean pooled likewise with the prior variance."""
    rows_per_frame = values[0].reshape(-1, values.shape[-1]).shape[0]
    out = np.empty_like(values, dtype=np.float64)
    for t in range(values.shape[0]):
        rows = values[: t + 1].reshape(-1, values.shape[-1]).astype(np.float64)
        weights = np.full(len(rows), row_weight)
        own_mean = np.average(rows, axis=0, weights=weights)
        own_variance = np.average((rows - own_mean) ** 2, axis=0, weights=weights)
        frames = (t + 1) * rows_per_frame * row_weight
        centre = (PRIOR * mean + frames * own_mean) / (PRIOR + frames)
        spread = np.sqrt((PRIOR * std.astype(np.float64) ** 2 + frames * own_variance) / (PRIOR + frames))
        out[t] = (values[t] - centre) / spread
    return out


def test_running_statistics_match_their_definitions():
    settings = stats()
    mfcc, llf = features(9)
    got_mfcc, got_llf, moments = settings.standardize(mfcc, llf)
    expected_mfcc = pooled_standardised(mfcc, 1 / 28, settings.mfcc_mean, settings.mfcc_std)
    expected_llf = pooled_standardised(llf, 1.0, settings.llf_mean, settings.llf_std)
    np.testing.assert_allclose(got_mfcc, expected_mfcc, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_llf, expected_llf, rtol=1e-4, atol=1e-4)
    assert moments.frames == 9


@pytest.mark.parametrize("cuts", [(1, 5), (4,), (0, 7, 7)])
def test_chunks_with_carried_moments_equal_one_pass(cuts):
    settings = stats()
    mfcc, llf = features(12, seed=1)
    whole_mfcc, whole_llf, _ = settings.standardize(mfcc, llf)
    pieces, moments = [], None
    for start, stop in zip((0, *cuts), (*cuts, 12), strict=True):
        chunk_mfcc, chunk_llf, moments = settings.standardize(mfcc[start:stop], llf[start:stop], moments)
        pieces.append((chunk_mfcc, chunk_llf))
    np.testing.assert_allclose(np.concatenate([p[0] for p in pieces]), whole_mfcc, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p[1] for p in pieces]), whole_llf, atol=1e-6)


def test_off_is_the_training_statistics_and_on_takes_out_a_recording_gain():
    mfcc, llf = features(200, seed=2)
    louder_mfcc, louder_llf = mfcc.copy(), llf + 0
    louder_mfcc[..., 0] += 20.0  # a gain moves MFCC 0 and the level LLF by a constant
    louder_llf[:, 0] += 12.0
    off = stats(0)
    got, _, moments = off.standardize(mfcc, llf)
    np.testing.assert_allclose(got, (mfcc - off.mfcc_mean) / off.mfcc_std, rtol=1e-6)
    assert moments.frames == 0
    shifted, _, _ = off.standardize(louder_mfcc, louder_llf)
    assert np.abs(shifted[..., 0] - got[..., 0]).min() > 5  # 20 / std: the gain reaches the model
    on = stats(PRIOR)
    quiet_mfcc, quiet_llf, _ = on.standardize(mfcc, llf)
    loud_mfcc, loud_llf, _ = on.standardize(louder_mfcc, louder_llf)
    # after 150 frames what is left of the gain is the prior's share of the mean over the spread,
    # 6 / 156 * 20 / 4 = 0.19 (MFCC 0) and 6 / 156 * 12 / 2 = 0.23 (level)
    assert np.abs(loud_mfcc[150:, :, 0] - quiet_mfcc[150:, :, 0]).max() < 0.3
    assert np.abs(loud_llf[150:, 0] - quiet_llf[150:, 0]).max() < 0.3


def test_negative_prior_is_refused():
    with pytest.raises(ValueError, match="utterance_frames"):
        stats(-1.0)


def test_datamodule_serves_windows_of_the_whole_clip_normalisation(tmp_path):
    write_fake_cache(tmp_path, speakers=("M001", "M002", "W001"), clips_per_speaker=2, frame_counts=(40, 61))
    dm = LandmarkDataModule(
        cache_dir=str(tmp_path), window=25, stride=5, val_fraction=1 / 3, test_fraction=1 / 3,
        utterance_norm_frames=PRIOR, reference="first",
    )  # fmt: skip
    dm.setup("fit")
    assert float(dm.feature_stats["utterance_frames"]) == PRIOR
    dataset = dm.dataset("train")
    for index in range(len(dataset)):
        sample = dataset[index]
        clip = next(i for i, r in enumerate(dataset.records) if r.clip_id == sample["clip_id"])
        whole = dataset.full_clip(clip)
        start = int(sample["start"])
        torch.testing.assert_close(sample["mfcc"], whole["mfcc"][start : start + 25])
        torch.testing.assert_close(sample["llf"], whole["llf"][start : start + 25])
    restored = LandmarkDataModule(cache_dir=str(tmp_path))
    restored.load_state_dict(dm.state_dict())
    assert float(restored.feature_stats["utterance_frames"]) == PRIOR
    with pytest.raises(ValueError, match="utterance_norm_frames"):
        LandmarkDataModule(cache_dir=str(tmp_path), standardize=False, utterance_norm_frames=PRIOR)


@pytest.fixture(scope="module")
def utterance_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("a2l_utterance")
    torch.set_num_threads(1)
    seed_everything(0)
    data = ToyLandmarkData()
    data.feature_stats = FEATURE_STATS | {"utterance_frames": torch.tensor(float(PRIOR))}
    trainer = Trainer(
        max_steps=2, limit_val_batches=0, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[ModelCheckpoint(dirpath=folder, save_last=True)],
    )  # fmt: skip
    module = A2LModule(network=DualLSTMConfig(**TINY_NETWORK), lr=3e-3)
    trainer.fit(module, data)
    return folder / "last.ckpt"


def test_checkpoint_carries_the_prior_and_predict_clip_normalises_per_utterance(utterance_checkpoint):
    module = A2LModule.load_from_checkpoint(utterance_checkpoint, prior_reset_frames=None)
    assert float(module.utterance_frames) == PRIOR
    mfcc, llf = features(30, seed=4)
    reference = np.full((68, 2), 128.0, np.float32) + np.random.default_rng(5).normal(0, 20, (68, 2))
    landmarks = module.predict_clip(mfcc, llf, reference)
    standardizer = FeatureStats.from_mapping(FEATURE_STATS)
    expected_mfcc = pooled_standardised(mfcc, 1 / 28, standardizer.mfcc_mean, standardizer.mfcc_std)
    expected_llf = pooled_standardised(llf, 1.0, standardizer.llf_mean, standardizer.llf_std)
    module.eval()
    with torch.no_grad():
        expected = module.network(
            torch.tensor(expected_mfcc[None], dtype=torch.float32),
            torch.tensor(expected_llf[None], dtype=torch.float32),
            torch.tensor(reference[None], dtype=torch.float32),
        ).landmarks[0]
    assert (landmarks - expected).abs().max() < 1e-3  # pixels
    chunked = module.predict_clip(mfcc, llf, reference, chunk=7)
    assert (chunked - landmarks).abs().max() < 1e-4


def test_checkpoint_without_the_prior_buffer_loads_as_training_statistics(utterance_checkpoint, tmp_path):
    checkpoint = torch.load(utterance_checkpoint, map_location="cpu", weights_only=False)
    del checkpoint["state_dict"]["utterance_frames"]
    older = tmp_path / "older.ckpt"
    torch.save(checkpoint, older)
    module = A2LModule.load_from_checkpoint(older)
    assert float(module.utterance_frames) == 0.0
    assert module.standardizer().utterance_frames == 0.0
