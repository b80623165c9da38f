"""Decode any audio (wav, m4a, mp3, flv/mp4 audio tracks) to mono float32 at a target rate.

PyAV (bundled FFmpeg) does the decoding because torchaudio >= 2.9 no longer loads files;
torchaudio.functional.resample does the resampling.
"""

from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

from eapc_lightning.constants import AUDIO_SAMPLE_RATE
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import require_nonempty_file


def to_channels_first(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as float32 (channels, samples), whatever its sample format."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # packed: (1, samples*channels) interleaved
        data = data.reshape(-1, channels).T
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    return data.astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Return the first audio stream of ``path`` as mono float32 samples at ``sample_rate``.

    Raises InputError naming the file when it is missing, empty, not decodable or has no audio stream.
    """
    path = Path(path)
    require_nonempty_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(path, "no audio stream")
            stream = container.streams.audio[0]
            native_rate = stream.codec_context.sample_rate or stream.rate
            chunks = [to_channels_first(frame) for frame in container.decode(stream)]
    except InputError:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise InputError(path, f"cannot decode audio ({type(error).__name__}: {error})") from error
    if not chunks:
        raise InputError(path, "audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1).mean(axis=0)
    if native_rate != sample_rate:
        samples = AF.resample(torch.from_numpy(samples), int(native_rate), sample_rate).numpy()
    return np.ascontiguousarray(samples, dtype=np.float32)
