"""Per-frame audio features computed a chunk of frames at a time, equal to the whole-file features.

Every row of :func:`eapc_lightning.audio.extract_features` depends only on the audio near its frame (the
features are local by definition: absolute log-mel floor, fixed chroma tuning; see
:mod:`eapc_lightning.audio.features`). :class:`ChunkedFeatureExtractor` therefore reads each chunk's
audio from a :class:`StreamedAudio` with one video frame of context on both sides (more than the 25 ms
analysis windows reach; the MFCC windows' 280 ms span is included) and runs the same building blocks on
it, in one pass. A test pins the result to ``extract_features``.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from eapc_lightning.audio.features import (
    AudioFeatureConfig,
    frame_means,
    llf_rows,
    mfcc_rows,
    windows_from_rows,
)
from eapc_lightning.audio.stream import StreamedAudio


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
        self.pad = int(round(config.pad_seconds * config.sample_rate))
        self.needed = num_frames * config.samples_per_frame
        self.usable = min(audio.num_samples, self.needed)
        self.context = config.samples_per_frame  # >= n_fft / 2, a whole number of hops

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

    def _mfcc_windows(self, start: int, stop: int) -> np.ndarray:
        config, hop = self.config, self.config.hop_length
        first_row = start * config.rows_per_frame
        last_row = (stop - 1) * config.rows_per_frame + config.window_rows - 1
        begin = max(first_row * hop - self.context, 0)
        end = min(last_row * hop + self.context, self.needed + 2 * self.pad)
        rows = mfcc_rows(self._mfcc_signal(begin, end), config)[:, 1:]  # drop c0 (energy)
        return windows_from_rows(rows[(first_row * hop - begin) // hop :], stop - start, config)

    def _llf(self, start: int, stop: int) -> np.ndarray:
        config, spf = self.config, self.config.samples_per_frame
        begin = max(start * spf - self.context, 0)
        end = min(stop * spf + self.context, self.needed)
        rows = llf_rows(self._llf_signal(begin, end), config)
        return frame_means(rows[(start * spf - begin) // config.hop_length :], stop - start, config)

    def chunks(self) -> Iterator[FeatureChunk]:
        """The features of each chunk of frames, in order."""
        for start in range(0, self.num_frames, self.chunk_frames):
            stop = min(start + self.chunk_frames, self.num_frames)
            yield FeatureChunk(start=start, mfcc=self._mfcc_windows(start, stop), llf=self._llf(start, stop))
