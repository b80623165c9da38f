"""Label maps for the landmark-to-video stage: one channel of landmark polylines.

The label map is the few-shot vid2vid face input (docs/vid2vid.md, 'Decisions'): the 68 iBUG points
joined into polylines (jaw, brows, nose bridge and base, eyes, outer and inner lip) plus a synthetic
upper-face curve that closes the face outline above the brows, drawn as 1.0 on a 0.0 canvas.

The upper-face curve mirrors the inner jaw points (1-15) across the line through the jaw ends (0 and
16) and shrinks their distance to that line by ``upper_face_scale`` (2/3 by default, the proportion the
few-shot vid2vid face dataset uses for its added forehead points), so it stays above the brows for an
upright or rolled face alike. The closed outline is jaw 0..16 followed by the mirrored points 15..1.

Landmarks are given in a ``source_size`` square frame (the canonical 256 frame of the cache) and are
scaled to the requested label-map size, so one set of points draws at any resolution.
"""

import cv2
import numpy as np

from eapc_lightning.constants import (
    CANONICAL_FACE_SIZE,
    INNER_LIP,
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    NOSE_BASE,
    NOSE_BRIDGE,
    NUM_LANDMARKS,
    OUTER_LIP,
    RIGHT_BROW,
    RIGHT_EYE,
)

_SUBPIXEL_BITS = 4  # cv2.polylines fixed-point precision: 1/16 pixel

# (point indices, closed?) of every polyline drawn from the 68 points.
FACE_POLYLINES: tuple[tuple[tuple[int, ...], bool], ...] = (
    (RIGHT_BROW, False),
    (LEFT_BROW, False),
    (NOSE_BRIDGE + (33,), False),  # bridge 27-30 down to the tip of the base
    (NOSE_BASE, False),
    (RIGHT_EYE, True),
    (LEFT_EYE, True),
    (OUTER_LIP, True),
    (INNER_LIP, True),
)


def upper_face_curve(landmarks: np.ndarray, scale: float = 2.0 / 3.0) -> np.ndarray:
    """(15, 2) points above the brows: jaw points 1-15 mirrored across the jaw-end line, scaled by ``scale``."""
    start, end = landmarks[JAW[0]].astype(np.float64), landmarks[JAW[-1]].astype(np.float64)
    direction = end - start
    length = np.linalg.norm(direction)
    if length < 1e-6:
        raise ValueError("jaw end points coincide; cannot place the upper-face curve")
    direction /= length
    normal = np.array([-direction[1], direction[0]])
    inner_jaw = landmarks[list(JAW[1:-1])].astype(np.float64) - start
    along = inner_jaw @ direction
    across = inner_jaw @ normal
    return start + along[:, None] * direction - (scale * across)[:, None] * normal


def face_outline(landmarks: np.ndarray, upper_face_scale: float = 2.0 / 3.0) -> np.ndarray:
    """Closed outline: jaw 0..16 then the upper-face curve from the right side back to the left."""
    return np.concatenate([landmarks[list(JAW)], upper_face_curve(landmarks, upper_face_scale)[::-1]])


def draw_label_map(
    landmarks: np.ndarray,
    size: int,
    *,
    source_size: float = CANONICAL_FACE_SIZE,
    thickness: int = 1,
    upper_face_scale: float = 2.0 / 3.0,
) -> np.ndarray:
    """(size, size) float32 label map (1.0 on the polylines) of (68, 2) points given in a ``source_size`` frame."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected ({NUM_LANDMARKS}, 2) landmarks, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks contain NaN or infinite values")
    points = points * (size / source_size)
    canvas = np.zeros((size, size), dtype=np.uint8)
    polylines = [(face_outline(points, upper_face_scale), True)]
    polylines += [(points[list(indices)], closed) for indices, closed in FACE_POLYLINES]
    for polyline, closed in polylines:
        fixed = np.round(polyline * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [fixed], closed, 255, thickness, cv2.LINE_8, _SUBPIXEL_BITS)
    return (canvas > 0).astype(np.float32)


def draw_label_maps(landmarks: np.ndarray, size: int, **kwargs) -> np.ndarray:
    """(T, size, size) label maps of (T, 68, 2) landmarks; keyword arguments as :func:`draw_label_map`."""
    return np.stack([draw_label_map(frame, size, **kwargs) for frame in landmarks])
