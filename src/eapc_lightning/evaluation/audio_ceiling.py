"""How much of a clip's mouth opening its audio features predict, learnt from the other clips of the same footage.

For a folder of real clips this answers what no synthetic-trained model can: is the frame-by-frame inner-lip
gap of these speakers predictable from the audio features at all? Each clip's frames become one row each:
the MFCC window (28 x 12) and the 25 LLFs, standardised per utterance (each column to zero mean and unit
variance over the clip); the true gap is standardised the same way. A ridge regression fitted on all other
clips predicts the held-out clip's gap, and the Pearson r between prediction and truth is that clip's
score. The mean over clips is a reference for the a2l model's mouth r on the same footage: a linear model
that has seen the footage itself.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eapc_lightning.data.cache import load_clip
from eapc_lightning.fileio import atomic_write_bytes
from eapc_lightning.metrics.mouth_opening import inner_lip_gap, pearson

RIDGE = 1e4  # in units of standardised frames; 1e3-1e4 scored best on the footage of docs/real_speech.md


@dataclass(frozen=True)
class AudioCeiling:
    clip_ids: tuple[str, ...]
    r: tuple[float, ...]  # leave-one-clip-out Pearson r per clip
    ridge: float

    @property
    def mean_r(self) -> float:
        return float(np.mean(self.r))

    def above(self, threshold: float = 0.5) -> int:
        return sum(value > threshold for value in self.r)


def _standardised(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-8)


def frame_rows(mfcc: np.ndarray, llf: np.ndarray) -> np.ndarray:
    """(T, 28 * 12 + 25) rows of one clip, each column standardised over the clip."""
    return _standardised(np.concatenate([mfcc.reshape(len(mfcc), -1), llf], axis=1))


def leave_one_clip_out_r(
    rows: Sequence[np.ndarray], gaps: Sequence[np.ndarray], ridge: float = RIDGE
) -> list[float]:
    """Per clip, r between its standardised gap and a ridge regression on the other clips' rows."""
    if len(rows) < 2:
        raise ValueError("leave-one-clip-out needs at least two clips")
    targets = [_standardised(gap) for gap in gaps]
    gram = sum(x.T @ x for x in rows)
    moment = sum(x.T @ y for x, y in zip(rows, targets, strict=True))
    scores = []
    for x, y in zip(rows, targets, strict=True):  # remove the held-out clip from the sums
        weights = np.linalg.solve(gram - x.T @ x + ridge * np.eye(x.shape[1]), moment - x.T @ y)
        r = pearson(x @ weights, y)
        scores.append(0.0 if r is None else r)
    return scores


def audio_ceiling(records, ridge: float = RIDGE) -> AudioCeiling:
    """The leave-one-clip-out scores of the cached clips ``records`` (ClipRecord)."""
    rows, gaps, ids = [], [], []
    for record in records:
        arrays = load_clip(record.path, ("mfcc", "llf", "landmarks")).arrays
        rows.append(frame_rows(arrays["mfcc"], arrays["llf"]))
        gaps.append(inner_lip_gap(arrays["landmarks"]))
        ids.append(record.clip_id)
    return AudioCeiling(tuple(ids), tuple(leave_one_clip_out_r(rows, gaps, ridge)), ridge)


def write_audio_ceiling(ceiling: AudioCeiling, out_dir: Path) -> Path:
    """``audio_ceiling.md`` (the mean and each clip) under ``out_dir``."""
    lines = [
        "## The audio features' own hold on the mouth",
        "",
        f"A ridge regression (lambda {ceiling.ridge:g}) from each frame's MFCC window and LLFs, standardised per "
        "clip, to its inner-lip gap, fitted on all other clips and scored on the held-out one "
        "(eapc_lightning.evaluation.audio_ceiling).",
        "",
        f"Mean r over {len(ceiling.r)} clips: **{ceiling.mean_r:.3f}**; clips above 0.5: {ceiling.above()}.",
        "",
        "| clip | r |",
        "|---|---|",
        *[f"| {clip} | {r:.3f} |" for clip, r in zip(ceiling.clip_ids, ceiling.r, strict=True)],
        "",
    ]
    path = Path(out_dir) / "audio_ceiling.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
