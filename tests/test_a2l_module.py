"""A2LModule end to end on a tiny in-memory data set: logging, checkpoints, streaming inference, resume."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from eapc_lightning.lit import A2LModule
from eapc_lightning.models import DualLSTMConfig, emotion_condition
from eapc_lightning.models.dual_lstm import normalise_landmarks
from helpers.a2l_toy_data import FEATURE_STATS, TINY_NETWORK, ToyLandmarkData

LANDMARK_METRICS = ("M-LD", "M-LVD", "F-LD", "F-LVD")
QUIET = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
NO_CHECKPOINTS = dict(QUIET, enable_checkpointing=False)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and disturb neighbours least, on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_module(**overrides) -> A2LModule:
    network = {**TINY_NETWORK, **overrides.pop("network", {})}
    return A2LModule(
        network=DualLSTMConfig(**network), **{"lr": 3e-3, "emotion_loss_weight": 0.1, **overrides}
    )


def numpy_ld_lvd(prediction: np.ndarray, target: np.ndarray, points: list[int]) -> tuple[float, float]:
    """LD and LVD of (N, T, 68, 2) arrays, centring each frame with all 68 points."""
    prediction = prediction - prediction.mean(axis=2, keepdims=True)
    target = target - target.mean(axis=2, keepdims=True)
    ld = np.linalg.norm(prediction[:, :, points] - target[:, :, points], axis=-1).mean()
    velocity = np.diff(prediction[:, :, points], axis=1) - np.diff(target[:, :, points], axis=1)
    return float(ld), float(np.linalg.norm(velocity, axis=-1).mean())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "network": {"emotion_source": "label", "attention": False, "prior_skip": False},
            "lr_scheduler": "cosine",
        },
    ],
)
def test_fast_dev_run_fit_validate_test_logs_every_metric(overrides: dict) -> None:
    seed_everything(0)
    module, data = tiny_module(**overrides), ToyLandmarkData()
    trainer = Trainer(fast_dev_run=True, **NO_CHECKPOINTS)
    trainer.fit(module, data)
    for name in ("train/loss", "train/mse", "train/lmd", "train/emotion_ce", "val/loss", "val/emotion_acc"):
        assert torch.isfinite(trainer.callback_metrics[name]), name
    for name in LANDMARK_METRICS:
        assert torch.isfinite(trainer.callback_metrics[f"val/{name}"])
    assert set(trainer.validate(module, data, verbose=False)[0]) == {
        "val/loss",
        "val/emotion_acc",
        *(f"val/{name}" for name in LANDMARK_METRICS),
    }
    results = trainer.test(module, data, verbose=False)[0]
    expected = {"test/loss", "test/emotion_acc"}
    expected |= {f"test/{name}" for name in LANDMARK_METRICS}
    expected |= {f"test/baseline_{name}" for name in LANDMARK_METRICS}
    assert set(results) == expected


def test_test_metrics_pool_all_batches_and_baseline_holds_the_reference_still() -> None:
    seed_everything(0)
    module, data = tiny_module(), ToyLandmarkData(test=10, batch_size=4)  # batches of 4, 4 and 2
    trainer = Trainer(**NO_CHECKPOINTS)
    results = trainer.test(module, data, verbose=False)[0]
    predictions = torch.cat(trainer.predict(module, data)).numpy().astype(np.float64)
    windows = data.splits["test"]
    target = np.stack([window["landmarks"].numpy() for window in windows]).astype(np.float64)
    held_still = np.stack([window["reference"].numpy() for window in windows]).astype(np.float64)
    held_still = np.repeat(held_still[:, None], target.shape[1], axis=1)
    for prefix, region, points in (("M", "mouth", list(range(48, 68))), ("F", "face", list(range(68)))):
        ld, lvd = numpy_ld_lvd(predictions, target, points)
        assert results[f"test/{prefix}-LD"] == pytest.approx(ld, rel=1e-5), region
        assert results[f"test/{prefix}-LVD"] == pytest.approx(lvd, rel=1e-5), region
        baseline_ld, baseline_lvd = numpy_ld_lvd(held_still, target, points)
        assert results[f"test/baseline_{prefix}-LD"] == pytest.approx(baseline_ld, rel=1e-5)
        assert results[f"test/baseline_{prefix}-LVD"] == pytest.approx(baseline_lvd, rel=1e-5)
    labels = np.array([int(window["emotion"]) for window in windows])
    with torch.no_grad():
        logits = torch.cat([module(batch).emotion_logits for batch in data.test_dataloader()])
    guesses = logits.softmax(-1).mean(1).argmax(-1).numpy()
    labelled = labels >= 0
    assert results["test/emotion_acc"] == pytest.approx(float((guesses[labelled] == labels[labelled]).mean()))


@pytest.fixture(scope="module")
def fitted_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("a2l_checkpoint")
    torch.set_num_threads(1)
    seed_everything(0)
    trainer = Trainer(
        max_steps=3, limit_val_batches=0, callbacks=[ModelCheckpoint(dirpath=folder, save_last=True)], **QUIET
    )
    trainer.fit(tiny_module(), ToyLandmarkData())
    return folder / "last.ckpt"


def test_checkpoint_carries_feature_stats_and_hyperparameters(fitted_checkpoint: Path) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint)
    assert bool(module.feature_stats_set)
    for name, value in FEATURE_STATS.items():
        torch.testing.assert_close(getattr(module, name), value)
    assert module.network.config == DualLSTMConfig(**TINY_NETWORK)
    assert module.hparams.lr == 3e-3


def raw_clip(frames: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A clip's features before standardisation, and a reference face."""
    generator = torch.Generator().manual_seed(seed)
    mfcc = (
        torch.randn(frames, 28, 12, generator=generator) * FEATURE_STATS["mfcc_std"]
        + FEATURE_STATS["mfcc_mean"]
    )
    llf = torch.randn(frames, 25, generator=generator) * FEATURE_STATS["llf_std"] + FEATURE_STATS["llf_mean"]
    reference = 100 + 60 * torch.rand(68, 2, generator=generator)
    return mfcc, llf, reference


def test_predict_clip_standardises_with_the_checkpoint_buffers(fitted_checkpoint: Path) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint, prior_reset_frames=None)  # one network pass
    mfcc, llf, reference = raw_clip(30)
    landmarks = module.predict_clip(mfcc.numpy(), llf.numpy(), reference.numpy())
    standardised_mfcc = (mfcc - FEATURE_STATS["mfcc_mean"]) / FEATURE_STATS["mfcc_std"]
    standardised_llf = (llf - FEATURE_STATS["llf_mean"]) / FEATURE_STATS["llf_std"]
    module.eval()
    with torch.no_grad():
        expected = module.network(standardised_mfcc[None], standardised_llf[None], reference[None]).landmarks[
            0
        ]
    assert landmarks.shape == (30, 68, 2)
    torch.testing.assert_close(
        normalise_landmarks(landmarks), normalise_landmarks(expected), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("chunk", [7, 16, 1])
def test_predict_clip_has_no_seams_at_chunk_joins(fitted_checkpoint: Path, chunk: int) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint)
    mfcc, llf, reference = raw_clip(53)
    whole = module.predict_clip(mfcc, llf, reference, chunk=53)
    chunked = module.predict_clip(mfcc, llf, reference, chunk=chunk)
    # compared in normalised units (pixels / 256): float32 pixels near 128 are resolved to ~1.5e-5 only
    torch.testing.assert_close(normalise_landmarks(chunked), normalise_landmarks(whole), atol=1e-6, rtol=0)
    assert (chunked - whole).abs().max() < 1e-4  # pixels


def test_landmark_stream_carries_state_and_restarts_the_prior_every_window(fitted_checkpoint: Path) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint)
    assert module.hparams.prior_reset_frames == 25
    mfcc, llf, reference = raw_clip(40)
    standardised_mfcc = (mfcc - FEATURE_STATS["mfcc_mean"]) / FEATURE_STATS["mfcc_std"]
    standardised_llf = (llf - FEATURE_STATS["llf_mean"]) / FEATURE_STATS["llf_std"]
    override = emotion_condition("sad", 2)[None]
    module.eval()
    with torch.no_grad():
        first = module.network(
            standardised_mfcc[None, :25],
            standardised_llf[None, :25],
            reference[None],
            emotion_override=override,
        )
        # frame 25 starts eq. 4's sum afresh (eq. 5); the LSTM states and attention cache carry on
        second = module.network(
            standardised_mfcc[None, 25:],
            standardised_llf[None, 25:],
            reference[None],
            emotion_override=override,
            state=first.state._replace(prior=None),
        )
        one_pass = module.network(
            standardised_mfcc[None], standardised_llf[None], reference[None], emotion_override=override
        ).landmarks[0]
    expected = torch.cat([first.landmarks[0], second.landmarks[0]])
    module.train()  # the stream runs the network in eval mode and leaves the module's mode alone
    stream = module.landmark_stream(reference.numpy(), emotion="sad", intensity=2)
    pieces = [stream(mfcc[a:b].numpy(), llf[a:b].numpy()) for a, b in ((0, 1), (1, 13), (13, 13), (13, 40))]
    assert [len(piece) for piece in pieces] == [1, 12, 0, 27]
    assert module.training
    streamed = torch.cat(pieces)
    torch.testing.assert_close(
        normalise_landmarks(streamed), normalise_landmarks(expected), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(streamed[:25], one_pass[:25], atol=1e-4, rtol=0)
    assert (streamed[25:] - one_pass[25:]).abs().max() > 1e-2  # the restart changes later frames

    carried = A2LModule.load_from_checkpoint(fitted_checkpoint, prior_reset_frames=None)
    whole = carried.landmark_stream(reference, emotion="sad", intensity=2)(mfcc, llf)
    torch.testing.assert_close(normalise_landmarks(whole), normalise_landmarks(one_pass), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"llf_raw must have shape \(3, 25\), got \(2, 25\)"):
        stream(mfcc[:3], llf[:2])
    with pytest.raises(ValueError, match="no emotion input"):
        mute = tiny_module(network={"emotion_source": "none"})
        mute.set_feature_stats(FEATURE_STATS)
        mute.landmark_stream(reference, emotion="happy")
    with pytest.raises(ValueError, match="prior_reset_frames must be at least 1"):
        tiny_module(prior_reset_frames=0)


def test_predict_clip_emotion_override_and_intensity(fitted_checkpoint: Path) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint)
    mfcc, llf, reference = raw_clip(20)
    happy = module.predict_clip(mfcc, llf, reference, emotion="happy", chunk=6)
    standardised = (
        ((mfcc - FEATURE_STATS["mfcc_mean"]) / FEATURE_STATS["mfcc_std"])[None],
        ((llf - FEATURE_STATS["llf_mean"]) / FEATURE_STATS["llf_std"])[None],
    )
    with torch.no_grad():
        override = emotion_condition("happy", 3)[None]
        expected = module.network(*standardised, reference[None], emotion_override=override).landmarks[0]
    torch.testing.assert_close(normalise_landmarks(happy), normalise_landmarks(expected), atol=1e-6, rtol=0)
    mild = module.predict_clip(mfcc, llf, reference, emotion="happy", intensity=1)
    assert not torch.allclose(mild, happy)
    assert not torch.allclose(module.predict_clip(mfcc, llf, reference), happy)
    with pytest.raises(ValueError, match="intensity needs an emotion"):
        module.predict_clip(mfcc, llf, reference, intensity=2)


def test_predict_clip_refuses_bad_input_and_missing_statistics(fitted_checkpoint: Path) -> None:
    module = A2LModule.load_from_checkpoint(fitted_checkpoint)
    mfcc, llf, reference = raw_clip(10)
    with pytest.raises(ValueError, match=r"llf_raw must have shape \(10, 25\), got \(9, 25\)"):
        module.predict_clip(mfcc, llf[:9], reference)
    with pytest.raises(ValueError, match=r"mfcc_raw must have shape \(T, 28, 12\)"):
        module.predict_clip(mfcc[:, :, :5], llf, reference)
    with pytest.raises(ValueError, match=r"reference must have shape \(68, 2\)"):
        module.predict_clip(mfcc, llf, reference[:60])
    with pytest.raises(RuntimeError, match="no feature statistics"):
        tiny_module().predict_clip(mfcc, llf, reference)
    with pytest.raises(ValueError, match="feature_stats lacks 'llf_std'"):
        tiny_module().set_feature_stats(
            {key: value for key, value in FEATURE_STATS.items() if key != "llf_std"}
        )


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_overfitting_one_batch_drives_the_loss_below_two_percent_of_its_start() -> None:
    seed_everything(0)
    module = tiny_module(lr_scheduler="cosine")
    recorder = LossRecorder()
    trainer = Trainer(
        max_steps=200, overfit_batches=1, limit_val_batches=0, callbacks=[recorder], **NO_CHECKPOINTS
    )
    trainer.fit(module, ToyLandmarkData(train=4, batch_size=4))
    assert len(recorder.losses) == 200
    final = float(np.mean(recorder.losses[-5:]))
    assert final < 0.02 * recorder.losses[0], (recorder.losses[0], final)


def fit_and_test(folder: Path, max_epochs: int, ckpt_path: Path | None = None) -> dict[str, float]:
    seed_everything(0)
    module, data = tiny_module(), ToyLandmarkData(train=8, val=4, test=4, batch_size=4)
    checkpoint = ModelCheckpoint(dirpath=folder, save_last=True)
    trainer = Trainer(max_epochs=max_epochs, callbacks=[checkpoint], **QUIET)
    trainer.fit(module, data, ckpt_path=ckpt_path)
    assert trainer.global_step == 2 * max_epochs
    return trainer.test(module, data, verbose=False)[0]


def test_resuming_from_last_ckpt_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    uninterrupted = fit_and_test(tmp_path / "straight", max_epochs=4)
    fit_and_test(tmp_path / "interrupted", max_epochs=2)
    resumed = fit_and_test(
        tmp_path / "interrupted", max_epochs=4, ckpt_path=tmp_path / "interrupted" / "last.ckpt"
    )
    assert set(resumed) == set(uninterrupted)
    for name, value in uninterrupted.items():
        assert resumed[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    untrained = fit_and_test(tmp_path / "short", max_epochs=1)
    assert untrained["test/loss"] != pytest.approx(
        uninterrupted["test/loss"], rel=1e-3
    )  # training did move it


def test_checkpoint_records_the_data_audio_settings_and_refuses_data_prepared_otherwise(
    tmp_path: Path,
) -> None:
    from eapc_lightning.audio.features import AudioFeatureConfig

    trained_on = AudioFeatureConfig(n_mels=64)
    data = ToyLandmarkData()
    data.audio_features = trained_on
    trainer = Trainer(
        max_steps=1,
        limit_val_batches=0,
        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)],
        **QUIET,
    )
    trainer.fit(tiny_module(), data)
    module = A2LModule.load_from_checkpoint(tmp_path / "last.ckpt")
    assert module.audio_features == trained_on

    same = ToyLandmarkData()
    same.audio_features = AudioFeatureConfig(n_mels=64)
    Trainer(limit_test_batches=1, **QUIET).test(module, same)
    other = ToyLandmarkData()
    other.audio_features = AudioFeatureConfig()
    with pytest.raises(ValueError, match="prepared with audio feature settings .* this model was trained on"):
        Trainer(limit_test_batches=1, **QUIET).test(module, other)
