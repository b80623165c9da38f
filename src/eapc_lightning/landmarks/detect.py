"""MediaPipe FaceMesh (468 points, legacy solution bundled with mediapipe 0.10.14) -> iBUG-68 points.

The 468 -> 68 index table is ``eapc_lightning.constants.MEDIAPIPE_TO_68``.
"""

import atexit
import logging
import os
import sys
import threading
import warnings

import numpy as np

from eapc_lightning.constants import MEDIAPIPE_TO_68

log = logging.getLogger(__name__)
_INDEX = np.asarray(MEDIAPIPE_TO_68)


# What MediaPipe's native code writes to stderr as each model of a FaceMesh graph starts, from the
# graph's own threads and after the call that started it has returned (absl logs straight to file
# descriptor 2 and ignores GLOG_minloglevel / TF_CPP_MIN_LOG_LEVEL): notices about its own set-up,
# two to three per detector, nothing a user can act on.
NATIVE_START_NOTICES = (
    b"inference_feedback_manager.cc",  # "Feedback manager requires a model with a single signature ..."
    b"Created TensorFlow Lite XNNPACK delegate",
    b"All log messages before absl::InitializeLog() is called",
)
_stderr_filter: threading.Thread | None = None


def _forward_stderr(pipe_read: int, stderr: int) -> None:
    pending = b""
    while chunk := os.read(pipe_read, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [line for line in lines if not any(notice in line for notice in NATIVE_START_NOTICES)]
        if kept:
            os.write(stderr, b"\n".join(kept) + b"\n")
    if pending:
        os.write(stderr, pending)
    os.close(pipe_read)


def _restore_stderr(stderr: int, forwarder: threading.Thread) -> None:
    sys.stderr.flush()
    os.dup2(stderr, 2)  # closes the pipe's last writing end: the forwarder drains it and stops
    forwarder.join(timeout=5)


def drop_native_start_notices() -> None:
    """From now on, this process's stderr passes through a thread that drops the lines of
    :data:`NATIVE_START_NOTICES` and forwards everything else as it arrives (idempotent).

    Installed by the first detector of a process. At exit the real stderr is put back and what is still
    in the pipe is forwarded, so a traceback printed on the way out is not lost.
    """
    global _stderr_filter
    if _stderr_filter is not None:
        return
    sys.stderr.flush()
    stderr = os.dup(2)
    pipe_read, pipe_write = os.pipe()
    os.dup2(pipe_write, 2)
    os.close(pipe_write)
    _stderr_filter = threading.Thread(
        target=_forward_stderr, args=(pipe_read, stderr), name="native-stderr-filter", daemon=True
    )
    _stderr_filter.start()
    atexit.register(_restore_stderr, stderr, _stderr_filter)


def _quiet_mediapipe() -> None:
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")


class FaceLandmarkDetector:
    """68-point landmarks per RGB frame, in pixels (x, y); None where no face is found.

    ``video=True`` runs FaceMesh in tracking mode (frames must be given in order, one clip per
    detector); ``video=False`` treats every image independently. When several faces are found the
    largest (by landmark bounding-box area) is taken and ``last_face_count`` records how many there were.
    """

    def __init__(self, video: bool = True, max_faces: int = 2, min_confidence: float = 0.5):
        _quiet_mediapipe()
        import mediapipe as mp

        drop_native_start_notices()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self.last_face_count = 0

    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ValueError(
                f"expected an RGB uint8 image (H, W, 3), got {frame_rgb.dtype} {frame_rgb.shape}"
            )
        height, width = frame_rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame_rgb))
        faces = result.multi_face_landmarks or []
        self.last_face_count = len(faces)
        if not faces:
            return None
        candidates = []
        for face in faces:
            points = np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float32)
            extent = points.max(axis=0) - points.min(axis=0)
            candidates.append((float(extent[0] * extent[1]), points))
        _, largest = max(candidates, key=lambda item: item[0])
        return largest[_INDEX]

    def detect_sequence(self, frames) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks for an iterable of frames: (T, 68, 2) float32 (NaN where missing) and a (T,) found mask."""
        points, found = [], []
        for frame in frames:
            landmarks = self(frame)
            found.append(landmarks is not None)
            points.append(landmarks if landmarks is not None else np.full((68, 2), np.nan, np.float32))
        if not points:
            return np.zeros((0, 68, 2), np.float32), np.zeros(0, bool)
        return np.stack(points).astype(np.float32), np.asarray(found)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
