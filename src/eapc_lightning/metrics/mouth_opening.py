"""Mouth opening over time: the inner-lip gap of iBUG-68 landmarks and how a prediction follows it.

The inner-lip gap of a frame is the mean vertical distance between the upper inner lip points 61, 62, 63
and the lower inner lip points opposite them, 67, 66, 65 (``y_lower - y_upper``, image y pointing down,
so it grows as the mouth opens and may dip slightly below zero when the lips press together). In the
canonical 256 x 256 frame it is in pixels. Head motion does not change it much, since it is a difference
of points of the same frame.

Per clip, :func:`mouth_opening_stats` compares the predicted and true gap sequences: their Pearson
correlation over frames (does the mouth open when the speaker's does), the ratio of their standard
deviations (does it open as much) and the range of each.
"""

from dataclasses import dataclass

import numpy as np

UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (67, 66, 65)


def inner_lip_gap(landmarks) -> np.ndarray:
    """``(..., 68, 2)`` landmarks -> ``(...)`` inner-lip gap, float64."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2:] != (68, 2):
        raise ValueError(f"expected landmarks of shape (..., 68, 2), got {points.shape}")
    upper = points[..., UPPER_INNER_LIP, 1]
    lower = points[..., LOWER_INNER_LIP, 1]
    return (lower - upper).mean(axis=-1)


def pearson(a, b) -> float | None:
    """Pearson correlation of two equally long 1-D sequences; ``None`` when either does not vary."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"sequences differ in length: {x.size} and {y.size}")
    if x.size < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    if dx.std() <= 1e-12 or dy.std() <= 1e-12:
        return None
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float(np.clip((dx * dy).sum() / denominator, -1.0, 1.0))


@dataclass(frozen=True)
class MouthOpening:
    """How one clip's predicted inner-lip gap follows the true one (gaps in landmark pixels)."""

    r: float | None  # Pearson correlation over frames; None when either gap is constant
    std_ratio: float | None  # std(predicted gap) / std(true gap); None when the true gap is constant
    predicted_min: float
    predicted_max: float
    true_min: float
    true_max: float

    @property
    def predicted_range(self) -> float:
        return self.predicted_max - self.predicted_min

    @property
    def true_range(self) -> float:
        return self.true_max - self.true_min


def mouth_opening_stats(predicted, target) -> MouthOpening:
    """Compare ``(T, 68, 2)`` predicted and true landmarks of one clip (T >= 1)."""
    predicted_gap, true_gap = inner_lip_gap(predicted), inner_lip_gap(target)
    if predicted_gap.shape != true_gap.shape or predicted_gap.ndim != 1 or predicted_gap.size == 0:
        raise ValueError(
            f"expected two (T, 68, 2) sequences of the same T >= 1, got {np.shape(predicted)} and "
            f"{np.shape(target)}"
        )
    true_std = float(true_gap.std())
    return MouthOpening(
        r=pearson(predicted_gap, true_gap),
        std_ratio=float(predicted_gap.std()) / true_std if true_std > 1e-12 else None,
        predicted_min=float(predicted_gap.min()),
        predicted_max=float(predicted_gap.max()),
        true_min=float(true_gap.min()),
        true_max=float(true_gap.max()),
    )


@dataclass(frozen=True)
class MouthOpeningSummary:
    """Means over clips of :class:`MouthOpening` (each mean over the clips where the value is defined)."""

    clips: int
    mean_r: float | None
    clips_r_above: int  # clips with r above ``threshold``
    threshold: float
    mean_std_ratio: float | None
    mean_predicted_range: float | None
    mean_true_range: float | None


def summarise(stats: list[MouthOpening], threshold: float = 0.5) -> MouthOpeningSummary:
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    return MouthOpeningSummary(
        clips=len(stats),
        mean_r=mean(s.r for s in stats),
        clips_r_above=sum(1 for s in stats if s.r is not None and s.r > threshold),
        threshold=threshold,
        mean_std_ratio=mean(s.std_ratio for s in stats),
        mean_predicted_range=mean(s.predicted_range for s in stats),
        mean_true_range=mean(s.true_range for s in stats),
    )
