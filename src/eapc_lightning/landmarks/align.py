"""Similarity alignment of 68-point faces into the canonical 256x256 face frame.

One similarity transform per clip (estimated on the clip's mean shape) keeps the head motion inside
the clip while removing the camera framing, so landmark metrics are comparable across datasets.
The canonical anchor points are the five-point face template of ArcFace (insightface, 112x112:
eye centres, nose tip, mouth corners) scaled by 1.8 and shifted so a whole face, chin included,
fits the 256 frame.
"""

import cv2
import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE, LEFT_EYE, RIGHT_EYE

# ArcFace 112x112 template (insightface): right eye, left eye (image left/right), nose tip, mouth corners.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
CANONICAL_SCALE = 1.8
CANONICAL_SHIFT = np.array([CANONICAL_FACE_SIZE / 2, CANONICAL_FACE_SIZE / 2 - 24.0])
CANONICAL_ANCHORS = (_ARCFACE_112 - 56.0) * CANONICAL_SCALE + CANONICAL_SHIFT


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The five anchors (eye centres, nose tip 30, mouth corners 48/54) of (..., 68, 2) landmarks."""
    return np.stack(
        [
            landmarks[..., list(RIGHT_EYE), :].mean(axis=-2),
            landmarks[..., list(LEFT_EYE), :].mean(axis=-2),
            landmarks[..., 30, :],
            landmarks[..., 48, :],
            landmarks[..., 54, :],
        ],
        axis=-2,
    )


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping source -> target points.

    Umeyama (1991), closed form; returns a 2x3 matrix for ``cv2.warpAffine`` / ``apply_transform``.
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s_c, t_c = source - mu_s, target - mu_t
    covariance = t_c.T @ s_c / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / (s_c**2).sum(axis=1).mean()
    translation = mu_t - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def clip_alignment(landmarks: np.ndarray) -> np.ndarray:
    """The 2x3 transform taking a clip's (T, 68, 2) source-pixel landmarks to the canonical frame."""
    mean_shape = np.nanmean(landmarks, axis=0)
    return similarity_transform(anchor_points(mean_shape), CANONICAL_ANCHORS)


def warp_face(frame: np.ndarray, matrix: np.ndarray, size: int = CANONICAL_FACE_SIZE) -> np.ndarray:
    """Crop the aligned face of one frame at ``size`` x ``size`` (the canonical frame scaled to ``size``)."""
    scaled = matrix * (size / CANONICAL_FACE_SIZE)
    return cv2.warpAffine(frame, scaled, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def align_frames(points: np.ndarray, target: np.ndarray, anchors) -> np.ndarray:
    """Each frame of ``(T, 68, 2)`` points mapped onto ``target`` ``(68, 2)`` by the similarity fitted on
    the ``anchors`` points alone (removes head rotation, scale and position per frame); a frame with a
    missing (NaN) anchor stays NaN."""
    anchors = list(anchors)
    aligned = np.full(points.shape, np.nan, np.float32)
    for index, frame in enumerate(points):
        if np.isfinite(frame[anchors]).all():
            aligned[index] = apply_transform(similarity_transform(frame[anchors], target[anchors]), frame)
    return aligned
