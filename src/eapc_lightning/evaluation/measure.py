"""Frames -> landmarks (and image-metric crops) exactly as a protocol measures them, for either side.

Generated frames, ground-truth frames and the reference rows' frames all go through :meth:`FrameMeasurer.
measure`, so both sides of every comparison meet the same detector at the same resolution:

- ``mediapipe``: frames resized to ``landmark_size`` (the canonical face frame), FaceMesh in video mode;
- ``dlib``: frames resized to the canonical 256 frame, then per frame EAT's template crop and the 68
  points re-detected on it (:mod:`eapc_lightning.landmarks.dlib_detect`); the crops are kept for the
  image metrics of ``image_crop: template``.

:func:`through_output_path` encodes frames as the generator's output is encoded (H.264 in an mp4 at the
video frame rate) and decodes them again: ground truth that went through it is the floor that detector
and codec noise set.
"""

import inspect
import io
from dataclasses import dataclass

import av
import cv2
import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS, VIDEO_FPS
from eapc_lightning.evaluation.protocol import EvaluationProtocol
from eapc_lightning.render.video import write_video

OUTPUT_CRF = inspect.signature(write_video).parameters["crf"].default  # the generator's mp4 quality


@dataclass
class Measured:
    points: np.ndarray  # (T, 68, 2) float32 in landmark_size pixels, NaN where no face was found
    found: np.ndarray  # (T,) bool
    crops: np.ndarray | None = None  # (T, C, C, 3) uint8 template crops (dlib), black where not found


def _resized(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[0] == size:
        return frame
    interpolation = cv2.INTER_CUBIC if frame.shape[0] < size else cv2.INTER_AREA
    return cv2.resize(frame, (size, size), interpolation=interpolation)


class FrameMeasurer:
    """Measures frame sequences under one protocol (one detector instance for dlib, one per clip for
    MediaPipe, whose video mode tracks within a sequence)."""

    def __init__(self, protocol: EvaluationProtocol, detector_confidence: float = 0.5):
        self.protocol = protocol
        self.detector_confidence = detector_confidence
        self._dlib = None
        if protocol.detector == "dlib":
            from eapc_lightning.landmarks.dlib_detect import DlibLandmarkDetector

            self._dlib = DlibLandmarkDetector()

    def measure(self, frames: np.ndarray) -> Measured:
        if self._dlib is not None:
            return self._measure_dlib(frames)
        from eapc_lightning.landmarks.detect import FaceLandmarkDetector

        size = self.protocol.landmark_size
        with FaceLandmarkDetector(
            video=True, max_faces=1, min_confidence=self.detector_confidence
        ) as detector:
            points, found = detector.detect_sequence(_resized(frame, size) for frame in frames)
        return Measured(points, found)

    def _measure_dlib(self, frames: np.ndarray) -> Measured:
        from eapc_lightning.landmarks.dlib_detect import TEMPLATE_CROP

        count = len(frames)
        points = np.full((count, NUM_LANDMARKS, 2), np.nan, np.float32)
        crops = np.zeros((count, TEMPLATE_CROP, TEMPLATE_CROP, 3), np.uint8)
        found = np.zeros(count, bool)
        for index, frame in enumerate(frames):
            crop, crop_points = self._dlib.template_crop(_resized(frame, CANONICAL_FACE_SIZE))
            if crop is not None:
                crops[index] = crop
            if crop_points is not None:
                points[index], found[index] = crop_points, True
        if self.protocol.landmark_size != TEMPLATE_CROP:
            points *= self.protocol.landmark_size / TEMPLATE_CROP
        return Measured(points, found, crops)


def through_output_path(frames: np.ndarray, fps: int = VIDEO_FPS) -> np.ndarray:
    """``frames`` (T, H, W, 3) uint8 encoded as H.264 with the settings of the generator's mp4s
    (:func:`~eapc_lightning.render.video.write_video`: yuv420p, its crf) and decoded back."""
    buffer = io.BytesIO()
    height, width = frames.shape[1:3]
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(OUTPUT_CRF)}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(decoded[: len(frames)])


def matched_indices(generated: int, truth: int, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices pairing a generated sequence with the true one: ``truncate`` (i with i, over the
    shorter) or ``linspace`` (each side sampled evenly down to the shorter length, as EAT does)."""
    length = min(generated, truth)
    if how == "truncate":
        return np.arange(length), np.arange(length)
    return (
        np.linspace(0, generated, length, endpoint=False).astype(int),
        np.linspace(0, truth, length, endpoint=False).astype(int),
    )
