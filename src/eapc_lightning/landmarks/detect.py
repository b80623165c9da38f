"""MediaPipe FaceMesh (468 points, legacy solution bundled with mediapipe 0.10.14) -> iBUG-68 points.

The 468 -> 68 index table is ``eapc_lightning.constants.MEDIAPIPE_TO_68``.
"""

import logging
import os
import warnings

import numpy as np

from eapc_lightning.constants import MEDIAPIPE_TO_68

log = logging.getLogger(__name__)
_INDEX = np.asarray(MEDIAPIPE_TO_68)


def _quiet_mediapipe() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
