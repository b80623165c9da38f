"""Audio path: decoding at any rate/channel count, MFCC windows pinned to librosa, LLF layout."""

import av
import librosa
import numpy as np
import pytest

from eapc_lightning.audio import llf_features, load_audio, mfcc_windows
from eapc_lightning.audio.features import AudioFeatureConfig, mfcc_rows
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
    ours = mfcc_rows(signal, config)
    reference = librosa.feature.mfcc(
        y=signal,
        sr=config.sample_rate,
        n_mfcc=config.n_mfcc,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=0.0,
        fmax=config.sample_rate / 2,
        center=True,
        pad_mode="constant",
        htk=False,
    ).T
    assert ours.shape == reference.shape
    # float32 STFT in torch vs librosa: agreement to 1e-3 dB-scaled cepstral units (values span ~+-300)
    np.testing.assert_allclose(ours, reference, atol=1e-3, rtol=1e-4)


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
