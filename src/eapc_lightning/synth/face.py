"""The synthetic face: a real photograph, re-framed, re-painted and re-shaped per speaker, warped per frame.

A speaker is an :class:`Identity` applied to one of two offline photographs (scikit-image's bundled
``astronaut()`` and matplotlib's sample ``grace_hopper.jpg``): mirroring, framing, a procedural
:class:`~eapc_lightning.synth.appearance.Appearance` (skin tone, hair, facial hair, brows, glasses,
wrinkles, background, clothes), colour grading and 68-point shape changes. :class:`FaceRig` poses it: the
speaker's neutral 68-point shape plus expression offsets (brows, eyelids, mouth corners) and
articulation offsets (jaw drop, lip opening and width) give per-frame target landmarks; a small
head motion is applied to all control points; the photograph is warped piecewise-affinely onto the
targets and the mouth interior (dark cavity with an upper-teeth band) is painted inside the inner
lip so that a landmark detector sees the opening.

Coordinates: the public ``targets`` are in the detector's pixel convention (x = column + 0.5, the
convention of MediaPipe's normalised coordinates times the image size). Internally the rig works in
OpenCV's convention (pixel centres at integers).
"""

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from eapc_lightning.constants import LEFT_EYE, RIGHT_EYE
from eapc_lightning.landmarks.align import CANONICAL_ANCHORS, anchor_points, similarity_transform
from eapc_lightning.landmarks.mesh_warp import (
    LOWER_INNER_LIP,
    UPPER_INNER_LIP,
    FaceFrame,
    PiecewiseAffineWarp,
    inner_lip_gap,
    paint_mouth,
    support_points,
)
from eapc_lightning.synth.appearance import Appearance, paint_appearance

DETECTOR_PIXEL_OFFSET = 0.5  # detector x = OpenCV x + 0.5

# 68 landmarks of skimage.data.astronaut() (512x512), detector pixel convention: the output of
# FaceLandmarkDetector(video=False) on that image, rounded to 0.01 px. Stored so that the generator
# is independent of the detector's numerics; tests re-detect and compare.
ASTRONAUT_LANDMARKS = np.array(
    [
        [180.35, 93.73], [179.03, 111.05], [178.97, 119.82], [181.52, 139.76], [185.18, 148.38],
        [189.57, 155.05], [200.56, 166.20], [212.57, 173.91], [221.34, 175.49], [230.27, 174.97],
        [243.20, 168.62], [255.32, 158.73], [260.33, 152.59], [264.90, 144.44], [269.84, 125.00],
        [270.86, 116.26], [271.64, 98.84], [185.28, 89.53], [191.68, 88.13], [198.02, 86.72],
        [206.38, 87.60], [216.17, 89.35], [236.86, 90.46], [246.70, 89.76], [255.01, 89.77],
        [261.10, 91.91], [267.22, 94.05], [225.92, 101.04], [225.34, 111.41], [224.74, 120.97],
        [224.37, 126.95], [214.39, 129.86], [218.29, 132.94], [223.98, 133.93], [229.80, 133.60],
        [233.97, 130.96], [194.65, 100.94], [199.12, 98.30], [206.51, 98.36], [213.82, 103.65],
        [207.89, 104.21], [200.75, 103.63], [237.44, 104.77], [245.18, 100.32], [252.56, 101.02],
        [256.71, 104.08], [250.42, 106.06], [243.25, 105.88], [201.85, 139.45], [210.65, 138.79],
        [217.10, 139.25], [223.60, 140.47], [230.24, 140.04], [236.85, 140.37], [245.91, 142.24],
        [234.89, 152.59], [229.28, 154.50], [222.82, 154.88], [216.48, 153.70], [211.24, 151.12],
        [204.67, 140.16], [218.07, 141.99], [223.55, 142.74], [229.10, 142.69], [243.02, 142.59],
        [228.62, 149.49], [223.13, 149.60], [217.71, 148.76],
    ],
    dtype=np.float32,
)  # fmt: skip

# 68 landmarks of matplotlib's bundled sample photograph ``grace_hopper.jpg`` (512 wide, 600 high),
# obtained and stored like ASTRONAUT_LANDMARKS.
HOPPER_LANDMARKS = np.array(
    [
        [171.76, 183.84], [173.12, 218.00], [174.91, 234.96], [184.47, 272.76], [193.10, 288.64],
        [202.51, 301.12], [225.69, 320.81], [252.49, 332.50], [271.62, 333.06], [290.45, 330.17],
        [315.62, 315.54], [336.07, 293.57], [343.70, 280.11], [350.23, 263.30], [355.63, 224.57],
        [355.65, 207.49], [353.99, 173.52], [179.99, 173.92], [192.01, 169.12], [204.22, 164.39],
        [221.37, 163.38], [241.96, 163.97], [284.24, 161.90], [304.43, 159.38], [321.13, 158.88],
        [333.34, 162.42], [345.44, 164.99], [264.31, 185.19], [265.59, 205.19], [266.83, 224.77],
        [267.62, 236.95], [247.84, 247.68], [256.28, 252.43], [268.05, 252.32], [279.70, 251.06],
        [287.59, 245.44], [201.61, 194.23], [210.22, 189.28], [224.72, 187.38], [239.95, 193.21],
        [228.13, 196.36], [213.88, 197.37], [288.44, 190.49], [302.94, 182.98], [317.48, 183.33],
        [326.37, 187.28], [314.73, 191.71], [300.47, 192.35], [232.28, 277.26], [246.27, 271.08],
        [257.39, 269.00], [268.50, 270.04], [279.53, 267.86], [290.60, 269.00], [304.66, 273.92],
        [288.81, 284.08], [279.62, 287.21], [269.15, 288.50], [258.57, 288.34], [249.10, 286.17],
        [236.73, 276.22], [260.47, 276.76], [268.70, 276.88], [276.84, 275.96], [300.04, 273.20],
        [277.29, 276.48], [268.59, 277.20], [259.89, 277.34],
    ],
    dtype=np.float32,
)  # fmt: skip

SOURCE_LANDMARKS = {"astronaut": ASTRONAUT_LANDMARKS, "hopper": HOPPER_LANDMARKS}

# Index permutation that maps the 68 points of a face onto those of its mirror image.
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)

TRIANGULATION_OPENING = 0.6  # jaw opening of the shape the warp mesh is triangulated on
# Least rest gap between the inner lips (D): the expressions lift the lower inner lip by up to 0.03 D
# more than the upper one (happy's corners), which would fold the mesh of a closed-mouth photograph.
MIN_REST_GAP = 0.04
CLOSED_MOUTH_GAP = 0.08  # D: a rest gap below this is a closed mouth (the hopper photograph's)
CLOSED_MOUTH_TEETH = 0.05  # D: the upper-teeth band painted into such a mouth as it opens


@dataclass(frozen=True)
class Identity:
    """How one synthetic speaker differs from the photograph.

    ``source``: the photograph (a key of :data:`SOURCE_LANDMARKS`), ``flip``: mirrored. Framing:
    ``scale`` multiplies the canonical face size of the output frame, ``rotation`` in degrees,
    ``offset`` in output pixels. Colour grading of the whole frame: ``hue`` in degrees,
    ``saturation``/``brightness`` multipliers, ``gamma``. Shape (relative, or in units of the
    inter-ocular distance ``D``): ``jaw_width``, ``face_length``, ``eye_size``, ``mouth_width``,
    ``nose_width`` (relative), ``nose_length``, ``brow_height``, ``chin`` (D, down). ``appearance``:
    what is painted on the photograph before it is warped.
    """

    source: str = "astronaut"
    flip: bool = False
    scale: float = 1.0
    rotation: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    hue: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    gamma: float = 1.0
    jaw_width: float = 0.0
    face_length: float = 0.0
    eye_size: float = 0.0
    mouth_width: float = 0.0
    nose_length: float = 0.0
    brow_height: float = 0.0
    nose_width: float = 0.0
    chin: float = 0.0
    appearance: Appearance = Appearance()


@lru_cache(maxsize=2)
def source_photo(name: str) -> np.ndarray:
    """One of the offline face photographs of :data:`SOURCE_LANDMARKS` (RGB uint8)."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    if name == "hopper":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])
    raise ValueError(f"unknown source photograph {name!r}; choose from {', '.join(SOURCE_LANDMARKS)}")


def _recolour(image: np.ndarray, identity: Identity) -> np.ndarray:
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + identity.hue, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * identity.saturation, 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * identity.brightness, 0.0, 1.0) ** identity.gamma
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def render_identity(identity: Identity, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The speaker's still photograph (size x size RGB) and its 68 landmarks (OpenCV convention)."""
    image = source_photo(identity.source)
    points = SOURCE_LANDMARKS[identity.source] - DETECTOR_PIXEL_OFFSET
    if identity.flip:
        image = image[:, ::-1]
        points = points[MIRROR_68].copy()
        points[:, 0] = image.shape[1] - 1 - points[:, 0]
    centre = np.array([size / 2.0, size / 2.0])
    angle = np.deg2rad(identity.rotation)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    canonical = (CANONICAL_ANCHORS - DETECTOR_PIXEL_OFFSET) * (size / 256.0)
    anchors = (canonical - centre) @ rotation.T * identity.scale + centre + np.asarray(identity.offset)
    matrix = similarity_transform(anchor_points(points), anchors)
    framed = cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT,
    )
    framed_points = points @ matrix[:, :2].T + matrix[:, 2]
    painted = paint_appearance(framed, framed_points, identity.appearance, identity.source, identity.flip)
    return _recolour(painted, identity), framed_points.astype(np.float64)


def _offsets(entries: dict[int, tuple[float, float]]) -> np.ndarray:
    out = np.zeros((68, 2))
    for index, delta in entries.items():
        out[index] = delta
    return out


def _symmetric(entries: dict[int, tuple[float, float]]) -> np.ndarray:
    """Offsets given for the image-left half of the face (and its centre line), mirrored to the other."""
    one_side = _offsets(entries)
    other = one_side[MIRROR_68] * np.array([-1.0, 1.0])
    both = one_side + other
    centre_line = [27, 28, 29, 30, 33, 51, 57, 62, 66, 8]
    both[centre_line] = one_side[centre_line]
    return both


# Expression units: (68, 2) offsets in face-local (u, v) units of D for intensity 1. Positive v is
# down; the image-left side (u < 0: points 0-8, 17-21, 36-41, 48-50, 58-61, 67) is given, the other
# side mirrored. Roughly FACS action units.
EXPRESSION_UNITS = {
    "brow_raise": _symmetric(
        {17: (0, -0.10), 18: (0, -0.12), 19: (0, -0.13), 20: (0, -0.12), 21: (0, -0.11)}
    ),
    "brow_inner_raise": _symmetric({19: (0, -0.04), 20: (0.01, -0.09), 21: (0.02, -0.13), 18: (0, -0.01)}),
    "brow_lower": _symmetric(
        {17: (0, 0.03), 18: (0.01, 0.05), 19: (0.02, 0.07), 20: (0.04, 0.09), 21: (0.06, 0.10)}
    ),
    "eye_open": _symmetric({37: (0, -0.05), 38: (0, -0.05), 40: (0, 0.015), 41: (0, 0.015)}),
    "cheek_raise": _symmetric({40: (0, -0.02), 41: (0, -0.02), 1: (0, -0.02), 2: (0, -0.03), 3: (0, -0.03)}),
    "lip_corner": _symmetric(
        {48: (-0.03, -0.09), 60: (-0.03, -0.08), 49: (-0.01, -0.04), 59: (-0.01, -0.04), 67: (0, -0.03)}
    ),
    "lip_stretch": _symmetric(
        {48: (-0.09, 0.01), 60: (-0.09, 0.01), 49: (-0.05, 0), 59: (-0.05, 0), 61: (-0.03, 0), 67: (-0.03, 0)}
    ),
    "upper_lip_raise": _symmetric(
        {
            49: (0, -0.06),
            50: (0, -0.07),
            51: (0, -0.07),
            61: (0, -0.05),
            62: (0, -0.05),
            31: (0, -0.03),
            32: (0, -0.03),
            33: (0, -0.02),
        }
    ),
    # one-sided lip corner pull (contempt): image-left corner only
    "lip_corner_one_side": _offsets(
        {48: (-0.05, -0.08), 60: (-0.05, -0.07), 49: (-0.02, -0.03), 59: (-0.02, -0.03), 61: (-0.01, -0.02)}
    ),
}

# Articulation units (intensity 1): lowering the jaw with the lower lip, and widening the mouth.
# JAW_OPEN was calibrated on the photograph against MediaPipe's response to an opening mouth (its lip
# corners drop and its upper lip barely moves), so that re-detection agrees with the targets.
JAW_OPEN = _symmetric(
    {
        **{66: (0, 0.29), 67: (0, 0.29), 57: (0, 0.31), 58: (-0.02, 0.30), 59: (-0.015, 0.27)},
        **{48: (0.05, 0.16), 60: (0.06, 0.15)},
        **{61: (0.015, 0.015), 62: (0, 0.01), 49: (0.013, 0.025), 50: (0, 0), 51: (0, -0.01)},
        **{8: (0, 0.22), 7: (0, 0.20), 6: (0, 0.16), 5: (0, 0.11), 4: (0, 0.06), 3: (0, 0.02)},
    }
)
LIP_SPREAD = _symmetric(
    {
        48: (-0.08, -0.01),
        60: (-0.07, -0.01),
        49: (-0.04, 0),
        59: (-0.04, 0),
        61: (-0.03, 0),
        67: (-0.03, 0),
        50: (-0.01, 0),
        58: (-0.01, 0),
    }
)


def _reshape(points: np.ndarray, identity: Identity, frame: FaceFrame) -> np.ndarray:
    """Identity shape changes of the 68-point rig."""
    local = frame.to_local(points)
    out = local.copy()
    jaw = list(range(0, 17))
    out[jaw, 0] = local[jaw, 0] * (1.0 + identity.jaw_width)
    nose_tip_v = local[30, 1]
    lower = [i for i in range(68) if local[i, 1] > nose_tip_v and (i < 17 or i >= 48)]
    out[lower, 1] = nose_tip_v + (local[lower, 1] - nose_tip_v) * (1.0 + identity.face_length)
    for eye in (RIGHT_EYE, LEFT_EYE):
        eye = list(eye)
        centre = local[eye].mean(axis=0)
        out[eye] = centre + (local[eye] - centre) * (1.0 + identity.eye_size)
    mouth = list(range(48, 68))
    mouth_centre_u = local[mouth, 0].mean()
    out[mouth, 0] = mouth_centre_u + (out[mouth, 0] - mouth_centre_u) * (1.0 + identity.mouth_width)
    out[30:36, 1] += identity.nose_length
    out[17:27, 1] -= identity.brow_height
    nostrils = list(range(31, 36))
    out[nostrils, 0] = local[33, 0] + (out[nostrils, 0] - local[33, 0]) * (1.0 + identity.nose_width)
    out[5:12, 1] += identity.chin * np.array([0.3, 0.6, 0.9, 1.0, 0.9, 0.6, 0.3])
    for upper, lower in zip(UPPER_INNER_LIP, LOWER_INNER_LIP):  # part closed lips a little
        out[lower, 1] = max(out[lower, 1], out[upper, 1] + MIN_REST_GAP)
    return frame.origin + frame.to_image(out)


def head_matrix(angle_deg: float, shift: tuple[float, float], scale: float, centre: np.ndarray) -> np.ndarray:
    """2x3 similarity: rotate/scale about ``centre``, then translate by ``shift`` (image pixels)."""
    angle = np.deg2rad(angle_deg)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    translation = centre - linear @ centre + np.asarray(shift)
    return np.hstack([linear, translation[:, None]])


class FaceRig:
    """One speaker's photograph, posable by expression, articulation and head motion."""

    def __init__(self, identity: Identity, size: int = 256):
        self.size = size
        self.image, self.base = render_identity(identity, size)
        self.frame = FaceFrame.of(self.base)
        self.neutral = _reshape(self.base, identity, self.frame)
        self.rest_gap = inner_lip_gap(self.neutral)
        # a photograph with closed lips shows no teeth of its own: paint a band of them when it opens
        closed = self.rest_gap < CLOSED_MOUTH_GAP * self.frame.unit
        self.teeth_depth = CLOSED_MOUTH_TEETH * self.frame.unit if closed else None
        self.support = support_points(self.base, size, self.frame)
        self.source = np.concatenate([self.base, self.support])
        # triangulate a half-open mouth so that neither closing nor opening folds a triangle
        half_open = self.neutral + self.frame.to_image(TRIANGULATION_OPENING * JAW_OPEN)
        self.triangles = Delaunay(np.concatenate([half_open, self.support])).simplices
        self.warp = PiecewiseAffineWarp(self.triangles, (size, size))
        self.centre = self.neutral.mean(axis=0)

    def pose(self, expression: np.ndarray, opening: float, spread: float, head: np.ndarray) -> np.ndarray:
        """Target 68 points (OpenCV convention) for local expression offsets (68, 2), jaw opening and
        lip spread (intensities of the articulation units) and a 2x3 head matrix."""
        local = expression + opening * JAW_OPEN + spread * LIP_SPREAD
        points = self.neutral + self.frame.to_image(local)
        return points @ head[:, :2].T + head[:, 2]

    def render(self, targets: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The warped photograph for 68 target points (OpenCV convention) under ``head``."""
        support = self.support @ head[:, :2].T + head[:, 2]
        frame = self.warp(self.image, self.source, np.concatenate([targets, support]))
        scale = head_scale(head)
        teeth = None if self.teeth_depth is None else self.teeth_depth * scale
        return paint_mouth(frame, targets, self.rest_gap * scale, self.frame.unit * scale, teeth_depth=teeth)


def head_scale(head: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(head[:, :2]))))


def head_motion(rng: np.random.Generator, num_frames: int, centre: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2, 3) smooth small head motion: rotation about ``centre`` (~1.5 deg), shift (~2.5 px),
    scale (~1 %), each a random mix of three slow sinusoids (0.15-0.7 Hz)."""
    time = np.arange(num_frames) / fps

    def wobble(amplitude: float) -> np.ndarray:
        frequencies = rng.uniform(0.15, 0.7, 3)
        phases = rng.uniform(0.0, 2.0 * np.pi, 3)
        weights = rng.normal(0.0, 1.0, 3)
        weights /= np.sqrt(np.sum(weights**2) / 2.0)
        return amplitude * np.sum(
            weights[:, None] * np.sin(2 * np.pi * frequencies[:, None] * time + phases[:, None]), axis=0
        )

    angle, shift_x, shift_y, scale = wobble(1.5), wobble(2.5), wobble(2.0), 1.0 + wobble(0.012)
    return np.stack(
        [head_matrix(angle[i], (shift_x[i], shift_y[i]), scale[i], centre) for i in range(num_frames)]
    )
