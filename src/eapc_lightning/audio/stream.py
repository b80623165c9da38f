"""Speech of any length decoded once, in bounded memory, into a 16 kHz mono scratch file.

:func:`eapc_lightning.audio.load_audio` returns a whole file as one array; for ten minutes and more of
speech that array, the decoder's frames and the resampler's buffers grow with the length. ``StreamedAudio``
gives the same samples without that: PyAV frames are mixed to mono as they arrive, resampled in blocks
with ``torchaudio.functional.resample`` (each block decoded with enough input context on both sides that
its output equals the whole-signal resampling: the windowed-sinc kernel reaches ``width`` input samples,
and blocks start on whole resampling periods ``orig / gcd``) and appended to a float32 scratch file that
is read back a range at a time. The scratch file is removed on :meth:`StreamedAudio.close`.
"""

import math
import os
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

from eapc_lightning.audio.decode import to_channels_first
from eapc_lightning.constants import AUDIO_SAMPLE_RATE
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import require_nonempty_file

_BYTES_PER_SAMPLE = 4
_BLOCK_PERIODS = 2000  # resampling periods per block (e.g. 2000 * 441 input samples at 44.1 kHz)
_LOWPASS_WIDTH = 6  # torchaudio.functional.resample's defaults
_ROLLOFF = 0.99


class _BlockResampler:
    """Resamples a mono stream block by block; the output equals resampling the whole stream at once."""

    def __init__(self, orig_freq: int, new_freq: int):
        gcd = math.gcd(orig_freq, new_freq)
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.period_in, self.period_out = orig_freq // gcd, new_freq // gcd
        width = math.ceil(_LOWPASS_WIDTH * self.period_in / (min(self.period_in, self.period_out) * _ROLLOFF))
        self.context_periods = 2 + math.ceil(width / self.period_in)  # input context on each side
        self.buffer = np.zeros(self.context_periods * self.period_in, np.float32)  # leading zeros
        self.consumed_periods = 0  # periods of real input already turned into output
        self.total_in = 0

    def _resample(self, signal: np.ndarray) -> np.ndarray:
        return AF.resample(torch.from_numpy(signal), self.orig_freq, self.new_freq).numpy()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add input; return the output samples that are now final."""
        self.total_in += len(samples)
        self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        context = self.context_periods * self.period_in
        ready_periods = (len(self.buffer) - 2 * context) // self.period_in
        if ready_periods < _BLOCK_PERIODS:
            return np.zeros(0, np.float32)
        return self._emit(ready_periods)

    def _emit(self, periods: int) -> np.ndarray:
        context = self.context_periods * self.period_in
        block = self.buffer[: 2 * context + periods * self.period_in]
        resampled = self._resample(block)
        skip = self.context_periods * self.period_out
        output = resampled[skip : skip + periods * self.period_out]
        self.buffer = self.buffer[periods * self.period_in :]
        self.consumed_periods += periods
        return output

    def finish(self) -> np.ndarray:
        """The remaining output, cut to ``ceil(new * n / orig)`` samples as whole-signal resampling does."""
        total_out = math.ceil(self.new_freq * self.total_in / self.orig_freq)
        done = self.consumed_periods * self.period_out
        remaining_out = total_out - done
        if remaining_out <= 0:
            return np.zeros(0, np.float32)
        periods = math.ceil(remaining_out / self.period_out)
        context = self.context_periods * self.period_in
        needed = 2 * context + periods * self.period_in
        if len(self.buffer) < needed:
            self.buffer = np.concatenate([self.buffer, np.zeros(needed - len(self.buffer), np.float32)])
        return self._emit(periods)[:remaining_out]


class StreamedAudio:
    """A decoded 16 kHz mono signal kept on disk; ``read(start, stop)`` pads with zeros outside it.

    Raises InputError naming the file (missing, empty, undecodable, no audio stream, no samples).
    """

    def __init__(
        self, path: str | Path, sample_rate: int = AUDIO_SAMPLE_RATE, scratch_dir: str | None = None
    ):
        self.path = Path(path)
        self.sample_rate = sample_rate
        handle, name = tempfile.mkstemp(prefix="eapc-audio-", suffix=".f32", dir=scratch_dir)
        self._scratch = Path(name)
        self.num_samples = 0
        self.native_rate = 0
        self.channels = 0
        self.peak = 0.0
        try:
            with os.fdopen(handle, "wb") as scratch:
                self._decode_into(scratch)
        except BaseException:
            self._scratch.unlink(missing_ok=True)
            raise
        self._reader = open(self._scratch, "rb")  # noqa: SIM115 (closed in close())

    def _decode_into(self, scratch) -> None:
        path = self.path
        require_nonempty_file(path)
        resampler = None
        try:
            with av.open(str(path)) as container:
                if not container.streams.audio:
                    raise InputError(path, "no audio stream")
                stream = container.streams.audio[0]
                self.native_rate = int(stream.codec_context.sample_rate or stream.rate)
                self.channels = int(stream.codec_context.channels or 0)
                if self.native_rate != self.sample_rate:
                    resampler = _BlockResampler(self.native_rate, self.sample_rate)
                for frame in container.decode(stream):
                    mono = to_channels_first(frame).mean(axis=0)
                    self._write(scratch, mono if resampler is None else resampler.push(mono))
        except InputError:
            raise
        except (av.FFmpegError, ValueError, OSError) as error:
            raise InputError(path, f"cannot decode audio ({type(error).__name__}: {error})") from error
        if resampler is not None:
            if resampler.total_in == 0:
                raise InputError(path, "audio stream holds no samples")
            self._write(scratch, resampler.finish())
        if self.num_samples == 0:
            raise InputError(path, "audio stream holds no samples")

    def _write(self, scratch, samples: np.ndarray) -> None:
        if len(samples):
            scratch.write(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
            self.num_samples += len(samples)
            self.peak = max(self.peak, float(np.abs(samples).max()))

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as float32; positions outside ``[0, num_samples)`` are zeros."""
        out = np.zeros(max(stop - start, 0), np.float32)
        first, last = max(start, 0), min(stop, self.num_samples)
        if last > first:
            self._reader.seek(first * _BYTES_PER_SAMPLE)
            data = np.frombuffer(self._reader.read((last - first) * _BYTES_PER_SAMPLE), dtype=np.float32)
            out[first - start : last - start] = data
        return out

    def as_array(self) -> np.memmap:
        """The whole signal as a read-only memory map (pages load on demand; nothing is copied)."""
        return np.memmap(self._scratch, dtype=np.float32, mode="r", shape=(self.num_samples,))

    def close(self) -> None:
        if not self._reader.closed:
            self._reader.close()
        self._scratch.unlink(missing_ok=True)

    def __enter__(self) -> "StreamedAudio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
