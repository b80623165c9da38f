"""Random face-shape changes of training windows: new identities for the audio-to-landmark stage.

The embedded synthetic speakers are variants of one photograph, so their landmark geometry differs by a
few per cent; a model trained on them reads any real face's reference landmarks as out of range and
turns that into offsets (a mouth pushed open or crossed shut for a whole clip). A
:class:`FaceShapeChange` moves the points of one window, reference and targets alike, as a different
face would place them: the mouth wider or narrower, taller or flatter and higher or lower on the face,
the eyes further apart, the jaw wider, then the whole face scaled, turned and shifted. Every change is
a function of the point's position anchored on the *reference* frame, so a motion (the jaw dropping,
the lips spreading) is carried over with the face, scaled as that face would scale it.
"""

from dataclasses import dataclass

import numpy as np

from eapc_lightning.constants import CANONICAL_FACE_SIZE, JAW, LEFT_EYE, MOUTH, RIGHT_EYE


@dataclass(frozen=True)
class FaceShapeChange:
    mouth_width: float  # scale about the reference mouth centre
    mouth_height: float
    mouth_shift: float  # pixels, downwards
    eye_spread: float  # scale of each eye's distance from the face's vertical axis
    jaw_width: float  # scale of the jaw line's distance from the vertical axis
    scale: float  # whole face, about the canonical frame's centre
    rotation: float  # degrees
    shift: tuple[float, float]  # pixels

    @classmethod
    def identity(cls) -> "FaceShapeChange":
        return cls(1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, (0.0, 0.0))


def draw_shape_change(rng: np.random.Generator, strength: float) -> FaceShapeChange:
    """A random change; ``strength`` 1 spans roughly the spread of adult faces in an aligned frame."""

    def around_one(spread: float) -> float:
        return float(np.exp(rng.uniform(-spread, spread) * strength))

    return FaceShapeChange(
        mouth_width=around_one(0.15),
        mouth_height=around_one(0.2),
        mouth_shift=float(rng.uniform(-5.0, 5.0) * strength),
        eye_spread=around_one(0.08),
        jaw_width=around_one(0.1),
        scale=around_one(0.08),
        rotation=float(rng.uniform(-5.0, 5.0) * strength),
        shift=(float(rng.uniform(-8, 8) * strength), float(rng.uniform(-8, 8) * strength)),
    )


def apply_shape_change(points: np.ndarray, reference: np.ndarray, change: FaceShapeChange) -> np.ndarray:
    """``points`` (..., 68, 2) moved by ``change``, anchored on ``reference`` (68, 2); float32."""
    out = np.array(points, dtype=np.float64)
    mouth, jaw = list(MOUTH), list(JAW)
    eyes = list(RIGHT_EYE) + list(LEFT_EYE)
    axis_x = reference[:, 0].mean()
    mouth_centre = reference[mouth].mean(axis=0)
    out[..., mouth, 0] = mouth_centre[0] + (out[..., mouth, 0] - mouth_centre[0]) * change.mouth_width
    out[..., mouth, 1] = (
        mouth_centre[1] + (out[..., mouth, 1] - mouth_centre[1]) * change.mouth_height + change.mouth_shift
    )
    out[..., eyes, 0] = axis_x + (out[..., eyes, 0] - axis_x) * change.eye_spread
    out[..., jaw, 0] = axis_x + (out[..., jaw, 0] - axis_x) * change.jaw_width
    angle = np.deg2rad(change.rotation)
    rotation = change.scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = CANONICAL_FACE_SIZE / 2
    out = (out - centre) @ rotation.T + centre + np.asarray(change.shift)
    return out.astype(np.float32)
