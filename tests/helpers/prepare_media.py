"""Small test clips for the prepare pipeline, cut from a real talking-face recording.

Frames come from the HDTF sample in the shared test media (a real face that MediaPipe detects), scaled
down so that tests stay fast; its speech is re-encoded at whatever rate and layout a test needs.
"""

import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from eapc_lightning.audio import load_audio
from eapc_lightning.prepare.video import read_video

HDTF_CLIP = "hdtf/WDA_KatieHill_000.mp4"


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> Path:
    """16-bit PCM wav of float samples in [-1, 1] ((n,) mono or (channels, n))."""
    data = np.clip(np.asarray(samples, np.float32), -1, 1)
    pcm = (data * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.T.reshape(-1).tobytes() if channels > 1 else pcm.tobytes())
    return path


class RealMedia:
    """The first seconds of a real clip: frames (25 fps) and 16 kHz mono speech."""

    def __init__(self, shared_data: Path, size: int = 160, seconds: float = 3.0):
        path = shared_data / HDTF_CLIP
        if not path.is_file():
            pytest.skip(f"{path} not found in the shared test media")
        count = int(seconds * 25)
        self.frames = np.stack(
            [
                cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
                for frame in read_video(path, 25, count)
            ]
        )
        self.speech = load_audio(path)[: int(seconds * 16000)]

    def frames_at(self, fps: int, count: int) -> np.ndarray:
        """``count`` frames sampled at ``fps`` from the 25 fps frames (nearest in time)."""
        index = np.minimum(np.round(np.arange(count) * 25 / fps).astype(int), len(self.frames) - 1)
        return self.frames[index]

    def speech_at(self, rate: int, channels: int = 1, seconds: float | None = None) -> np.ndarray:
        """(channels, samples) float32 speech resampled to ``rate`` (channels get slightly different gains)."""
        speech = self.speech if seconds is None else self.speech[: int(seconds * 16000)]
        resampled = AF.resample(torch.from_numpy(speech), 16000, rate).numpy() if rate != 16000 else speech
        return np.stack([resampled * (1.0 - 0.1 * c) for c in range(channels)]).astype(np.float32)


def _add_audio_stream(container, rate: int, channels: int, codec: str):
    return container.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")


def _encode_audio(container, stream, audio: np.ndarray, rate: int) -> None:
    frame_size = stream.codec_context.frame_size or 1024
    planar = stream.codec_context.name == "aac"
    pts = 0
    for start in range(0, audio.shape[1], frame_size):
        chunk = audio[:, start : start + frame_size]
        if planar:
            data, sample_format = np.ascontiguousarray(chunk, dtype=np.float32), "fltp"
        else:
            data, sample_format = (np.clip(chunk, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1), "s16"
        frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        pts += chunk.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_clip(
    path: Path,
    frames: np.ndarray | None,
    fps: int = 25,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    video_codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """Write RGB frames (and optional (channels, samples) audio) to ``path``; the container follows the suffix.

    ``frames=None`` writes an audio-only file (``.m4a`` with AAC, ``.wav`` with 16-bit PCM);
    ``faststart`` puts an mp4's index before the media data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video_stream = audio_stream = None
        if frames is not None:
            video_stream = container.add_stream(video_codec, rate=fps)
            video_stream.height, video_stream.width = frames.shape[1:3]
            video_stream.pix_fmt = "yuv420p"
        if audio is not None:
            codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
            audio_stream = _add_audio_stream(container, audio_rate, audio.shape[0], codec)
        if video_stream is not None:
            for frame in frames:
                for packet in video_stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in video_stream.encode():
                container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, audio_rate)
    return path


def noise_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth coloured noise: nothing a face detector should find."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, size // 16, size // 16, 3), dtype=np.uint8)
    return np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR) for frame in small])
