"""Per-clip metric sums, their averages over clips under a protocol, and bootstrap confidence intervals.

Every metric of a clip is kept as a sum of per-frame (or per-point per-frame) terms and their count, so
clips combine exactly: ``pooled`` divides the summed sums by the summed counts (every scored term weighs
the same), ``per_clip`` averages the clips' own means. A 95% interval resamples the clips with
replacement (seeded) and takes the 2.5th and 97.5th percentiles of the statistic over the resamples.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from eapc_lightning.constants import MOUTH, NUM_LANDMARKS
from eapc_lightning.metrics.landmark import point_distances, velocity_differences

LANDMARK_METRICS = ("M-LD", "M-LVD", "F-LD", "F-LVD")
REGIONS = (("M", list(MOUTH)), ("F", list(range(NUM_LANDMARKS))))
BOOTSTRAP_DRAWS = 1000


@dataclass
class Scores:
    """Sums of metric terms and their counts, by metric name."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add_terms(self, name: str, terms) -> None:
        terms = torch.as_tensor(terms, dtype=torch.float64)
        self.sums[name] = self.sums.get(name, 0.0) + float(terms.sum())
        self.counts[name] = self.counts.get(name, 0) + int(terms.numel())

    def add_landmarks(
        self, prediction: np.ndarray, target: np.ndarray, found: np.ndarray, region_centroid: bool
    ) -> None:
        """M-LD, M-LVD, F-LD, F-LVD terms of two ``(T, 68, 2)`` sequences over the frames where ``found``
        (velocities only between consecutive found frames).

        ``region_centroid``: LD moves each region's points to their own centroid first and LVD uses the
        points as they are (the public EAT definitions); otherwise both use the points as given (already
        aligned by the caller).
        """
        prediction = torch.as_tensor(np.nan_to_num(prediction), dtype=torch.float64)
        target = torch.as_tensor(np.nan_to_num(target), dtype=torch.float64)
        found = torch.as_tensor(found, dtype=torch.bool)
        pairs = found[1:] & found[:-1]
        for region, index in REGIONS:
            p, t = prediction[:, index], target[:, index]
            if region_centroid:
                centred_p, centred_t = p - p.mean(dim=-2, keepdim=True), t - t.mean(dim=-2, keepdim=True)
            else:
                centred_p, centred_t = p, t
            self.add_terms(f"{region}-LD", point_distances(centred_p, centred_t)[found])
            self.add_terms(f"{region}-LVD", velocity_differences(p, t)[pairs])

    def merge(self, other: "Scores") -> None:
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + other.counts[name]

    def value(self, name: str) -> float | None:
        count = self.counts.get(name, 0)
        return self.sums[name] / count if count else None


def _arrays(clips: list[Scores], name: str) -> tuple[np.ndarray, np.ndarray]:
    sums = np.array([clip.sums.get(name, 0.0) for clip in clips], np.float64)
    counts = np.array([clip.counts.get(name, 0) for clip in clips], np.float64)
    return sums, counts


def _statistic(sums: np.ndarray, counts: np.ndarray, average: str) -> np.ndarray:
    """The average over the last axis (clips) of one or many resamples."""
    if average == "pooled":
        total = counts.sum(axis=-1)
        return np.divide(sums.sum(axis=-1), total, out=np.full(total.shape, np.nan), where=total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    kept = np.isfinite(means)
    number = kept.sum(axis=-1)
    return np.divide(
        np.where(kept, means, 0).sum(axis=-1), number, out=np.full(number.shape, np.nan), where=number > 0
    )


def average(clips: list[Scores], name: str, how: str) -> float | None:
    """``name`` over ``clips``: ``pooled`` or ``per_clip`` (clips without terms are left out)."""
    if not clips:
        return None
    value = float(_statistic(*_arrays(clips, name), how))
    return value if np.isfinite(value) else None


def bootstrap_interval(
    clips: list[Scores], name: str, how: str, seed: int = 0, draws: int = BOOTSTRAP_DRAWS
) -> tuple[float, float] | None:
    """95% percentile interval of :func:`average` over ``draws`` resamples of the clips (seeded)."""
    sums, counts = _arrays(clips, name)
    if len(clips) < 2 or counts.sum() == 0:
        return None
    picks = np.random.default_rng(seed).integers(0, len(clips), size=(draws, len(clips)))
    values = _statistic(sums[picks], counts[picks], how)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
