"""Moving a face image with its 68 landmarks: a piecewise-affine mesh warp and a painted mouth interior.

Shared by the synthetic data generator (:mod:`eapc_lightning.synth.face`) and the training-free
renderer of ``eapc generate --renderer warp`` (:mod:`eapc_lightning.render.warp_renderer`).

* :class:`FaceFrame`: face-aligned axes (along the eyes and perpendicular, in units of the inter-ocular
  distance ``D``) in which offsets of the face are expressed.
* :func:`support_points`: control points beyond the 68 (forehead, a ring around the face, points far
  outside the frame) that hold forehead, hair, neck and background; they move rigidly with the head.
* :class:`PiecewiseAffineWarp`: the dense backward warp over a fixed triangulation of the control points.
* :func:`paint_mouth`: a dark cavity under an upper-teeth band inside the target inner-lip polygon.

All coordinates here are in OpenCV's pixel convention (pixel centres at integers).
"""

from dataclasses import dataclass

import cv2
import numpy as np

from eapc_lightning.constants import INNER_LIP, LEFT_EYE, RIGHT_EYE
from eapc_lightning.landmarks.align import similarity_transform

UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (67, 66, 65)  # paired with UPPER_INNER_LIP
MOUTH_CAVITY_RGB = (52, 20, 26)
TEETH_RGB = (222, 214, 204)
TEETH_DEPTH = 0.25  # upper-teeth band height, relative to the rest gap between the inner lips
# Points that a mouth or brow movement leaves in place: eye corners, nose bridge and nostrils. The head's
# rigid motion is the similarity fitted on them.
STABLE_POINTS = (36, 39, 42, 45, 27, 28, 29, 30, 31, 32, 33, 34, 35)
_SUBPIXEL_BITS = 4  # fillConvexPoly / fillPoly fixed-point precision (1/16 px)


@dataclass(frozen=True)
class FaceFrame:
    """Face-aligned axes: ``u`` along the eyes (image right), ``v`` perpendicular (down); ``unit`` = D."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    unit: float

    @classmethod
    def of(cls, points: np.ndarray) -> "FaceFrame":
        right_eye = points[list(RIGHT_EYE)].mean(axis=0)
        left_eye = points[list(LEFT_EYE)].mean(axis=0)
        axis = left_eye - right_eye
        unit = float(np.linalg.norm(axis))
        u = axis / unit
        return cls(origin=points[27:36].mean(axis=0), u=u, v=np.array([-u[1], u[0]]), unit=unit)

    def to_image(self, local: np.ndarray) -> np.ndarray:
        """Offsets in (u, v) units of D -> image pixel offsets."""
        return self.unit * (local[..., :1] * self.u + local[..., 1:] * self.v)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        centred = points - self.origin
        return np.stack([centred @ self.u, centred @ self.v], axis=-1) / self.unit


def support_points(points: np.ndarray, size: int, frame: FaceFrame | None = None) -> np.ndarray:
    """(42, 2) control points outside the 68 that keep forehead, hair, neck and background in place.

    Twelve forehead points above the brows, a ring of 20 points around the face (1.75 D across, 1.95 D
    down from the landmarks' centre) and 16 points on a square 0.3 ``size`` outside the frame, so that the
    mesh covers the whole ``size`` x ``size`` frame for any plausible head motion.
    """
    frame = FaceFrame.of(points) if frame is None else frame
    local = frame.to_local(points)
    brows = local[17:27]
    forehead = np.concatenate([brows + [0, -0.55], brows[[0, -1]] + [[-0.35, -0.2], [0.35, -0.2]]])
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    centre = local.mean(axis=0)
    ring = centre + np.stack([1.75 * np.cos(angles), 1.95 * np.sin(angles)], axis=-1)
    face_support = frame.origin + frame.to_image(np.concatenate([forehead, ring]))
    low, high = -0.3 * size, 1.3 * size
    ticks = np.linspace(low, high, 5)
    border = np.array(
        [(x, low) for x in ticks]
        + [(x, high) for x in ticks]
        + [(low, y) for y in ticks[1:-1]]
        + [(high, y) for y in ticks[1:-1]]
    )
    return np.concatenate([face_support, border])


def head_similarity(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The head's rigid motion from ``reference`` to ``target`` 68 points, fitted on :data:`STABLE_POINTS`."""
    stable = list(STABLE_POINTS)
    return similarity_transform(reference[stable], target[stable])


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(K,) signed areas of the triangles (positive: counter-clockwise in x-right, y-up axes)."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


class PiecewiseAffineWarp:
    """Backward warp of an image so that ``source_points`` land on ``target_points``.

    For every output pixel the triangle of the *target* mesh that contains it is looked up in a label
    image rasterised with OpenCV, and the pixel is mapped back into the source image with that triangle's
    affine transform (target -> source). ``cv2.remap`` then samples the source. Affine maps of neighbouring
    triangles agree on their shared edge, so the warp is continuous, and it is exact at the control
    points. About 2-3 ms per 256x256 frame.

    ``triangles`` (K, 3) indexes the control points; it must stay valid (no folded triangles) for the
    targets it is used with. The target mesh must cover the whole output frame.
    """

    def __init__(self, triangles: np.ndarray, size: tuple[int, int]):
        self.triangles = np.asarray(triangles, dtype=np.int64)
        self.height, self.width = size
        self._ys, self._xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)

    def _triangle_affines(self, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """(K, 3, 2) matrices M with [x, y, 1] @ M = source position, per target triangle."""
        target = target_points[self.triangles].astype(np.float64)  # (K, 3, 2)
        source = source_points[self.triangles].astype(np.float64)
        homogeneous = np.concatenate([target, np.ones(target.shape[:2] + (1,))], axis=-1)  # (K, 3, 3)
        determinant = np.linalg.det(homogeneous)
        degenerate = np.abs(determinant) < 1e-9
        # A collapsed triangle covers no pixel; give it a harmless translation-only map.
        homogeneous[degenerate] = np.eye(3)
        affines = np.linalg.solve(homogeneous, source)
        affines[degenerate] = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        return affines.astype(np.float32)

    def label_image(self, target_points: np.ndarray) -> np.ndarray:
        """(H, W) int32: index of the target triangle covering each pixel."""
        labels = np.zeros((self.height, self.width), np.int32)
        corners = np.round(target_points[self.triangles] * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        for index, triangle in enumerate(corners):
            cv2.fillConvexPoly(labels, triangle, int(index), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        return labels

    def maps(self, source_points: np.ndarray, target_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps (x, y), each (H, W) float32."""
        affines = self._triangle_affines(source_points, target_points)
        labels = self.label_image(target_points)
        map_x = np.take(affines[:, 0, 0], labels) * self._xs
        map_x += np.take(affines[:, 1, 0], labels) * self._ys
        map_x += np.take(affines[:, 2, 0], labels)
        map_y = np.take(affines[:, 0, 1], labels) * self._xs
        map_y += np.take(affines[:, 1, 1], labels) * self._ys
        map_y += np.take(affines[:, 2, 1], labels)
        return map_x, map_y

    def __call__(self, image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        map_x, map_y = self.maps(source_points, target_points)
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def inner_lip_gap(points: np.ndarray) -> float:
    """Mean distance between the paired upper and lower inner-lip points (61-67, 62-66, 63-65)."""
    pairs = points[list(LOWER_INNER_LIP)] - points[list(UPPER_INNER_LIP)]
    return float(np.mean(np.linalg.norm(pairs, axis=-1)))


def paint_mouth(
    frame: np.ndarray,
    targets: np.ndarray,
    rest_gap: float,
    unit: float,
    teeth_depth: float | None = None,
    teeth_rgb: tuple[int, int, int] = TEETH_RGB,
) -> np.ndarray:
    """Paint the opened mouth inside the inner-lip polygon of ``targets``: a dark oral cavity under a
    band of upper teeth. At rest (the photograph's own lips, ``rest_gap`` apart) nothing is painted; the
    paint fades in over the first ``0.05 D`` (``unit`` = D) of extra opening.

    ``teeth_depth``: height of the teeth band in pixels; by default ``TEETH_DEPTH * rest_gap``. It never
    exceeds a fifth of the current gap. ``teeth_rgb``: their colour.
    """
    gap = inner_lip_gap(targets)
    strength = float(np.clip((gap - rest_gap) / (0.05 * unit), 0.0, 1.0))
    if strength <= 0.0:
        return frame
    upper = targets[[60, 61, 62, 63, 64]]
    depth = TEETH_DEPTH * rest_gap if teeth_depth is None else teeth_depth
    depth = min(depth, 0.2 * gap)
    teeth_polygon = np.concatenate([upper, upper[::-1] + np.array([0.0, depth])])
    # paint inside the mouth's bounding box only
    height, width = frame.shape[:2]
    low = np.maximum(np.floor(targets[list(INNER_LIP)].min(axis=0)).astype(int) - 2, 0)
    high = np.minimum(np.ceil(targets[list(INNER_LIP)].max(axis=0)).astype(int) + 3, [width, height])
    if np.any(high <= low):
        return frame
    box_shape = (high[1] - low[1], high[0] - low[0])
    scale = 1 << _SUBPIXEL_BITS

    def coverage(polygon: np.ndarray) -> np.ndarray:
        mask = np.zeros(box_shape, np.uint8)
        fixed = np.round((polygon - low) * scale).astype(np.int32)
        cv2.fillPoly(mask, [fixed], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
        return mask.astype(np.float32)[..., None] / 255.0

    cavity_alpha = strength * coverage(targets[list(INNER_LIP)])
    teeth_alpha = coverage(teeth_polygon) * cavity_alpha
    out = frame.copy()
    box = out[low[1] : high[1], low[0] : high[0]].astype(np.float32)
    box = box * (1 - cavity_alpha) + np.asarray(MOUTH_CAVITY_RGB, np.float32) * cavity_alpha
    box = box * (1 - teeth_alpha) + np.asarray(teeth_rgb, np.float32) * teeth_alpha
    out[low[1] : high[1], low[0] : high[0]] = np.clip(np.round(box), 0, 255).astype(np.uint8)
    return out
