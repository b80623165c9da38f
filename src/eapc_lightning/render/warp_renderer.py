"""Training-free rendering: the aligned photo warped onto each frame's landmarks (``--renderer warp``).

The aligned face photo and its 68 reference landmarks are the source mesh; each frame's predicted
landmarks (both in the canonical 256-px face frame) are the target. Beyond the 68 points, support points
(forehead, a ring around the face, points outside the frame: ``mesh_warp.support_points``) follow the
head's rigid motion, the similarity fitted on eye corners and nose. The photo is warped piecewise-affinely
(``mesh_warp.PiecewiseAffineWarp``, :mod:`eapc_lightning.landmarks.mesh_warp`) over one fixed
triangulation, computed once on the reference shape with the mouth opened by ``TRIANGULATION_OPENING`` D:
the inner lips are then apart, so no triangle spans the lips, and closing the mouth only flattens the
triangles of the mouth interior while opening it stretches them. Where the lips part beyond the photo's
own gap, the inner-lip polygon is painted as a dark cavity under a band of upper teeth
(``mesh_warp.paint_mouth``).

Limits: no new content other than the painted mouth (eyes keep their state, closing eyes squash the
eyelids, a photo with open mouth keeps its teeth), and the background moves with the head.
"""

from collections.abc import Iterator

import cv2
import numpy as np
from scipy.spatial import Delaunay

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS
from eapc_lightning.landmarks.mesh_warp import (
    LOWER_INNER_LIP,
    UPPER_INNER_LIP,
    FaceFrame,
    PiecewiseAffineWarp,
    head_similarity,
    inner_lip_gap,
    paint_mouth,
    support_points,
)

PIXEL_CENTRE_OFFSET = 0.5  # landmark x = OpenCV pixel x + 0.5 (the detector's convention)
TRIANGULATION_OPENING = 0.3  # D: jaw drop of the shape the mesh is triangulated on
TEETH_BAND = 0.08  # D: height of the painted upper-teeth band (at most a fifth of the lip gap) ...
TEETH_FADE = (
    0.1,
    0.3,
)  # D: ... growing from nothing to full while the lips part this much beyond the photo's
TEETH_RGB = (186, 178, 168)  # darker than white: teeth in the mouth's shade

# Jaw drop pattern (face-local v offsets per unit opening): the lower lip moves fully, the mouth corners
# and the jaw less towards the ears.
_OPENING_WEIGHTS = {
    **{index: 1.0 for index in (55, 56, 57, 58, 59, 65, 66, 67)},
    **{48: 0.4, 54: 0.4, 60: 0.4, 64: 0.4},
    **{8: 0.9, 7: 0.85, 9: 0.85, 6: 0.7, 10: 0.7, 5: 0.5, 11: 0.5, 4: 0.25, 12: 0.25, 3: 0.1, 13: 0.1},
}


def open_mouth(points: np.ndarray, opening: float, frame: FaceFrame | None = None) -> np.ndarray:
    """``points`` (68, 2) with the jaw dropped by ``opening`` D (along the face's down axis)."""
    frame = FaceFrame.of(points) if frame is None else frame
    local = np.zeros((NUM_LANDMARKS, 2))
    for index, weight in _OPENING_WEIGHTS.items():
        local[index, 1] = weight * opening
    return points + frame.to_image(local)


def separate_inner_lips(points: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """``points`` where each lower inner-lip point that lies higher (face-local v) than its upper partner
    is merged with it at their midpoint: lips pressed past each other close the mouth instead of folding
    the mesh."""
    local = frame.to_local(points)
    upper, lower = np.array(UPPER_INNER_LIP), np.array(LOWER_INNER_LIP)
    crossed = local[lower, 1] < local[upper, 1]
    if not np.any(crossed):
        return points
    out = np.array(points, np.float64)
    middle = 0.5 * (out[upper[crossed]] + out[lower[crossed]])
    out[upper[crossed]] = middle
    out[lower[crossed]] = middle
    return out


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
        self.reference = self.to_pixels(reference_landmarks)
        self.frame = FaceFrame.of(self.reference)
        self.rest_gap = inner_lip_gap(self.reference)
        self.support = support_points(self.reference, self.size, self.frame)
        self.source = np.concatenate([self.reference, self.support])
        template = open_mouth(
            separate_inner_lips(self.reference, self.frame), TRIANGULATION_OPENING, self.frame
        )
        self.triangles = Delaunay(np.concatenate([template, self.support])).simplices
        self.warp = PiecewiseAffineWarp(self.triangles, (self.size, self.size))

    def to_pixels(self, landmarks: np.ndarray) -> np.ndarray:
        """Canonical-frame landmarks -> OpenCV pixel positions in the ``size`` frame."""
        scale = self.size / CANONICAL_FACE_SIZE
        return np.asarray(landmarks, np.float64) * scale - PIXEL_CENTRE_OFFSET

    def control_points(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The target mesh (68 + supports, 2) for one frame's canonical landmarks (OpenCV pixels) and the
        head's 2x3 similarity from the reference."""
        targets = separate_inner_lips(self.to_pixels(landmarks), self.frame)
        head = head_similarity(self.reference, targets)
        support = self.support @ head[:, :2].T + head[:, 2]
        return np.concatenate([targets, support]), head

    def render(self, landmarks: np.ndarray) -> np.ndarray:
        """(size, size, 3) uint8 frame for one (68, 2) set of canonical landmarks."""
        control, head = self.control_points(landmarks)
        picture = self.warp(self.image, self.source, control)
        targets = control[:NUM_LANDMARKS]
        scale = float(np.sqrt(abs(np.linalg.det(head[:, :2]))))
        unit = self.frame.unit * scale
        rest_gap = self.rest_gap * scale
        extra = (inner_lip_gap(targets) - rest_gap) / unit
        opening = np.clip((extra - TEETH_FADE[0]) / (TEETH_FADE[1] - TEETH_FADE[0]), 0.0, 1.0)
        teeth = TEETH_BAND * unit * float(opening)
        return paint_mouth(picture, targets, rest_gap, unit, teeth_depth=teeth, teeth_rgb=TEETH_RGB)

    def __call__(self, landmarks: np.ndarray) -> Iterator[np.ndarray]:
        """(size, size, 3) uint8 frames, one per row of ``landmarks`` (n, 68, 2)."""
        for points in np.asarray(landmarks, dtype=np.float64):
            yield self.render(points)
