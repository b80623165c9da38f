"""Training-free rendering: the aligned photo warped onto each frame's landmarks (``--renderer warp``).

The aligned face photo and its 68 reference landmarks are the source mesh; each frame's predicted
landmarks (both in the canonical 256-px face frame) are the target. The photo is warped piecewise-affinely
over the reference's :class:`~eapc_lightning.landmarks.mesh_warp.LandmarkMesh` (68 points plus support
points that follow the head's rigid motion, one triangulation made with the mouth open), the same mesh
that gives the vid2vid generator its mesh flow. Where the lips part beyond the photo's own gap, the
inner-lip polygon is painted as a dark cavity under a band of upper teeth (``mesh_warp.paint_mouth``).

Limits: no new content other than the painted mouth (eyes keep their state, closing eyes squash the
eyelids, a photo with open mouth keeps its teeth), and the background moves with the head.
"""

from collections.abc import Iterator

import cv2
import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS
from eapc_lightning.landmarks.mesh_warp import LandmarkMesh, inner_lip_gap, opencv_pixels, paint_mouth

TEETH_BAND = 0.08  # D: height of the painted upper-teeth band (at most a fifth of the lip gap) ...
TEETH_FADE = (
    0.1,
    0.3,
)  # D: ... growing from nothing to full while the lips part this much beyond the photo's
TEETH_RGB = (186, 178, 168)  # darker than white: teeth in the mouth's shade


class WarpRenderer:
    """Landmark chunks -> frames of the warped photo; the same call shape as ``Vid2VidModule.frame_stream``.

    Args:
        reference_image: (S, S, 3) RGB uint8 aligned face crop (``FacePhoto.aligned_face(S)``); frames are
            rendered at ``size`` (default S).
        reference_landmarks: (68, 2) its landmarks in canonical-frame (256 px) coordinates.
    """

    def __init__(self, reference_image: np.ndarray, reference_landmarks: np.ndarray, size: int | None = None):
        if reference_image.ndim != 3 or reference_image.shape[2] != 3:
            raise ValueError(f"reference_image must be (H, W, 3) RGB, got {reference_image.shape}")
        if tuple(np.shape(reference_landmarks)) != (NUM_LANDMARKS, 2):
            raise ValueError(f"reference_landmarks must be (68, 2), got {np.shape(reference_landmarks)}")
        self.size = int(size or reference_image.shape[0])
        if reference_image.shape[:2] != (self.size, self.size):
            interpolation = cv2.INTER_AREA if reference_image.shape[0] > self.size else cv2.INTER_CUBIC
            reference_image = cv2.resize(reference_image, (self.size, self.size), interpolation=interpolation)
        self.image = np.ascontiguousarray(reference_image)
        self.mesh = LandmarkMesh(self.to_pixels(reference_landmarks), self.size)
        self.rest_gap = inner_lip_gap(self.mesh.reference)

    def to_pixels(self, landmarks: np.ndarray) -> np.ndarray:
        """Canonical-frame landmarks -> OpenCV pixel positions in the ``size`` frame."""
        scale = self.size / CANONICAL_FACE_SIZE
        return opencv_pixels(landmarks, scale)

    def render(self, landmarks: np.ndarray) -> np.ndarray:
        """(size, size, 3) uint8 frame for one (68, 2) set of canonical landmarks."""
        control, head = self.mesh.control_points(self.to_pixels(landmarks))
        picture = self.mesh.warp(self.image, self.mesh.source, control)
        targets = control[:NUM_LANDMARKS]
        scale = float(np.sqrt(abs(np.linalg.det(head[:, :2]))))
        unit = self.mesh.frame.unit * scale
        rest_gap = self.rest_gap * scale
        extra = (inner_lip_gap(targets) - rest_gap) / unit
        opening = np.clip((extra - TEETH_FADE[0]) / (TEETH_FADE[1] - TEETH_FADE[0]), 0.0, 1.0)
        teeth = TEETH_BAND * unit * float(opening)
        return paint_mouth(picture, targets, rest_gap, unit, teeth_depth=teeth, teeth_rgb=TEETH_RGB)

    def __call__(self, landmarks: np.ndarray) -> Iterator[np.ndarray]:
        """(size, size, 3) uint8 frames, one per row of ``landmarks`` (n, 68, 2)."""
        for points in np.asarray(landmarks, dtype=np.float64):
            yield self.render(points)
