"""Speech + a face photo -> a talking-face mp4 with sound, in bounded memory (``eapc generate``).

Stages, all streamed a chunk of ``chunk_frames`` video frames (default 250 = 10 s) at a time, so memory
does not grow with the length of the speech:

1. the photo: landmarks, canonical alignment and aligned crop (:mod:`.face_photo`);
2. the speech: decoded once into a 16 kHz mono scratch file (:mod:`eapc_lightning.audio.stream`);
3. per-frame MFCC windows and LLFs per chunk, equal to the whole-file features
   (:mod:`eapc_lightning.audio.chunked`);
4. landmarks per chunk with the a2l network's recurrent state carried over
   (``A2LModule.landmark_stream``);
5. frames per landmark from the vid2vid EMA generator, the previous frame carried over
   (``Vid2VidModule.frame_stream``), or with ``renderer="warp"`` the photo warped onto the landmarks
   (:class:`eapc_lightning.render.warp_renderer.WarpRenderer`, no trained video model), or drawn
   landmarks with ``landmarks_only``;
6. the shared writer (``eapc_lightning.render.video.write_video``) encodes H.264 + AAC as frames arrive,
   with the original speech (resampled to 16 kHz mono) muxed in sync and cut to the video's length.

The video has ``floor(duration * 25)`` frames: the last partial 40 ms of speech is dropped.

Before any work the output paths (``out``, ``landmarks_npy``), the device and the kind of each checkpoint
are checked, so a path that cannot be written, a device this machine lacks or the other model's checkpoint
fails at once, not after the audio was decoded or the whole video made.
"""

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.audio.chunked import ChunkedFeatureExtractor
from eapc_lightning.audio.stream import StreamedAudio
from eapc_lightning.constants import CANONICAL_FACE_SIZE, VIDEO_FPS
from eapc_lightning.errors import InputError
from eapc_lightning.inference.checkpoints import (
    FoundCheckpoint,
    check_checkpoint,
    check_device,
    load_module,
    resolve_checkpoint,
)
from eapc_lightning.inference.face_photo import FacePhoto, load_face_photo
from eapc_lightning.metrics.mouth_opening import inner_lip_gap
from eapc_lightning.render.landmarks import landmark_panel
from eapc_lightning.render.video import (
    check_output_path,
    locked_temp_file,
    remove_stale_temp_files,
    write_video,
)

RENDERERS = ("vid2vid", "warp")  # landmark-to-video: the trained generator, or the training-free mesh warp
SILENCE_PEAK = 1e-4  # peak amplitude (full scale 1.0) below which the speech counts as silent


class SilentAudioWarning(UserWarning):
    """The speech is silent: the face will hardly move."""


@dataclass
class GenerateOptions:
    audio: Path
    face: Path
    out: Path
    emotion: str | None = None
    intensity: int | None = None
    a2l: Path | None = None
    vid2vid: Path | None = None
    landmarks_only: bool = False
    landmarks_npy: Path | None = None  # also save the (T, 68, 2) canonical landmarks here
    runs_dir: Path = Path("runs")
    chunk_frames: int = 250
    size: int = CANONICAL_FACE_SIZE  # side of the output video
    device: str = "cpu"
    renderer: str = "vid2vid"  # one of RENDERERS; "warp" needs no vid2vid checkpoint


@dataclass
class GenerateResult:
    out: Path
    num_frames: int
    audio_seconds: float
    a2l: FoundCheckpoint
    vid2vid: FoundCheckpoint | None
    face_count: int
    gap_range: tuple[float, float]  # smallest and largest inner-lip gap of the landmarks, canonical pixels
    notes: list[str] = field(default_factory=list)


def _landmark_frames(landmarks: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for points in landmarks:
        yield landmark_panel(points, size, thickness=max(1, size // 128))


def _resized(frames: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    for frame in frames:
        if frame.shape[0] != size:
            interpolation = cv2.INTER_CUBIC if frame.shape[0] < size else cv2.INTER_AREA
            frame = cv2.resize(frame, (size, size), interpolation=interpolation)
        yield frame


class _LandmarkFile:
    """(T, 68, 2) float32 .npy written row range by row range, renamed into place when complete."""

    def __init__(self, path: Path, num_frames: int):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path, ".npy")
        self.handle, self.temp = locked_temp_file(path, ".npy")
        try:
            self.array = np.lib.format.open_memmap(
                self.temp, mode="w+", dtype=np.float32, shape=(num_frames, 68, 2)
            )
        except BaseException:
            self.discard()
            raise

    def write(self, start: int, landmarks: np.ndarray) -> None:
        self.array[start : start + len(landmarks)] = landmarks
        self.array.flush()

    def _close(self) -> None:
        self.array = None
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None

    def commit(self) -> None:
        self.array = None
        os.replace(self.temp, self.path)
        self._close()

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)
        self._close()


def check_outputs(options: GenerateOptions) -> None:
    """OutputPathError (an InputError naming the path) when ``out`` or ``landmarks_npy`` cannot be written."""
    out = check_output_path(options.out)
    if options.landmarks_npy is not None:
        landmarks = check_output_path(options.landmarks_npy)
        if landmarks.resolve() == out.resolve():
            raise InputError(landmarks, "is also the output video (--out)")


def generate(
    options: GenerateOptions, progress: Callable[[str, int, int], None] | None = None
) -> GenerateResult:
    """Run the pipeline; ``progress(stage, done, total)`` reports ``"frames"``. Returns what was made and from what.

    Raises InputError (bad photo or audio, or an output path that cannot be written, naming the file),
    MissingCheckpointError (no trained model), ValueError (bad ``size``, ``device`` or ``renderer``); the
    output paths, the device and the checkpoints' kinds are checked before any model is loaded or media
    decoded.
    """
    check_outputs(options)
    if options.size < 16 or options.size % 2:
        raise ValueError(f"--size must be an even number >= 16, got {options.size}")
    check_device(options.device)
    if options.renderer not in RENDERERS:
        raise ValueError(f"--renderer must be one of {', '.join(RENDERERS)}, got {options.renderer!r}")
    notes: list[str] = []
    a2l_found = resolve_checkpoint("a2l", options.a2l, options.runs_dir)
    check_checkpoint("a2l", a2l_found)
    vid2vid_found = (
        None
        if options.landmarks_only or options.renderer == "warp"
        else resolve_checkpoint("vid2vid", options.vid2vid, options.runs_dir)
    )
    if vid2vid_found is not None:
        check_checkpoint("vid2vid", vid2vid_found)
    photo: FacePhoto = load_face_photo(options.face)
    a2l_module = load_module("a2l", a2l_found, options.device)
    settings = a2l_module.audio_features
    if settings is None:
        raise InputError(
            a2l_found.path,
            "records no audio feature settings (it was not fitted on a prepared cache): train it with eapc fit",
        )
    # the speech is analysed exactly as the model's training cache was (settings from its checkpoint)
    with StreamedAudio(options.audio, settings.sample_rate) as audio:
        num_frames = audio.num_samples // settings.samples_per_frame
        if num_frames == 0:
            raise InputError(
                options.audio,
                f"audio lasts {audio.duration * 1000:.0f} ms, shorter than one video frame (40 ms)",
            )
        if audio.peak < SILENCE_PEAK:
            message = (
                f"{options.audio}: the audio is silent (peak {audio.peak:.1e}); the face will hardly move"
            )
            warnings.warn(message, SilentAudioWarning, stacklevel=2)
            notes.append(message)
        landmark_stream = a2l_module.landmark_stream(
            photo.reference_landmarks, options.emotion, options.intensity
        )
        frame_stream = None
        if vid2vid_found is not None:
            vid2vid_module = load_module("vid2vid", vid2vid_found, options.device)
            frame_stream = vid2vid_module.frame_stream(
                photo.aligned_face(CANONICAL_FACE_SIZE), photo.reference_landmarks
            )
        elif options.renderer == "warp" and not options.landmarks_only:
            from eapc_lightning.render.warp_renderer import WarpRenderer

            frame_stream = WarpRenderer(photo.aligned_face(options.size), photo.reference_landmarks)
        extractor = ChunkedFeatureExtractor(audio, num_frames, options.chunk_frames, settings)
        landmark_file = None
        gaps = [np.inf, -np.inf]

        def frames() -> Iterator[np.ndarray]:
            done = 0
            for chunk in extractor.chunks():
                landmarks = landmark_stream(chunk.mfcc, chunk.llf).numpy()
                if len(landmarks):
                    gap = inner_lip_gap(landmarks)
                    gaps[:] = [min(gaps[0], float(gap.min())), max(gaps[1], float(gap.max()))]
                if landmark_file is not None:
                    landmark_file.write(chunk.start, landmarks)
                pictures = (
                    _landmark_frames(landmarks, options.size)
                    if frame_stream is None
                    else _resized(frame_stream(landmarks), options.size)
                )
                for picture in pictures:
                    yield picture
                    done += 1
                    if progress is not None:
                        progress("frames", done, num_frames)

        try:
            if options.landmarks_npy is not None:
                landmark_file = _LandmarkFile(Path(options.landmarks_npy), num_frames)
            written = write_video(
                options.out, frames(), fps=VIDEO_FPS, audio=audio.as_array(), sample_rate=audio.sample_rate
            )
            if landmark_file is not None:
                landmark_file.commit()
        except BaseException:
            if landmark_file is not None:
                landmark_file.discard()
            raise
        seconds = audio.duration
    return GenerateResult(
        out=Path(options.out),
        num_frames=written,
        audio_seconds=seconds,
        a2l=a2l_found,
        vid2vid=vid2vid_found,
        face_count=photo.face_count,
        gap_range=(gaps[0], gaps[1]),
        notes=notes,
    )
