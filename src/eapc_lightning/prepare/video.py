"""Video decoding with PyAV, resampled to a fixed frame rate by timestamp.

Output frame ``k`` shows the source frame whose presentation time is nearest to ``k / fps`` (counted
from the first frame), which is what a constant-rate resampler such as FFmpeg's ``fps`` filter does:
30 fps input keeps 5 of every 6 frames, 25 fps input passes through unchanged. The number of output
frames is the source duration (last timestamp plus one source frame) times ``fps``, rounded.

Every failure to read a file raises ``InputError`` naming the file, including a file that decodes
cleanly but ends well before the frame count in its header (an mp4 cut short after its index).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from eapc_lightning.constants import VIDEO_FPS
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import require_nonempty_file

_DECODE_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, without decoding it."""

    path: Path
    width: int
    height: int
    fps: float  # source average frame rate
    duration: float  # seconds, from the stream or container header (0 when unknown)
    source_frames: int  # frame count in the header (0 when unknown)
    has_audio: bool

    def frames_at(self, fps: float = VIDEO_FPS) -> int:
        """Expected number of frames after resampling to ``fps`` (from the header; decoding is exact)."""
        return int(round(self.duration * fps))


def _describe(error: Exception) -> str:
    """FFmpeg's own words for an error, without the file name it repeats."""
    return getattr(error, "strerror", None) or f"{type(error).__name__}: {error}"


def _check_file(path: Path) -> None:
    require_nonempty_file(path)


def _open(path: Path) -> av.container.InputContainer:
    _check_file(path)
    try:
        container = av.open(str(path))
    except _DECODE_ERRORS as error:
        raise InputError(path, f"not a readable video ({_describe(error)})") from error
    if not container.streams.video:
        container.close()
        raise InputError(path, "no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Header facts of a video file; raises InputError when it cannot be opened as a video."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        return VideoInfo(
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            duration=duration,
            source_frames=int(stream.frames or 0),
            has_audio=bool(container.streams.audio),
        )


def _timed_frames(path: Path, container, stream) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames with their presentation time in seconds (from the frame index when pts is absent)."""
    rate = float(stream.average_rate or stream.guessed_rate or VIDEO_FPS)
    previous = None
    count = 0
    try:
        for frame in container.decode(stream):
            time = frame.time
            if time is None or (previous is not None and time <= previous):
                time = (previous + 1.0 / rate) if previous is not None else 0.0
            previous = time
            count += 1
            yield time, frame
    except _DECODE_ERRORS as error:
        raise InputError(path, f"video decoding failed after {count} frames ({_describe(error)})") from error
    announced = int(stream.frames or 0)
    if announced and announced - count > max(2, 0.02 * announced):
        raise InputError(
            path, f"truncated or damaged: decoded {count} of the {announced} frames its header lists"
        )


def _resampled(path: Path, fps: float, max_frames: int | None) -> Iterator[av.VideoFrame]:
    """The decoded source frame shown at each output time ``k / fps`` (the same object when repeated)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or fps)
        limit = max_frames if max_frames is not None else float("inf")
        emitted = 0
        start = None
        held: tuple[float, av.VideoFrame] | None = None
        for time, frame in _timed_frames(path, container, stream):
            start = time if start is None else start
            time -= start
            if held is not None:
                # every output time nearer to the held frame than to this one shows the held frame
                boundary = (held[0] + time) / 2.0
                while emitted / fps < boundary and emitted < limit:
                    yield held[1]
                    emitted += 1
                if emitted >= limit:
                    return
            held = (time, frame)
        if held is None:
            raise InputError(path, "video stream holds no frames")
        total = min(int(round((held[0] + 1.0 / rate) * fps)), limit)
        while emitted < total:
            yield held[1]
            emitted += 1


def iter_frames(
    path: str | Path, fps: float = VIDEO_FPS, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames (H, W, 3) of ``path`` resampled to ``fps`` by timestamp.

    A repeated source frame is yielded as the same (read-only by convention) array. Raises InputError
    for missing, empty, undecodable or frameless files, and when decoding breaks off (e.g. a truncated
    file).
    """
    last_frame, last_image = None, None
    for frame in _resampled(Path(path), fps, max_frames):
        if frame is not last_frame:
            last_frame, last_image = frame, frame.to_ndarray(format="rgb24")
        yield last_image


def read_video(path: str | Path, fps: float = VIDEO_FPS, max_frames: int | None = None) -> np.ndarray:
    """All frames of ``path`` at ``fps`` as one (T, H, W, 3) RGB uint8 array."""
    return np.stack(list(iter_frames(path, fps, max_frames)))


def count_frames(path: str | Path, fps: float = VIDEO_FPS) -> int:
    """Exact number of frames ``iter_frames`` yields, found by decoding without RGB conversion."""
    return sum(1 for _ in _resampled(Path(path), fps, None))
