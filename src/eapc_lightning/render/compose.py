"""Videos put together: two clips side by side in one mp4 with sound, and a strip of frames as one PNG.

:func:`write_side_by_side` decodes two videos frame by frame (:func:`decoded_frames`: the frames as
stored, no frame-rate conversion; the project's renderers all write 25 fps), puts each pair next to each
other (the right one scaled to the left one's height) and encodes the pairs as they come with the shared
writer (:func:`eapc_lightning.render.video.write_video`: H.264 + AAC at 25 fps, a temporary file renamed
into place when complete). The sound is ``audio`` (any file PyAV reads, or a mono array), by default the
left video's own sound track; it is cut to the pictures' length. Nothing holds more than one pair of
frames, so the length of the clips does not matter. The result has as many frames as the shorter clip.

:func:`video_strip` picks ``count`` evenly spaced frames of a video (the first and the last included),
scales them to one height and lines them up left to right with a thin white gap: a picture of what a
clip does, small enough for a README (``eapc strip``).

Every failure to read a video raises InputError naming the file. (``eapc_lightning.prepare.video`` has
the dataset reader, which also resamples any frame rate to 25 fps; ``render`` sits below ``prepare`` in
the package order, docs/architecture.md, so it decodes on its own.)
"""

import os
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import require_nonempty_file
from eapc_lightning.render.video import check_output_path, write_video

WHITE = (255, 255, 255)
_DECODE_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError)


def _decoded(path: str | Path) -> Iterator[av.VideoFrame]:
    path = require_nonempty_file(path)
    try:
        container = av.open(str(path))
    except _DECODE_ERRORS as error:
        raise InputError(path, f"not a readable video ({type(error).__name__}: {error})") from error
    with container:
        if not container.streams.video:
            raise InputError(path, "no video stream")
        count = 0
        try:
            for frame in container.decode(video=0):
                count += 1
                yield frame
        except _DECODE_ERRORS as error:
            raise InputError(path, f"video decoding failed after {count} frames ({error})") from error
        if count == 0:
            raise InputError(path, "video stream holds no frames")


def decoded_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The (H, W, 3) uint8 RGB frames of a video, one at a time, as stored; InputError naming the file."""
    for frame in _decoded(path):
        yield frame.to_ndarray(format="rgb24")


def count_frames(path: str | Path) -> int:
    """How many frames :func:`decoded_frames` yields (decoded, not converted to RGB)."""
    return sum(1 for _ in _decoded(path))


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def scale_to_height(frame: np.ndarray, height: int) -> np.ndarray:
    """``frame`` scaled (aspect kept, width rounded to an even number) to ``height`` pixels."""
    if frame.shape[0] == height and frame.shape[1] % 2 == 0:
        return frame
    width = _even(frame.shape[1] * height / frame.shape[0])
    interpolation = cv2.INTER_AREA if height < frame.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def label_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``frame`` with ``text`` in its top left corner, white on a dark band."""
    out = frame.copy()
    scale = max(0.35, frame.shape[0] / 512)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = out[: height + baseline + 6, : width + 8]
    band[:] = (band.astype(np.float32) * 0.4).astype(np.uint8)
    cv2.putText(out, text, (4, height + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)
    return out


def _pairs(left: Path, right: Path, labels: tuple[str, str] | None) -> Iterator[np.ndarray]:
    height = None
    for left_frame, right_frame in zip(decoded_frames(left), decoded_frames(right)):
        height = height or _even(left_frame.shape[0])
        pair = [scale_to_height(left_frame, height), scale_to_height(right_frame, height)]
        if labels is not None:
            pair = [label_frame(frame, text) for frame, text in zip(pair, labels)]
        yield np.concatenate(pair, axis=1)


def write_side_by_side(
    left: str | Path,
    right: str | Path,
    out: str | Path,
    audio: np.ndarray | str | os.PathLike | None = None,
    *,
    labels: tuple[str, str] | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> int:
    """``left`` and ``right`` next to each other in one mp4 at ``out`` with ``audio`` (default: the left
    video's sound); optional ``labels`` are written on each half. Returns the number of frames.

    InputError naming the file when a video cannot be read; OutputPathError before any work when
    ``out`` cannot be written.
    """
    out = check_output_path(out)
    left, right = Path(left), Path(right)
    sound = left if audio is None else audio
    return write_video(out, _pairs(left, right, labels), fps=VIDEO_FPS, audio=sound, sample_rate=sample_rate)


def strip_indices(total: int, count: int) -> list[int]:
    """``count`` frame indices evenly spaced over ``total`` frames, the first and the last included
    (fewer when the clip is shorter)."""
    if total < 1 or count < 1:
        raise ValueError(f"need at least one frame and one pick, got {total} frames and {count}")
    if count == 1:
        return [0]
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, min(count, total))})


def video_strip(video: str | Path, count: int = 6, height: int = 128, gap: int = 2) -> np.ndarray:
    """(height, W, 3) RGB picture: ``count`` evenly spaced frames of ``video`` in a row, ``gap`` white
    pixels between them. Decodes the video twice (counting, then picking), holding only the picked frames."""
    if height < 8:
        raise ValueError(f"strip height must be at least 8 pixels, got {height}")
    wanted = strip_indices(count_frames(video), count)
    picked = []
    for index, frame in enumerate(decoded_frames(video)):
        if index in wanted:
            picked.append(scale_to_height(frame, height))
        if index >= wanted[-1]:
            break
    spacer = np.full((height, gap, 3), 255, np.uint8)
    parts = []
    for number, frame in enumerate(picked):
        parts += [spacer, frame] if number else [frame]
    return np.concatenate(parts, axis=1)
