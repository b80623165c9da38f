"""Per-coefficient statistics of the audio features over the training split, used to standardise them.

MFCC statistics are over the 12 coefficients (every row of every frame's 28x12 window counts), LLF
statistics over the 25 features; both are over all frames of all training clips (docs/design.md,
'Audio features': "Standardisation uses the training split's statistics"). Standard deviations are
population ones, floored so a constant feature does not divide by zero.

The statistics of a given set of training clips are stored under ``CACHE/feature_stats/<digest>.json``,
the digest covering each clip's id, file size and modification time, so a later run on the same split
reads them instead of passing over the whole split again, and a re-prepared clip invalidates them.
"""

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class FeatureStats:
    """Means and standard deviations (float32 arrays of 12 and 25 values) that standardise the features."""

    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    llf_mean: np.ndarray
    llf_std: np.ndarray

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
        """From a dict of arrays, tensors or lists with the keys of STAT_KEYS (checked for shape)."""
        arrays = {key: np.asarray(_to_numpy(values[key]), dtype=np.float32) for key in STAT_KEYS}
        for key, width in zip(STAT_KEYS, (MFCC_WIDTH, MFCC_WIDTH, LLF_WIDTH, LLF_WIDTH), strict=True):
            if arrays[key].shape != (width,):
                raise ValueError(
                    f"feature statistic {key} must have shape ({width},), got {arrays[key].shape}"
                )
        return cls(**arrays)

    def floored(self, std_floor: float) -> "FeatureStats":
        return FeatureStats(
            self.mfcc_mean,
            np.maximum(self.mfcc_std, std_floor).astype(np.float32),
            self.llf_mean,
            np.maximum(self.llf_std, std_floor).astype(np.float32),
        )

    def as_tensors(self) -> dict[str, torch.Tensor]:
        return {key: torch.from_numpy(np.array(getattr(self, key), dtype=np.float32)) for key in STAT_KEYS}

    def standardize_mfcc(self, mfcc: np.ndarray) -> np.ndarray:
        return ((mfcc - self.mfcc_mean) / self.mfcc_std).astype(np.float32)

    def standardize_llf(self, llf: np.ndarray) -> np.ndarray:
        return ((llf - self.llf_mean) / self.llf_std).astype(np.float32)


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
