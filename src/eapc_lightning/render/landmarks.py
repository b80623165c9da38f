"""Pictures of 68-point landmark sequences: predicted beside true, as in the paper's Fig. 3.

Landmarks are (68, 2) pixel coordinates (x, y) in a ``source_size`` square frame (the canonical 256
aligned face frame of the cache); panels of any ``size`` scale them. Points are joined into the iBUG
contours (jaw, brows, nose, eyes, lips) in yellow, the colour of the paper's Fig. 3.
"""

from collections.abc import Iterator

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

YELLOW = (255, 220, 0)
WHITE = (255, 255, 255)
_SHIFT = 4  # fixed-point bits for sub-pixel drawing with cv2

# (indices, closed) of each contour of the iBUG-68 layout.
CONTOURS: tuple[tuple[tuple[int, ...], bool], ...] = (
    (JAW, False),
    (RIGHT_BROW, False),
    (LEFT_BROW, False),
    (NOSE_BRIDGE, False),
    (NOSE_BASE, False),
    (RIGHT_EYE, True),
    (LEFT_EYE, True),
    (OUTER_LIP, True),
    (INNER_LIP, True),
)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected ({NUM_LANDMARKS}, 2) landmarks, got shape {points.shape}")
    return points


def draw_landmarks(
    canvas: np.ndarray,
    points: np.ndarray,
    *,
    color: tuple[int, int, int] = YELLOW,
    thickness: int = 1,
    point_radius: int = 0,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw the contours of (68, 2) ``points`` (times ``scale``) onto an RGB uint8 ``canvas`` in place.

    Non-finite points (a missing face) are skipped together with the segments that touch them.
    """
    points = _check_points(points) * scale
    finite = np.isfinite(points).all(axis=1)
    for indices, closed in CONTOURS:
        index_list = list(indices)
        if closed:
            index_list.append(indices[0])
        for start, end in zip(index_list[:-1], index_list[1:]):
            if finite[start] and finite[end]:
                segment = _fixed(points[[start, end]])
                cv2.line(canvas, tuple(segment[0]), tuple(segment[1]), color, thickness, cv2.LINE_AA, _SHIFT)
    if point_radius > 0:
        for point in _fixed(points[finite]):
            cv2.circle(canvas, tuple(point), point_radius << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)
    return canvas


def landmark_panel(
    points: np.ndarray,
    size: int = CANONICAL_FACE_SIZE,
    *,
    source_size: float = CANONICAL_FACE_SIZE,
    background: np.ndarray | None = None,
    label: str | None = None,
    color: tuple[int, int, int] = YELLOW,
    thickness: int = 1,
    point_radius: int = 0,
) -> np.ndarray:
    """(size, size, 3) RGB picture of one landmark frame on black or on a darkened ``background`` image."""
    if background is None:
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
    else:
        resized = cv2.resize(
            np.asarray(background, dtype=np.uint8), (size, size), interpolation=cv2.INTER_AREA
        )
        canvas = (resized.astype(np.float32) * 0.6).astype(np.uint8)
    draw_landmarks(
        canvas, points, color=color, thickness=thickness, point_radius=point_radius, scale=size / source_size
    )
    if label:
        cv2.putText(canvas, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
    return canvas


def side_by_side(
    predicted: np.ndarray,
    true: np.ndarray,
    size: int = CANONICAL_FACE_SIZE,
    *,
    source_size: float = CANONICAL_FACE_SIZE,
    background: np.ndarray | None = None,
    labels: tuple[str, str] = ("predicted", "ground truth"),
    **draw_options,
) -> np.ndarray:
    """(size, 2 * size, 3): predicted landmarks left, true landmarks right (over ``background`` if given)."""
    left = landmark_panel(predicted, size, source_size=source_size, label=labels[0], **draw_options)
    right = landmark_panel(
        true, size, source_size=source_size, background=background, label=labels[1], **draw_options
    )
    return np.concatenate([left, right], axis=1)


def comparison_frames(
    predicted: np.ndarray,
    true: np.ndarray,
    size: int = CANONICAL_FACE_SIZE,
    *,
    faces: np.ndarray | None = None,
    **options,
) -> Iterator[np.ndarray]:
    """Yield one side-by-side frame per time step of (T, 68, 2) ``predicted`` and ``true`` sequences.

    ``faces`` ((T, H, W, 3) RGB, optional) are drawn, darkened, behind the true landmarks.
    """
    if predicted.shape != true.shape:
        raise ValueError(
            f"predicted {predicted.shape} and true {true.shape} landmark sequences differ in shape"
        )
    for index in range(len(predicted)):
        background = None if faces is None else faces[index]
        yield side_by_side(predicted[index], true[index], size, background=background, **options)


def sequence_grid(
    predicted: np.ndarray,
    true: np.ndarray,
    num_frames: int = 8,
    size: int = 128,
    **options,
) -> np.ndarray:
    """Consecutive frames left to right: predicted on the top row, true below (a still of Fig. 3)."""
    count = min(num_frames, len(predicted))
    top = [landmark_panel(predicted[i], size, label=None, **options) for i in range(count)]
    bottom = [landmark_panel(true[i], size, label=None, **options) for i in range(count)]
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
