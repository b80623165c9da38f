"""Moving a face image with its 68 landmarks: a piecewise-affine mesh warp and a painted mouth interior.

Shared by the synthetic data generator (:mod:`eapc_lightning.synth.face`) and the training-free
renderer of ``eapc generate --renderer warp`` (:mod:`eapc_lightning.render.warp_renderer`).

* :class:`FaceFrame`: face-aligned axes (along the eyes and perpendicular, in units of the inter-ocular
  distance ``D``) in which offsets of the face are expressed.
* :func:`support_points`: control points beyond the 68 (forehead, a ring around the face, points far
  outside the frame) that hold forehead, hair, neck and background; they move rigidly with the head.
* :class:`PiecewiseAffineWarp`: the dense backward warp over a fixed triangulation of the control points.
* :func:`paint_mouth`: a dark cavity under an upper-teeth band inside the target inner-lip polygon.
* :class:`LandmarkMesh`: one reference face's mesh (68 points + supports, triangulated with the mouth
  open) moved onto target landmarks: the warp renderer's maps and the vid2vid generator's mesh flow.
* :func:`mouth_interior_mask`: the pixels inside a face's inner-lip polygon (no flow exists there).

All coordinates here are in OpenCV's pixel convention (pixel centres at integers).
"""

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from eapc_lightning.constants import INNER_LIP, LEFT_EYE, NUM_LANDMARKS, RIGHT_EYE
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
DETECTOR_PIXEL_OFFSET = 0.5  # landmark x = OpenCV pixel x + 0.5 (the detector's convention)


def opencv_pixels(landmarks: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Detector-convention landmarks (x = pixel column + 0.5), scaled by ``scale`` (e.g. from the canonical
    256 frame to a smaller one) -> OpenCV pixel positions (pixel centres at integers), as used here."""
    return np.asarray(landmarks, np.float64) * scale - DETECTOR_PIXEL_OFFSET


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

    def flow(self, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """(2, H, W) float32 backward flow (x, y) in pixels: output pixel p samples the source at p + flow."""
        map_x, map_y = self.maps(source_points, target_points)
        return np.stack([map_x - self._xs, map_y - self._ys])

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


TRIANGULATION_OPENING = 0.3  # D: jaw drop of the shape a LandmarkMesh is triangulated on

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


class LandmarkMesh:
    """The mesh of one reference face, moved onto target landmarks.

    Control points are the reference's 68 landmarks plus :func:`support_points`, which follow the head's
    rigid motion (:func:`head_similarity`). One triangulation (Delaunay) is computed on the reference
    shape with the mouth opened by ``TRIANGULATION_OPENING`` D: the inner lips are then apart, so no
    triangle spans the lips, and closing the mouth only flattens the triangles of the mouth interior while
    opening it stretches them. All points are OpenCV pixels of a ``size`` x ``size`` frame.
    """

    def __init__(self, reference: np.ndarray, size: int):
        self.reference = np.asarray(reference, np.float64)
        self.size = int(size)
        self.frame = FaceFrame.of(self.reference)
        self.support = support_points(self.reference, self.size, self.frame)
        self.source = np.concatenate([self.reference, self.support])
        template = open_mouth(
            separate_inner_lips(self.reference, self.frame), TRIANGULATION_OPENING, self.frame
        )
        self.triangles = Delaunay(np.concatenate([template, self.support])).simplices
        self.warp = PiecewiseAffineWarp(self.triangles, (self.size, self.size))

    def control_points(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The target mesh (68 + supports, 2) for one frame's 68 points and the head's 2x3 similarity
        from the reference."""
        targets = separate_inner_lips(np.asarray(target, np.float64), self.frame)
        head = head_similarity(self.reference, targets)
        support = self.support @ head[:, :2].T + head[:, 2]
        return np.concatenate([targets, support]), head

    def flow(self, target: np.ndarray) -> np.ndarray:
        """(2, size, size) float32 backward flow in pixels (x, y) that moves the reference onto ``target``:
        output pixel p samples the reference at p + flow(p), the convention of ``models.vid2vid.flow.warp``."""
        control, _ = self.control_points(target)
        return self.warp.flow(self.source, control)


def mouth_interior_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32: 1 inside the inner-lip polygon of ``points`` (68, 2, OpenCV pixels)."""
    mask = np.zeros((size, size), np.uint8)
    polygon = np.round(np.asarray(points)[list(INNER_LIP)] * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 1, cv2.LINE_8, _SUBPIXEL_BITS)
    return mask.astype(np.float32)
