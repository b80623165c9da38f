"""A face photo -> its 68 landmarks, the similarity into the canonical face frame and the aligned crop.

The photo is the identity of ``eapc generate`` (paper section 3.1: landmarks of the reference face from
MediaPipe) and the reference image of the video generator (eq. 10). MediaPipe runs in still-image mode;
with several faces the largest is taken and a :class:`MultipleFacesWarning` says how many there were.
The alignment is the one the cache uses (``eapc_lightning.landmarks.align``), estimated on this one face.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE
from eapc_lightning.errors import InputError
from eapc_lightning.fileio import require_nonempty_file
from eapc_lightning.landmarks.align import apply_transform, clip_alignment, warp_face
from eapc_lightning.landmarks.detect import FaceLandmarkDetector

MIN_PHOTO_SIDE = 32


class MultipleFacesWarning(UserWarning):
    """The photo shows several faces; the largest was taken."""


@dataclass(frozen=True)
class FacePhoto:
    path: Path
    image: np.ndarray  # (H, W, 3) uint8 RGB, as read
    landmarks: np.ndarray  # (68, 2) pixels in ``image``
    matrix: np.ndarray  # 2x3 similarity: image pixels -> canonical 256 frame
    face_count: int

    @property
    def reference_landmarks(self) -> np.ndarray:
        """(68, 2) landmarks in the canonical face frame (the a2l model's reference)."""
        return apply_transform(self.matrix, self.landmarks)

    def aligned_face(self, size: int = CANONICAL_FACE_SIZE) -> np.ndarray:
        """(size, size, 3) uint8 aligned face crop (the video generator's reference image)."""
        return warp_face(self.image, self.matrix, size)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 pixels of an image file; InputError naming the file when it cannot be read."""
    path = Path(path)
    require_nonempty_file(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(path, "not a readable image (expected PNG, JPEG, BMP, WebP, ...)")
    if min(image.shape[:2]) < MIN_PHOTO_SIDE:
        raise InputError(path, f"image is {image.shape[1]}x{image.shape[0]}, too small to hold a face")
    return np.ascontiguousarray(image[:, :, ::-1])


def load_face_photo(path: str | Path, detector: FaceLandmarkDetector | None = None) -> FacePhoto:
    """Read ``path``, find its face (the largest of several, with a warning) and align it."""
    path = Path(path)
    image = read_image(path)
    own_detector = detector is None
    detector = detector or FaceLandmarkDetector(video=False, max_faces=4)
    try:
        landmarks = detector(image)
        face_count = detector.last_face_count
    finally:
        if own_detector:
            detector.close()
    if landmarks is None:
        raise InputError(path, "no face found in the photo (MediaPipe FaceMesh); use a frontal face photo")
    if face_count > 1:
        warnings.warn(
            f"{path}: {face_count} faces found; using the largest", MultipleFacesWarning, stacklevel=2
        )
    landmarks = np.asarray(landmarks, np.float32)
    matrix = clip_alignment(landmarks[None])
    return FacePhoto(path=path, image=image, landmarks=landmarks, matrix=matrix, face_count=face_count)
