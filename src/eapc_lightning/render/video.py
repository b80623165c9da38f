"""Write RGB frames as an H.264 mp4 with an optional AAC sound track, streaming and atomically.

``write_video(path, frames, fps=25, audio=...)`` encodes frames one at a time as they come from any
iterable (a generator never has to hold the clip in memory), with PyAV's ``libx264`` in ``yuv420p``
(the pixel format every player decodes). Sound is a mono float array at ``sample_rate`` or an audio
file path (decoded and resampled by :func:`eapc_lightning.audio.load_audio`); it is encoded as AAC and
interleaved with the pictures: after frame ``k`` the audio up to time ``(k + 1) / fps`` is written, so
both streams start at time 0 and stay in sync. With ``fit_audio_to_video`` (the default) the sound is
cut or padded with silence to the video's duration, so both streams end together.

The file appears only when complete: the streams go to a temporary file in the destination folder
(``.<stem>.<8 random characters>.mp4``) that replaces ``path`` at the end, and is deleted if anything
fails, an exception raised by a signal handler included. The writer holds an advisory lock on it while it
lives; a temporary file of the same output left by a writer that was killed outright (no lock on it any
more) is removed by the next write of that output. The output path is checked before any work
(:func:`check_output_path`).
"""

import os
import re
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.errors import InputError

try:
    import fcntl
except ImportError:  # no advisory locks (Windows), where a file still open cannot be deleted anyway
    fcntl = None

AUDIO_BITRATE = 96_000
_AUDIO_CHUNK = 1024  # samples per AAC frame


_TEMP_RANDOM = "[a-z0-9_]{8}"  # the random part of a tempfile.mkstemp name


class OutputPathError(InputError):
    """An output path that cannot be written: a folder, a path under a file, a folder without write access."""


def output_path_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at ``path`` (its missing folders created), or None when it can."""
    path = Path(path)
    if path.is_dir():
        return "is a directory, not a file"
    if path.exists() and not path.is_file():
        return "exists and is not a regular file"
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"directory {folder} is not writable"
    return None


def check_output_path(path: str | Path) -> Path:
    """``path`` as a Path; OutputPathError naming it when no file can be written there."""
    path = Path(path)
    problem = output_path_problem(path)
    if problem is not None:
        raise OutputPathError(path, problem)
    return path


def _temp_name_pattern(path: Path, suffix: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(path.stem)}\.{_TEMP_RANDOM}{re.escape(suffix)}")


def locked_temp_file(path: str | Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside ``path`` for writing it, locked while the returned descriptor is open."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle, Path(name)


def remove_stale_temp_files(path: str | Path, suffix: str = ".mp4") -> list[Path]:
    """Delete the temporary files of ``path`` (``.<stem>.<random>.<suffix>`` beside it) that no running
    writer holds; returns those removed."""
    path = Path(path)
    pattern = _temp_name_pattern(path, suffix)
    try:
        candidates = [entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    removed = []
    for candidate in sorted(candidates):
        try:
            handle = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            candidate.unlink()
            removed.append(candidate)
        except OSError:
            pass  # held by a writer that is still running, or not ours to delete
        finally:
            os.close(handle)
    return removed


def _as_frame_array(frame: np.ndarray, index: int, size: tuple[int, int] | None) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"frame {index}: expected an (H, W, 3) RGB array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected uint8 pixels, got {array.dtype}")
    height, width = array.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"frame {index}: H.264 yuv420p needs even width and height, got {width}x{height}")
    if size is not None and (height, width) != size:
        raise ValueError(
            f"frame {index}: size {width}x{height} differs from the first frame's {size[1]}x{size[0]}"
        )
    return np.ascontiguousarray(array)


def _load_sound(audio: np.ndarray | str | os.PathLike, sample_rate: int) -> np.ndarray:
    if isinstance(audio, str | os.PathLike):
        from eapc_lightning.audio import load_audio

        return load_audio(audio, sample_rate=sample_rate)
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"audio must be a mono 1-D array, got shape {samples.shape}")
    return samples


class _AudioTrack:
    """Encodes a mono float signal into an AAC stream, a chunk at a time up to a requested time."""

    def __init__(self, container: av.container.OutputContainer, samples: np.ndarray, sample_rate: int):
        self.stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        self.stream.bit_rate = AUDIO_BITRATE
        self.container = container
        self.samples = samples
        self.sample_rate = sample_rate
        self.written = 0

    def write_until(self, end_sample: int) -> None:
        """Encode samples [written, end_sample); past the signal's end the track is silence."""
        while self.written < end_sample:
            stop = min(self.written + _AUDIO_CHUNK, end_sample)
            chunk = np.zeros(stop - self.written, dtype=np.float32)
            available = self.samples[self.written : stop]
            chunk[: len(available)] = available
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.written
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.stream.encode(frame))
            self.written = stop

    def flush(self) -> None:
        self.container.mux(self.stream.encode(None))


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = VIDEO_FPS,
    audio: np.ndarray | str | os.PathLike | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    *,
    crf: int = 18,
    fit_audio_to_video: bool = True,
) -> int:
    """Encode ``frames`` ((H, W, 3) uint8 RGB, even sizes) into an mp4 at ``path``; returns the frame count.

    ``audio`` is a mono float array at ``sample_rate`` or a path to any audio/video file PyAV reads.
    Without ``fit_audio_to_video`` the whole sound is written even where it outlasts the pictures.
    OutputPathError (before any work) when no file can be written at ``path``.
    """
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sound = None if audio is None else _load_sound(audio, sample_rate)
    remove_stale_temp_files(path, ".mp4")
    handle, temp_name = locked_temp_file(path, ".mp4")
    count = 0
    try:
        os.chmod(temp_name, 0o644)
        with av.open(str(temp_name), mode="w", format="mp4") as container:
            video = None
            track = None
            size = None
            for frame in frames:
                array = _as_frame_array(frame, count, size)
                if video is None:
                    size = array.shape[:2]
                    video = container.add_stream("libx264", rate=fps)
                    video.width, video.height = size[1], size[0]
                    video.pix_fmt = "yuv420p"
                    video.options = {"crf": str(crf)}
                    if sound is not None:
                        track = _AudioTrack(container, sound, sample_rate)
                picture = av.VideoFrame.from_ndarray(array, format="rgb24")
                picture.pts = count
                container.mux(video.encode(picture))
                count += 1
                if track is not None:
                    track.write_until(count * sample_rate // fps)
            if video is None:
                raise ValueError(f"{path}: no frames to write")
            container.mux(video.encode(None))
            if track is not None:
                if not fit_audio_to_video:
                    track.write_until(len(sound))
                track.flush()
        os.replace(temp_name, path)
    except BaseException:
        temp_name.unlink(missing_ok=True)
        raise
    finally:
        os.close(handle)
    return count
