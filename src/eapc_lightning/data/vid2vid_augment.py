"""Training augmentation of the landmark-to-video stage: a random crop and a colour jitter per sample.

few-shot vid2vid (Wang et al., 2019) augments its face training samples in ``data/fewshot_face_dataset.py``
(``get_crop_coords``: a crop box around the face whose side is scaled by U(0.8, 1.2) and whose centre moves
by up to 0.2 of the half side, i.e. 0.1 of the side) and ``data/base_dataset.py`` (``get_img_params`` /
``__color_aug``: HSV jitter, hue +-30/256 of the circle, saturation and value x U(0.8, 1.2) + U(-10, 10)/255;
``__flip``: a horizontal flip with probability 0.5). One draw serves every reference and target frame of a
sample, so a sample stays one consistent video. :class:`FaceAugmentation` is that recipe on the cached,
already aligned crops; its defaults are the original's values (a rotation, which the original does not use,
is available and off). Differences: the original crops each source frame around its own face box and
scales the box's width and height independently, and it draws one centre offset for the references' box
and another for the targets' (the scale, flip and colours are shared); here the faces are already aligned
to one frame, the crop keeps the aspect ratio and one draw, offset included, serves the whole sample.

Geometry. Points use the landmark detector's continuous convention: pixel column ``j`` of an image covers
``[j, j + 1)``, so a pixel's centre is at OpenCV pixel + 0.5, and a transform written for one image side
holds for any other side after scaling its translation. The crop is a square of side ``crop_scale`` times
the frame, centred at the frame centre plus ``shift`` times its side, turned by ``rotation`` degrees about
its centre; it is resampled to the whole frame. A flip then mirrors the frame (x -> side - x) and renumbers
the 68 landmarks with :data:`MIRRORED_LANDMARKS`, so that index 36 is still the eye corner on the image's
left (the mesh flows and mouth crops read the points by index). Images are resampled with
``cv2.warpAffine`` (bilinear, reflected border); landmarks get the same matrix.

Randomness comes from torch's RNG, so the DataLoader's per-worker seeding and ``seed_everything`` apply.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from eapc_lightning.constants import CANONICAL_FACE_SIZE, NUM_LANDMARKS


def _mirror_pairs() -> list[tuple[int, int]]:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    return pairs


def _mirror_permutation() -> tuple[int, ...]:
    order = list(range(NUM_LANDMARKS))
    for left, right in _mirror_pairs():
        order[left], order[right] = right, left
    return tuple(order)


# iBUG-68 index of each point's mirror image: after a horizontal flip, point i is the flipped point
# MIRRORED_LANDMARKS[i] (the jaw, brows, nostrils, eyes and lips swap sides; the centre line stays).
MIRRORED_LANDMARKS = _mirror_permutation()


@dataclass(frozen=True)
class AugmentParams:
    """One draw of :class:`FaceAugmentation`; see the module docstring for the geometry."""

    crop_scale: float = 1.0  # crop side / frame side (> 1 zooms out)
    shift: tuple[float, float] = (0.0, 0.0)  # crop centre offset (x, y), fraction of the crop side
    rotation: float = 0.0  # degrees
    flip: bool = False
    hue: float = 0.0  # degrees added to the hue
    saturation: tuple[float, float] = (1.0, 0.0)  # s -> gain * s + offset (s in [0, 1])
    value: tuple[float, float] = (1.0, 0.0)  # v -> gain * v + offset (v in [0, 1])

    @property
    def moves_pixels(self) -> bool:
        return self.crop_scale != 1.0 or self.shift != (0.0, 0.0) or self.rotation != 0.0 or self.flip

    @property
    def changes_colours(self) -> bool:
        return self.hue != 0.0 or self.saturation != (1.0, 0.0) or self.value != (1.0, 0.0)

    def matrix(self, side: float) -> np.ndarray:
        """(3, 3) map of continuous coordinates (OpenCV pixel + 0.5) of a ``side`` x ``side`` frame."""
        centre = side * (0.5 + self.crop_scale * np.asarray(self.shift, np.float64))
        angle = math.radians(self.rotation)
        cos, sin = math.cos(angle) / self.crop_scale, math.sin(angle) / self.crop_scale
        linear = np.array([[cos, -sin], [sin, cos]])
        offset = np.array([side / 2, side / 2]) - linear @ centre
        if self.flip:  # x -> side - x after the crop
            linear[0] *= -1
            offset[0] = side - offset[0]
        return np.array([[*linear[0], offset[0]], [*linear[1], offset[1]], [0.0, 0.0, 1.0]])

    def opencv_matrix(self, side: int) -> np.ndarray:
        """(2, 3) ``cv2.warpAffine`` matrix (OpenCV pixel coordinates) of :meth:`matrix`."""
        to_continuous = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        to_pixels = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
        return (to_pixels @ self.matrix(side) @ to_continuous)[:2]

    def transform_landmarks(self, landmarks: np.ndarray, side: float = CANONICAL_FACE_SIZE) -> np.ndarray:
        """(..., 68, 2) points in continuous coordinates of a ``side`` frame -> their augmented positions."""
        points = np.asarray(landmarks, np.float64)
        matrix = self.matrix(side)
        moved = points @ matrix[:2, :2].T + matrix[:2, 2]
        if self.flip:
            moved = moved[..., list(MIRRORED_LANDMARKS), :]
        return moved.astype(np.float32)

    def warp_images(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> the same frames cropped (bilinear, reflected border)."""
        side = images.shape[1]
        if images.shape[2] != side:
            raise ValueError(f"expected square frames, got {images.shape[1:3]}")
        matrix = self.opencv_matrix(side)
        return np.stack(
            [
                cv2.warpAffine(
                    image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
                )
                for image in images
            ]
        )

    def jitter_colours(self, images: np.ndarray) -> np.ndarray:
        """(..., 3) RGB uint8 -> hue shifted, saturation and value scaled and offset (HSV, clipped)."""
        shape = images.shape
        rgb = np.ascontiguousarray(images, np.float32).reshape(-1, shape[-2], 3) / 255.0
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # H in [0, 360), S and V in [0, 1]
        hsv[..., 0] = np.mod(hsv[..., 0] + self.hue, 360.0)
        hsv[..., 1] = np.clip(hsv[..., 1] * self.saturation[0] + self.saturation[1], 0.0, 1.0)
        hsv[..., 2] = np.clip(hsv[..., 2] * self.value[0] + self.value[1], 0.0, 1.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8).reshape(shape)

    def __call__(self, faces: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces (N, S, S, 3) uint8 at any side S and their landmarks (N, 68, 2) in the canonical 256 frame."""
        if self.moves_pixels:
            faces = self.warp_images(faces)
            landmarks = self.transform_landmarks(landmarks)
        if self.changes_colours:
            faces = self.jitter_colours(faces)
        return faces, landmarks


def _range(name: str, values, low: float = -math.inf) -> tuple[float, float]:
    pair = tuple(float(v) for v in values)
    if len(pair) != 2 or not pair[0] <= pair[1] or pair[0] < low:
        raise ValueError(f"{name} must be [low, high] with {low} <= low <= high, got {values}")
    return pair


@dataclass(frozen=True)
class FaceAugmentation:
    """Random :class:`AugmentParams`; every range is sampled uniformly. Defaults: few-shot vid2vid's face
    recipe (module docstring), no rotation."""

    crop_scale_range: tuple[float, float] = (0.8, 1.2)
    shift_fraction: float = 0.1  # crop centre offset up to this fraction of the crop side, per axis
    rotation_degrees: float = 0.0  # rotation up to +- this
    flip_probability: float = 0.5
    hue_degrees: float = 30.0 / 256.0 * 360.0  # hue shift up to +- this
    saturation_range: tuple[float, float] = (0.8, 1.2)  # saturation gain
    value_range: tuple[float, float] = (0.8, 1.2)  # value (brightness) gain
    colour_offset: float = 10.0 / 255.0  # saturation and value offsets up to +- this

    def __post_init__(self):
        object.__setattr__(self, "crop_scale_range", _range("crop_scale_range", self.crop_scale_range))
        object.__setattr__(self, "saturation_range", _range("saturation_range", self.saturation_range, 0.0))
        object.__setattr__(self, "value_range", _range("value_range", self.value_range, 0.0))
        if self.crop_scale_range[0] <= 0:
            raise ValueError(f"crop_scale_range must be positive, got {self.crop_scale_range}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("shift_fraction", "rotation_degrees", "hue_degrees", "colour_offset"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def draw(self, generator: torch.Generator | None = None) -> AugmentParams:
        """One set of parameters from torch's RNG (``generator`` or the global one)."""
        u = torch.rand(10, generator=generator, dtype=torch.float64).tolist()

        def between(low: float, high: float, x: float) -> float:
            return low + (high - low) * x

        def symmetric(limit: float, x: float) -> float:
            return limit * (2 * x - 1)

        return AugmentParams(
            crop_scale=between(*self.crop_scale_range, u[0]),
            shift=(symmetric(self.shift_fraction, u[1]), symmetric(self.shift_fraction, u[2])),
            rotation=symmetric(self.rotation_degrees, u[3]),
            flip=u[4] < self.flip_probability,
            hue=symmetric(self.hue_degrees, u[5]),
            saturation=(between(*self.saturation_range, u[6]), symmetric(self.colour_offset, u[7])),
            value=(between(*self.value_range, u[8]), symmetric(self.colour_offset, u[9])),
        )


# few-shot vid2vid's face training augmentation (the DataModule's defaults once ``augment`` is on)
FEW_SHOT_VID2VID_FACE = FaceAugmentation()
