"""Atomic writers for the synthetic clips: H.264 mp4 (no audio, like MEAD's video), AAC m4a, npy.

Each file is encoded under a hidden temporary name in its destination folder and renamed into place,
so an interrupted run leaves either the complete file or nothing.
"""

import io
import os
from pathlib import Path

import av
import numpy as np

from eapc_lightning.fileio import atomic_write_bytes

AUDIO_BIT_RATE = 64_000
VIDEO_CRF = 18  # x264 constant rate factor: visually near-lossless
VIDEO_PRESET = "veryfast"


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _publish(temporary: Path, path: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Encode (T, H, W, 3) RGB uint8 frames as H.264 yuv420p in an mp4 at ``fps``, no audio track."""
    path = Path(path)
    temporary = _temporary(path)
    try:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(VIDEO_CRF), "preset": VIDEO_PRESET}
            stream.codec_context.thread_count = 1
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        _publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Encode mono float samples as AAC in an m4a (mp4) container."""
    path = Path(path)
    temporary = _temporary(path)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    try:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream("aac", rate=sample_rate, layout="mono")
            stream.bit_rate = AUDIO_BIT_RATE
            chunk = stream.codec_context.frame_size or 1024
            for start in range(0, len(samples), chunk):
                frame = av.AudioFrame.from_ndarray(
                    samples[None, start : start + chunk], format="fltp", layout="mono"
                )
                frame.sample_rate = sample_rate
                frame.pts = start
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        _publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_npy(path: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
