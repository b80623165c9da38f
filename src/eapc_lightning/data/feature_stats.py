"""Per-coefficient statistics of the audio features over the training split, used to standardise them.

MFCC statistics are over the 12 coefficients (every row of every frame's 28x12 window counts), LLF
statistics over the 25 features; both are over all frames of all training clips (docs/design.md,
'Audio features': "Standardisation uses the training split's statistics"). Standard deviations are
population ones, floored so a constant feature does not divide by zero.

With ``utterance_frames`` > 0 each utterance is standardised by its own statistics instead (per-utterance
normalisation, :meth:`FeatureStats.standardize`): frame t by the mean and variance of frames 0..t, each
pooled with the training split's as a prior worth ``utterance_frames`` frames, so a recording's level,
channel and voice are taken out as it goes, with no look-ahead, and a stream cut anywhere gives the
frames one pass gives (the running sums travel in :class:`UtteranceMoments`).

The statistics of a given set of training clips are stored under ``CACHE/feature_stats/<digest>.json``,
the digest covering each clip's id, file size and modification time, so a later run on the same split
reads them instead of passing over the whole split again, and a re-prepared clip invalidates them.
"""

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from eapc_lightning.data.cache import load_clip
from eapc_lightning.data.index import ClipRecord
from eapc_lightning.fileio import atomic_write_json

log = logging.getLogger(__name__)

MFCC_WIDTH = 12
LLF_WIDTH = 25
STATS_FOLDER = "feature_stats"
STAT_KEYS = ("mfcc_mean", "mfcc_std", "llf_mean", "llf_std")
UTTERANCE_KEY = "utterance_frames"


class UtteranceMoments(NamedTuple):
    """Running sums over the frames of one utterance seen so far (float64), carried from chunk to chunk."""

    frames: int
    mfcc_sum: np.ndarray  # (12,) sum over frames of each frame's mean over its 28 window rows
    mfcc_square_sum: np.ndarray  # (12,) the same for the squares
    llf_sum: np.ndarray  # (25,)
    llf_square_sum: np.ndarray  # (25,)

    @classmethod
    def empty(cls) -> "UtteranceMoments":
        return cls(0, np.zeros(MFCC_WIDTH), np.zeros(MFCC_WIDTH), np.zeros(LLF_WIDTH), np.zeros(LLF_WIDTH))


@dataclass(frozen=True)
class FeatureStats:
    """Means and standard deviations (float32 arrays of 12 and 25 values) that standardise the features.

    ``utterance_frames``: 0 standardises every frame with these statistics; above 0, by the running
    statistics of its own utterance with these as a prior of that many frames (the module docstring).
    """

    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    llf_mean: np.ndarray
    llf_std: np.ndarray
    utterance_frames: float = 0.0

    def __post_init__(self):
        if not np.isfinite(self.utterance_frames) or self.utterance_frames < 0:
            raise ValueError(f"utterance_frames must be a non-negative number, got {self.utterance_frames}")

    @classmethod
    def identity(cls) -> "FeatureStats":
        """Statistics that leave the features unchanged (``standardize: false``)."""
        return cls(
            np.zeros(MFCC_WIDTH, np.float32),
            np.ones(MFCC_WIDTH, np.float32),
            np.zeros(LLF_WIDTH, np.float32),
            np.ones(LLF_WIDTH, np.float32),
        )

    @classmethod
    def from_mapping(cls, values) -> "FeatureStats":
        """From a dict of arrays, tensors or lists with the keys of STAT_KEYS (checked for shape) and,
        optionally, ``utterance_frames`` (a number; 0 when absent)."""
        arrays = {key: np.asarray(_to_numpy(values[key]), dtype=np.float32) for key in STAT_KEYS}
        for key, width in zip(STAT_KEYS, (MFCC_WIDTH, MFCC_WIDTH, LLF_WIDTH, LLF_WIDTH), strict=True):
            if arrays[key].shape != (width,):
                raise ValueError(
                    f"feature statistic {key} must have shape ({width},), got {arrays[key].shape}"
                )
        utterance_frames = float(_to_numpy(values.get(UTTERANCE_KEY, 0.0)))
        return cls(**arrays, utterance_frames=utterance_frames)

    def floored(self, std_floor: float) -> "FeatureStats":
        return replace(
            self,
            mfcc_std=np.maximum(self.mfcc_std, std_floor).astype(np.float32),
            llf_std=np.maximum(self.llf_std, std_floor).astype(np.float32),
        )

    def with_utterance_frames(self, utterance_frames: float) -> "FeatureStats":
        return replace(self, utterance_frames=float(utterance_frames))

    def as_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {key: torch.from_numpy(np.array(getattr(self, key), dtype=np.float32)) for key in STAT_KEYS}
        return tensors | {UTTERANCE_KEY: torch.tensor(self.utterance_frames, dtype=torch.float32)}

    def standardize(
        self, mfcc: np.ndarray, llf: np.ndarray, moments: UtteranceMoments | None = None
    ) -> tuple[np.ndarray, np.ndarray, UtteranceMoments]:
        """Standardised float32 copies of ``mfcc`` (T, 28, 12) and ``llf`` (T, 25), and the moments after them.

        ``moments`` are those of the utterance's earlier frames (None: these are its first); with
        ``utterance_frames`` 0 they are passed through unchanged.
        """
        moments = UtteranceMoments.empty() if moments is None else moments
        if self.utterance_frames == 0:
            return (
                ((mfcc - self.mfcc_mean) / self.mfcc_std).astype(np.float32),
                ((llf - self.llf_mean) / self.llf_std).astype(np.float32),
                moments,
            )
        mfcc = np.asarray(mfcc, dtype=np.float64)
        llf = np.asarray(llf, dtype=np.float64)
        frames = moments.frames + np.arange(1, mfcc.shape[0] + 1)
        mfcc_mean, mfcc_std, mfcc_sum, mfcc_square_sum = self._running(
            mfcc.mean(axis=1), (mfcc**2).mean(axis=1), frames, moments.mfcc_sum, moments.mfcc_square_sum,
            self.mfcc_mean, self.mfcc_std,
        )  # fmt: skip
        llf_mean, llf_std, llf_sum, llf_square_sum = self._running(
            llf, llf**2, frames, moments.llf_sum, moments.llf_square_sum, self.llf_mean, self.llf_std
        )
        after = UtteranceMoments(
            moments.frames + mfcc.shape[0], mfcc_sum, mfcc_square_sum, llf_sum, llf_square_sum
        )
        return (
            ((mfcc - mfcc_mean[:, None]) / mfcc_std[:, None]).astype(np.float32),
            ((llf - llf_mean) / llf_std).astype(np.float32),
            after,
        )

    def _running(self, values, squares, frames, value_sum, square_sum, prior_mean, prior_std):
        """Per-frame shrunk mean and standard deviation of frames 0..t, and the sums after the last frame.

        Mean: the prior mean, weighing ``utterance_frames`` frames, pooled with the utterance's frames.
        Variance: the prior variance, weighing as much, pooled with the utterance's variance about its own
        mean (so a recording far from the training level is not also made to look more spread out).
        """
        prior = self.utterance_frames
        sums = value_sum + np.cumsum(values, axis=0)
        square_sums = square_sum + np.cumsum(squares, axis=0)
        counts = frames[:, None]
        mean = (prior * prior_mean.astype(np.float64) + sums) / (prior + counts)
        own_spread = square_sums - sums**2 / counts  # sum of squared deviations from the utterance mean
        variance = (prior * prior_std.astype(np.float64) ** 2 + own_spread) / (prior + counts)
        std = np.sqrt(np.maximum(variance, 1e-10))  # a constant feature stays finite
        if len(values) == 0:
            return mean, std, value_sum, square_sum
        return mean, std, sums[-1], square_sums[-1]


class RunningMoments:
    """Mean and population variance per column, merged chunk by chunk (Chan et al.'s pairwise update)."""

    def __init__(self, width: int):
        self.count = 0
        self.mean = np.zeros(width, np.float64)
        self.sum_sq_dev = np.zeros(width, np.float64)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1, self.mean.shape[0])
        added = values.shape[0]
        if added == 0:
            return
        chunk_mean = values.mean(axis=0)
        chunk_sum_sq_dev = ((values - chunk_mean) ** 2).sum(axis=0)
        total = self.count + added
        delta = chunk_mean - self.mean
        self.mean = self.mean + delta * (added / total)
        self.sum_sq_dev = self.sum_sq_dev + chunk_sum_sq_dev + delta**2 * (self.count * added / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.sum_sq_dev / max(self.count, 1))


def compute_feature_stats(records: Sequence[ClipRecord]) -> FeatureStats:
    """Raw (unfloored) statistics over every frame of the given clips."""
    if not records:
        raise ValueError("cannot compute feature statistics: the training split has no clips")
    mfcc, llf = RunningMoments(MFCC_WIDTH), RunningMoments(LLF_WIDTH)
    for record in records:
        arrays = load_clip(record.path, ("mfcc", "llf")).arrays
        mfcc.add(arrays["mfcc"])
        llf.add(arrays["llf"])
    return FeatureStats(
        mfcc.mean.astype(np.float32),
        mfcc.std.astype(np.float32),
        llf.mean.astype(np.float32),
        llf.std.astype(np.float32),
    )


def stats_digest(records: Sequence[ClipRecord]) -> str:
    digest = hashlib.sha1()
    for record in sorted(records, key=lambda r: r.clip_id):
        stat = Path(record.path).stat()
        digest.update(f"{record.clip_id}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def train_feature_stats(cache_dir: str | Path, records: Sequence[ClipRecord]) -> FeatureStats:
    """Raw statistics of the training clips, read from the cache folder when stored, else computed and stored."""
    path = Path(cache_dir) / STATS_FOLDER / f"{stats_digest(records)}.json"
    if path.is_file():
        try:
            return FeatureStats.from_mapping(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable feature statistics %s (%s); recomputing", path, error)
    stats = compute_feature_stats(records)
    payload = {key: getattr(stats, key).tolist() for key in STAT_KEYS} | {"num_clips": len(records)}
    try:
        atomic_write_json(path, payload)
    except OSError as error:
        log.warning("could not store feature statistics at %s (%s)", path, error)
    return stats


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value
