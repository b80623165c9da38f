"""Audio path: decoding at any rate/channel count, MFCC windows and chroma pinned to librosa, LLF layout,\nfeatures that depend only on nearby audio."""

import av
import librosa
import numpy as np
import pytest

from eapc_lightning.audio import extract_features, llf_features, load_audio, mfcc_windows
from eapc_lightning.audio.features import AudioFeatureConfig, frames_in, llf_rows, mfcc_rows
from eapc_lightning.errors import InputError


def _chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (150 + 400 * t) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


def _write_wav(path, samples: np.ndarray, rate: int, layout: str) -> None:
    channels = 2 if layout == "stereo" else 1
    data = np.repeat(samples[None, :], channels, axis=0)
    pcm = (np.clip(data, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_mfcc_matches_librosa():
    config = AudioFeatureConfig()
    signal = _chirp(2.0, config.sample_rate)
    signal[12000:20000] = 0.0  # a stretch of digital silence reaches the absolute floor
    ours = mfcc_rows(signal, config)
    mel = librosa.feature.melspectrogram(
        y=signal,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=0.0,
        fmax=config.sample_rate / 2,
        center=True,
        pad_mode="constant",
        htk=False,
        power=2.0,
    )
    log_mel = librosa.power_to_db(mel, amin=1e-10, top_db=None)
    reference = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc).T
    assert ours.shape == reference.shape
    # float32 STFTs in torch and librosa round differently; mel bins 100+ dB below the peak (kept by the
    # absolute floor) differ by up to ~0.02 dB, ~0.01 in the cepstra (values span ~+-600)
    np.testing.assert_allclose(ours, reference, atol=2e-2, rtol=1e-4)


def _speech_like(seconds: float, rate: int) -> np.ndarray:
    """A loud voiced first half and a second half 60 dB quieter (its weaker bins sit below an 80 dB relative floor)."""
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 203 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    signal += 0.02 * rng.standard_normal(len(t))
    signal[len(t) // 2 :] *= 1e-3
    return signal.astype(np.float32)


@pytest.mark.parametrize("first", [3, 52])  # inside the loud half, inside the quiet half
def test_features_are_local(first):
    """Frames computed from a segment with 4 frames (160 ms) of context equal the whole-signal ones."""
    config = AudioFeatureConfig()
    signal = _speech_like(3.0, config.sample_rate)
    frames = frames_in(signal, config)
    whole = extract_features(signal, frames, config)
    count, context, spf = 12, 4, config.samples_per_frame
    # the MFCC windows reach 2176 samples before and 2656 after their frame's start: 4 frames of context
    begin, end = max(first - context, 0), first + count + context
    part = extract_features(signal[begin * spf : end * spf], end - begin, config)
    keep = slice(first - begin, first - begin + count)
    np.testing.assert_allclose(part["mfcc"][keep], whole["mfcc"][first : first + count], atol=1e-4)
    np.testing.assert_allclose(part["llf"][keep], whole["llf"][first : first + count], atol=1e-5, rtol=1e-5)


def test_chroma_uses_fixed_tuning():
    config = AudioFeatureConfig()
    signal = _speech_like(1.0, config.sample_rate)[:8000]  # the loud half only
    magnitude = np.abs(
        librosa.stft(signal, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length)
    )
    expected = librosa.feature.chroma_stft(S=magnitude**2, sr=config.sample_rate, tuning=0.0).T
    np.testing.assert_allclose(llf_rows(signal, config)[:, 1:13], expected, atol=1e-6)


def test_mfcc_windows_follow_the_atvgnet_layout():
    config = AudioFeatureConfig()
    signal = _chirp(1.0, config.sample_rate)
    windows = mfcc_windows(signal, 25, config)
    assert windows.shape == (25, 28, 12)
    # frame i takes rows [4i, 4i+28) of the MFCCs of the signal padded by 0.12 s, c0 dropped
    padded = np.concatenate([np.zeros(1920, np.float32), signal, np.zeros(1920, np.float32)])
    rows = mfcc_rows(padded, config)[:, 1:]
    np.testing.assert_allclose(windows[7], rows[28:56], atol=1e-4)


def test_llf_layout_and_energy_tracks_loudness():
    config = AudioFeatureConfig()
    signal = _chirp(1.0, config.sample_rate)
    signal[8000:] *= 0.1  # second half 20 dB quieter
    llf = llf_features(signal, 25, config)
    assert llf.shape == (25, 25) and np.isfinite(llf).all()
    rms_first, rms_second = llf[2:10, 0].mean(), llf[15:23, 0].mean()
    assert rms_first == pytest.approx(10 * rms_second, rel=0.15)
    # centroid of a 150-550 Hz chirp stays in the low band
    assert (llf[:10, 13] < 2000).all()


@pytest.mark.parametrize(("rate", "layout"), [(8000, "mono"), (44100, "mono"), (48000, "stereo")])
def test_load_audio_resamples_and_mixes(tmp_path, rate, layout):
    signal = _chirp(1.0, rate)
    path = tmp_path / f"a_{rate}.wav"
    _write_wav(path, signal, rate, layout)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - 16000) <= 2
    expected = librosa.resample(signal, orig_sr=rate, target_sr=16000)[: len(loaded)]
    # different resampling kernels; the waveforms must still agree closely
    assert np.corrcoef(loaded[: len(expected)], expected)[0, 1] > 0.99


def test_load_audio_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.wav: file is empty"):
        load_audio(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(InputError, match="notes.mp4: cannot decode"):
        load_audio(text)
