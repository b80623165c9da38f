"""Per-video-frame audio features (paper section 3.2; docs/design.md, 'Audio features').

* MFCC windows, as ATVGnet / EVP lay them out: 13 MFCCs every 10 ms over 25 ms windows, c0 dropped,
  the signal padded by 0.12 s on both ends, and video frame ``i`` taking MFCC rows ``[4i, 4i + 28)``:
  a 28 x 12 window (280 ms) around the frame at 25 fps.
* 25 low-level features (LLFs) per frame, the paper's seven descriptors with their natural widths:
  RMS 1, chroma 12, spectral centroid 1, bandwidth 1, rolloff 1, zero-crossing rate 1, flatness 1,
  spectral contrast 7 (6 bands + valley/peak residual), averaged over each frame's 40 ms.

torchaudio computes the MFCCs (its settings mirror librosa's so the two agree; a test pins them),
librosa computes the LLFs.

Every output row depends only on the audio within a few hundred milliseconds of its frame, so a long
signal can be processed a piece at a time with the same result:

* the log-mel spectrum has an absolute floor (``10 * log10(max(power, 1e-10))``, librosa's
  ``power_to_db(..., top_db=None)``) rather than the usual 80 dB floor below the loudest bin of the whole
  signal;
* chroma uses a fixed tuning of 0 cents instead of librosa's whole-signal tuning estimate: speech is not
  tuned to a musical scale, so the estimate only adds a dependence on the rest of the recording.

:func:`mfcc_rows`, :func:`windows_from_rows`, :func:`llf_rows` and :func:`frame_means` are the building
blocks both the whole-signal functions here and the chunked extractor of ``eapc generate`` use.
"""

import dataclasses
import hashlib
import json

import librosa
import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS

LLF_NAMES = (
    ["rms"]
    + [f"chroma_{k}" for k in range(12)]
    + ["centroid", "bandwidth", "rolloff", "zcr", "flatness"]
    + [f"contrast_{k}" for k in range(7)]
)
assert len(LLF_NAMES) == 25


@dataclasses.dataclass(frozen=True)
class AudioFeatureConfig:
    """Every setting that changes the cached audio features (hashed into the cache manifest)."""

    sample_rate: int = AUDIO_SAMPLE_RATE
    fps: int = VIDEO_FPS
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 40
    n_mfcc: int = 13  # c0 is dropped -> 12 per row
    pad_seconds: float = 0.12
    window_rows: int = 28
    # spectral contrast: 6 bands from 100 Hz keep the top band below the 8 kHz Nyquist of 16 kHz audio
    contrast_fmin: float = 100.0
    contrast_bands: int = 6
    # absolute log-mel floor (power), no floor relative to the loudest bin: features stay local
    mel_db_amin: float = 1e-10
    chroma_tuning: float = 0.0  # deviation from A440 in chroma bins; speech is not tuned to a scale

    @property
    def rows_per_frame(self) -> int:
        rows = self.sample_rate / self.fps / self.hop_length
        if rows != int(rows):
            raise ValueError("sample_rate / fps must be a whole number of MFCC hops")
        return int(rows)

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.fps

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """Every field, as recorded in each cached clip's metadata and in audio-to-landmark checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AudioFeatureConfig":
        """The config :meth:`to_dict` recorded; ValueError when a field is unknown or missing."""
        names = {field.name for field in dataclasses.fields(cls)}
        if set(values) != names:
            unknown, missing = sorted(set(values) - names), sorted(names - set(values))
            raise ValueError(f"audio feature settings: unknown {unknown}, missing {missing}")
        return cls(**values)


def mel_transform(config: AudioFeatureConfig) -> torchaudio.transforms.MelSpectrogram:
    """Mel power spectrogram with librosa's defaults: Slaney mel scale and norm, zero padding."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        f_min=0.0,
        f_max=config.sample_rate / 2,
        center=True,
        pad_mode="constant",
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
    )


def mfcc_rows(samples: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """MFCCs of a mono signal, (rows, n_mfcc), row ``r`` centred on sample ``r * hop``, c0 included.

    Equal to ``librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None))``: DCT-II (orthonormal) of
    the log-mel spectrum with an absolute floor.
    """
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    mel = mel_transform(config)(waveform)
    decibels = AF.amplitude_to_DB(
        mel, multiplier=10.0, amin=config.mel_db_amin, db_multiplier=0.0, top_db=None
    )
    dct = AF.create_dct(config.n_mfcc, config.n_mels, norm="ortho")
    return torch.matmul(decibels.T, dct).numpy()


def windows_from_rows(rows: np.ndarray, num_frames: int, config: AudioFeatureConfig) -> np.ndarray:
    """(num_frames, window_rows, ...) windows: frame ``i`` takes rows ``[i * rows_per_frame, ... + window_rows)``."""
    step = config.rows_per_frame
    last_start = step * (num_frames - 1)
    if last_start + config.window_rows > rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} MFCC rows cannot hold {num_frames} windows")
    index = np.arange(num_frames)[:, None] * step + np.arange(config.window_rows)[None, :]
    return rows[index].astype(np.float32)


def mfcc_windows(
    samples: np.ndarray, num_frames: int, config: AudioFeatureConfig = AudioFeatureConfig()
) -> np.ndarray:
    """(num_frames, 28, 12) MFCC windows, one centred on each video frame."""
    pad = int(round(config.pad_seconds * config.sample_rate))
    needed = num_frames * config.samples_per_frame
    signal = np.zeros(needed + 2 * pad, dtype=np.float32)
    usable = min(len(samples), needed)
    signal[pad : pad + usable] = samples[:usable]
    rows = mfcc_rows(signal, config)[:, 1:]  # drop c0 (energy)
    return windows_from_rows(rows, num_frames, config)


def llf_rows(signal: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """(rows, 25) low-level features per 10 ms STFT column, row ``r`` centred on sample ``r * hop``."""
    sr, hop, n_fft = config.sample_rate, config.hop_length, config.n_fft
    magnitude = np.abs(
        librosa.stft(signal, n_fft=n_fft, hop_length=hop, win_length=config.win_length, center=True)
    )
    return np.concatenate(
        [
            librosa.feature.rms(S=magnitude, frame_length=n_fft),
            librosa.feature.chroma_stft(S=magnitude**2, sr=sr, tuning=config.chroma_tuning),
            librosa.feature.spectral_centroid(S=magnitude, sr=sr),
            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
            librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
            librosa.feature.zero_crossing_rate(signal, frame_length=n_fft, hop_length=hop, center=True),
            librosa.feature.spectral_flatness(S=magnitude),
            librosa.feature.spectral_contrast(
                S=magnitude, sr=sr, fmin=config.contrast_fmin, n_bands=config.contrast_bands
            ),
        ],
        axis=0,
    ).T


def frame_means(rows: np.ndarray, num_frames: int, config: AudioFeatureConfig) -> np.ndarray:
    """Per-frame means of the first ``num_frames * rows_per_frame`` LLF rows, non-finite values zeroed."""
    step = config.rows_per_frame
    means = rows[: num_frames * step].reshape(num_frames, step, -1).mean(axis=1)
    return np.nan_to_num(means, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def llf_features(
    samples: np.ndarray, num_frames: int, config: AudioFeatureConfig = AudioFeatureConfig()
) -> np.ndarray:
    """(num_frames, 25) low-level features, each the mean over the frame's 40 ms (see LLF_NAMES)."""
    needed = num_frames * config.samples_per_frame
    signal = np.zeros(needed, dtype=np.float32)
    usable = min(len(samples), needed)
    signal[:usable] = samples[:usable]
    return frame_means(llf_rows(signal, config), num_frames, config)


def extract_features(
    samples: np.ndarray, num_frames: int, config: AudioFeatureConfig = AudioFeatureConfig()
) -> dict[str, np.ndarray]:
    """Both per-frame features for ``num_frames`` video frames of a 16 kHz mono signal."""
    return {
        "mfcc": mfcc_windows(samples, num_frames, config),
        "llf": llf_features(samples, num_frames, config),
    }


def frames_in(samples: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> int:
    """How many whole video frames the signal covers."""
    return len(samples) // config.samples_per_frame
