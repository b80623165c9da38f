"""What each of MEAD's eight emotions does to the synthetic voice and face, and how levels scale it.

Every emotion is a :class:`VoiceStyle` and a :class:`FaceStyle` at full intensity (level 3). Level
``n`` interpolates from neutral with intensity ``LEVEL_INTENSITY[n]``: multiplicative voice factors
geometrically, additive ones linearly, face action-unit weights linearly. The directions follow the
usual acoustic and facial descriptions of emotional speech (e.g. anger and happiness: higher, wider
pitch, louder, brighter, faster; sadness: lower, flatter, softer, darker, slower; surprise: high,
very wide pitch, raised brows, dropped jaw) and are exaggerated so that the classes stay separable
from short feature windows.
"""

from dataclasses import dataclass, fields

import numpy as np

from eapc_lightning.constants import EMOTIONS
from eapc_lightning.synth.face import EXPRESSION_UNITS

LEVEL_INTENSITY = {1: 0.4, 2: 0.7, 3: 1.0}


@dataclass(frozen=True)
class VoiceStyle:
    """Prosody and voice quality. ``pitch``, ``energy``, ``tempo``, ``articulation`` multiply the
    speaker's neutral values; ``pitch_range`` is the F0 excursion in semitones; ``tilt`` is the
    source spectral slope exponent (harmonic amplitude ~ frequency**-tilt, lower is brighter);
    ``breathiness`` the aspiration-noise share; ``jitter`` the relative F0 perturbation; ``rise`` the
    terminal F0 rise of each phrase in semitones."""

    pitch: float = 1.0
    pitch_range: float = 2.5
    energy: float = 1.0
    tempo: float = 1.0
    articulation: float = 1.0
    tilt: float = 1.0
    breathiness: float = 0.04
    jitter: float = 0.006
    rise: float = 0.0


_MULTIPLICATIVE = {"pitch", "energy", "tempo", "articulation"}


@dataclass(frozen=True)
class FaceStyle:
    """Static expression: weights of ``face.EXPRESSION_UNITS`` and a jaw-opening bias."""

    units: tuple[tuple[str, float], ...] = ()
    jaw_bias: float = 0.0

    def offsets(self) -> np.ndarray:
        """(68, 2) face-local offsets (units of the inter-ocular distance)."""
        out = np.zeros((68, 2))
        for name, weight in self.units:
            out += weight * EXPRESSION_UNITS[name]
        return out


VOICE_STYLES = {
    "neutral": VoiceStyle(),
    "angry": VoiceStyle(pitch=1.35, pitch_range=5.0, energy=2.3, tempo=1.15, articulation=1.15, tilt=0.65, jitter=0.012),
    "contempt": VoiceStyle(pitch=0.93, pitch_range=4.5, energy=0.85, tempo=0.82, articulation=0.8, tilt=1.05, breathiness=0.1),
    "disgusted": VoiceStyle(pitch=0.88, pitch_range=3.0, energy=1.0, tempo=0.78, articulation=0.85, tilt=1.15, breathiness=0.14, jitter=0.018),
    "fear": VoiceStyle(pitch=1.45, pitch_range=3.5, energy=0.75, tempo=1.3, articulation=0.85, tilt=0.95, breathiness=0.2, jitter=0.03),
    "happy": VoiceStyle(pitch=1.28, pitch_range=7.0, energy=1.55, tempo=1.1, articulation=1.1, tilt=0.8),
    "sad": VoiceStyle(pitch=0.84, pitch_range=1.2, energy=0.5, tempo=0.72, articulation=0.7, tilt=1.4, breathiness=0.22),
    "surprised": VoiceStyle(pitch=1.5, pitch_range=9.0, energy=1.4, tempo=0.95, articulation=1.2, tilt=0.85, rise=5.0),
}  # fmt: skip

FACE_STYLES = {
    "neutral": FaceStyle(),
    "angry": FaceStyle((("brow_lower", 1.0), ("eye_open", 0.4), ("lip_corner", -0.4), ("upper_lip_raise", 0.2))),
    "contempt": FaceStyle((("lip_corner_one_side", 1.0), ("eye_open", -0.35), ("brow_lower", 0.15))),
    "disgusted": FaceStyle((("upper_lip_raise", 1.0), ("brow_lower", 0.6), ("lip_corner", -0.5), ("eye_open", -0.6))),
    "fear": FaceStyle((("brow_raise", 0.6), ("brow_inner_raise", 1.0), ("eye_open", 1.0), ("lip_stretch", 1.0)), jaw_bias=0.05),
    "happy": FaceStyle((("lip_corner", 1.0), ("lip_stretch", 0.4), ("cheek_raise", 1.0), ("eye_open", -0.3))),
    "sad": FaceStyle((("brow_inner_raise", 1.0), ("lip_corner", -0.9), ("eye_open", -0.5))),
    "surprised": FaceStyle((("brow_raise", 1.0), ("eye_open", 1.2), ("lip_stretch", -0.3)), jaw_bias=0.22),
}  # fmt: skip

assert set(VOICE_STYLES) == set(FACE_STYLES) == set(EMOTIONS)


def level_intensity(level: int) -> float:
    if level not in LEVEL_INTENSITY:
        raise ValueError(f"emotion level must be one of {sorted(LEVEL_INTENSITY)}, got {level}")
    return LEVEL_INTENSITY[level]


def voice_style(emotion: str, level: int) -> VoiceStyle:
    """The voice of ``emotion`` at ``level``, interpolated from neutral."""
    intensity = level_intensity(level)
    neutral, full = VOICE_STYLES["neutral"], VOICE_STYLES[emotion]
    values = {}
    for field in fields(VoiceStyle):
        a, b = getattr(neutral, field.name), getattr(full, field.name)
        values[field.name] = (
            a * (b / a) ** intensity if field.name in _MULTIPLICATIVE else a + (b - a) * intensity
        )
    return VoiceStyle(**values)


def face_offsets(emotion: str, level: int) -> tuple[np.ndarray, float]:
    """(68, 2) face-local expression offsets and the jaw-opening bias of ``emotion`` at ``level``."""
    intensity = level_intensity(level)
    style = FACE_STYLES[emotion]
    return intensity * style.offsets(), intensity * style.jaw_bias
