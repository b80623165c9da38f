"""Per-frame audio features computed a chunk of frames at a time, equal to the whole-file features.

:func:`eapc_lightning.audio.extract_features` computes MFCC windows and LLFs for a whole signal. Each
output row depends only on a short stretch of audio around its frame, except for two whole-signal
quantities:

* the MFCCs' 80 dB floor (``top_db`` of the decibel conversion) is relative to the loudest mel bin of
  the whole (0.12 s padded) signal;
* the chroma LLFs use a tuning deviation that librosa estimates from every spectrogram column
  (``librosa.estimate_tuning``: median of the peak magnitudes, then a histogram of pitch residuals).

:class:`ChunkedFeatureExtractor` therefore makes two passes over a :class:`StreamedAudio`: the first
collects those two quantities chunk by chunk (the tuning keeps one (pitch, magnitude) pair per spectral
peak, a few kB per second of speech); the second computes each chunk's rows from the chunk's audio plus
one video frame of context on both sides (more than the 25 ms analysis windows reach; the MFCC windows'
280 ms span is included), with both quantities fixed to their whole-signal values. The settings are
those of :class:`eapc_lightning.audio.AudioFeatureConfig`; a test pins the result to ``extract_features``.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import librosa
import numpy as np
import torch
import torchaudio.functional as AF

from eapc_lightning.audio.features import AudioFeatureConfig, _mfcc_transform
from eapc_lightning.inference.audio_stream import StreamedAudio

TOP_DB = 80.0  # the floor torchaudio's MFCC (and librosa's) applies below the loudest bin
_AMIN = 1e-10


@dataclass(frozen=True)
class GlobalAudioStats:
    """The whole-signal quantities the per-frame features depend on."""

    max_mel_db: float
    tuning: float


@dataclass
class FeatureChunk:
    """Raw (not standardised) features of frames ``[start, start + len(mfcc))``."""

    start: int
    mfcc: np.ndarray  # (n, 28, 12)
    llf: np.ndarray  # (n, 25)


class ChunkedFeatureExtractor:
    """MFCC windows and LLFs of ``num_frames`` video frames, ``chunk_frames`` frames at a time."""

    def __init__(
        self,
        audio: StreamedAudio,
        num_frames: int,
        chunk_frames: int = 250,
        config: AudioFeatureConfig | None = None,
    ):
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
        config = config or AudioFeatureConfig()
        self.audio = audio
        self.num_frames = num_frames
        self.chunk_frames = chunk_frames
        self.config = config
        self.samples_per_frame = config.samples_per_frame
        self.hop = config.hop_length
        self.rows_per_frame = config.rows_per_frame
        self.pad = int(round(config.pad_seconds * config.sample_rate))
        self.needed = num_frames * self.samples_per_frame
        self.usable = min(audio.num_samples, self.needed)
        self.context = self.samples_per_frame  # >= n_fft / 2, a whole number of hops
        self._mfcc = _mfcc_transform(config)
        self._stats: GlobalAudioStats | None = None

    # ------------------------------------------------------------------ the two virtual signals
    def _llf_signal(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of the LLF signal: the audio cut or zero-padded to whole frames."""
        signal = self.audio.read(start, stop)
        signal[max(self.usable - start, 0) :] = 0.0
        return signal

    def _mfcc_signal(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of the MFCC signal: the LLF signal with ``pad`` zeros on both ends."""
        signal = self._llf_signal(start - self.pad, stop - self.pad)
        signal[: max(self.pad - start, 0)] = 0.0
        return signal

    def _chunk_bounds(self) -> Iterator[tuple[int, int]]:
        for start in range(0, self.num_frames, self.chunk_frames):
            yield start, min(start + self.chunk_frames, self.num_frames)

    # ------------------------------------------------------------------ MFCC pieces
    def _mel_rows(self, first_row: int, stop_row: int) -> torch.Tensor:
        """Mel power (n_mels, rows) of MFCC rows ``[first_row, stop_row)`` of the padded signal."""
        total = self.needed + 2 * self.pad
        start = max(first_row * self.hop - self.context, 0)
        stop = min((stop_row - 1) * self.hop + self.context, total)
        segment = torch.from_numpy(self._mfcc_signal(start, stop))
        mel = self._mfcc.MelSpectrogram(segment)
        offset = (first_row * self.hop - start) // self.hop
        return mel[:, offset : offset + stop_row - first_row]

    def _mfcc_windows(self, start: int, stop: int, max_mel_db: float) -> np.ndarray:
        step, window = self.rows_per_frame, self.config.window_rows
        first_row, stop_row = start * step, (stop - 1) * step + window
        mel = self._mel_rows(first_row, stop_row)
        decibels = AF.amplitude_to_DB(mel, multiplier=10.0, amin=_AMIN, db_multiplier=0.0, top_db=None)
        decibels = torch.maximum(decibels, torch.tensor(max_mel_db - TOP_DB, dtype=decibels.dtype))
        rows = torch.matmul(decibels.transpose(-1, -2), self._mfcc.dct_mat).numpy()[:, 1:]  # drop c0
        index = np.arange(stop - start)[:, None] * step + np.arange(window)[None, :]
        return rows[index].astype(np.float32)

    # ------------------------------------------------------------------ LLF pieces
    def _magnitude(self, start: int, stop: int) -> np.ndarray:
        """|STFT| columns of LLF frames ``[start, stop)``, the signal segment, its first column, column count."""
        begin = max(start * self.samples_per_frame - self.context, 0)
        end = min(stop * self.samples_per_frame + self.context, self.needed)
        signal = self._llf_signal(begin, end)
        config = self.config
        magnitude = np.abs(
            librosa.stft(
                signal, n_fft=config.n_fft, hop_length=self.hop, win_length=config.win_length, center=True
            )
        )
        offset = (start * self.samples_per_frame - begin) // self.hop
        columns = (stop - start) * self.rows_per_frame
        return magnitude[:, offset : offset + columns], signal, offset, columns

    def _llf(self, start: int, stop: int, tuning: float) -> np.ndarray:
        config, sr, n_fft = self.config, self.config.sample_rate, self.config.n_fft
        magnitude, signal, offset, columns = self._magnitude(start, stop)
        power = magnitude**2
        zcr = librosa.feature.zero_crossing_rate(signal, frame_length=n_fft, hop_length=self.hop, center=True)
        rows = np.concatenate(
            [
                librosa.feature.rms(S=magnitude, frame_length=n_fft),
                librosa.feature.chroma_stft(S=power, sr=sr, tuning=tuning),
                librosa.feature.spectral_centroid(S=magnitude, sr=sr),
                librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
                librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
                zcr[:, offset : offset + columns],
                librosa.feature.spectral_flatness(S=magnitude),
                librosa.feature.spectral_contrast(
                    S=magnitude, sr=sr, fmin=config.contrast_fmin, n_bands=config.contrast_bands
                ),
            ],
            axis=0,
        ).T
        rows = rows.reshape(stop - start, self.rows_per_frame, -1).mean(axis=1)
        return np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    # ------------------------------------------------------------------ passes
    def global_stats(self, progress: Callable[[int, int], None] | None = None) -> GlobalAudioStats:
        """First pass: the loudest mel bin (dB) and librosa's chroma tuning estimate, over the whole signal.

        ``progress(done, total)`` is called after each chunk.
        """
        if self._stats is not None:
            return self._stats
        total_chunks = len(range(0, self.num_frames, self.chunk_frames))
        total_rows = (self.needed + 2 * self.pad) // self.hop + 1
        step = self.rows_per_frame
        max_power = 0.0
        pitches, magnitudes = [], []
        for start, stop in self._chunk_bounds():
            stop_row = total_rows if stop == self.num_frames else stop * step
            mel = self._mel_rows(start * step, stop_row)
            max_power = max(max_power, float(mel.max()))
            magnitude, _, _, _ = self._magnitude(start, stop)
            if stop == self.num_frames:  # whole-signal STFT has one column past the frames
                magnitude = self._last_columns(start)
            pitch, mag = librosa.piptrack(S=magnitude**2, sr=self.config.sample_rate)
            found = pitch > 0
            pitches.append(pitch[found].astype(np.float32))
            magnitudes.append(mag[found].astype(np.float32))
            if progress is not None:
                progress(start // self.chunk_frames + 1, total_chunks)
        max_mel_db = 10.0 * float(np.log10(max(max_power, _AMIN)))
        self._stats = GlobalAudioStats(max_mel_db=max_mel_db, tuning=_tuning(pitches, magnitudes))
        return self._stats

    def _last_columns(self, start: int) -> np.ndarray:
        """|STFT| of the last chunk including the final column (centred on the signal's last sample + 1)."""
        begin = max(start * self.samples_per_frame - self.context, 0)
        signal = self._llf_signal(begin, self.needed)
        config = self.config
        magnitude = np.abs(
            librosa.stft(
                signal, n_fft=config.n_fft, hop_length=self.hop, win_length=config.win_length, center=True
            )
        )
        return magnitude[:, (start * self.samples_per_frame - begin) // self.hop :]

    def chunks(self) -> Iterator[FeatureChunk]:
        """Second pass: the features of each chunk of frames, in order."""
        stats = self.global_stats()
        for start, stop in self._chunk_bounds():
            yield FeatureChunk(
                start=start,
                mfcc=self._mfcc_windows(start, stop, stats.max_mel_db),
                llf=self._llf(start, stop, stats.tuning),
            )


def _tuning(pitches: list[np.ndarray], magnitudes: list[np.ndarray]) -> float:
    """``librosa.estimate_tuning`` from its collected (pitch, magnitude) peaks."""
    pitch = np.concatenate(pitches) if pitches else np.zeros(0, np.float32)
    magnitude = np.concatenate(magnitudes) if magnitudes else np.zeros(0, np.float32)
    if not len(pitch):  # silence: librosa warns and returns 0.0
        return 0.0
    threshold = np.median(magnitude)
    return float(librosa.pitch_tuning(pitch[magnitude >= threshold], bins_per_octave=12))
