"""Small prepared caches of random arrays, for testing the data plumbing (splits, windows, statistics).

The arrays are random: these caches exercise indexing, splitting, windowing and standardisation only,
never learning. Every clip gets its own offsets so per-split statistics differ measurably.
"""

from pathlib import Path

import numpy as np

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.constants import EMOTIONS
from eapc_lightning.data.cache import save_clip


def fake_clip_arrays(rng: np.random.Generator, num_frames: int, offset: float) -> dict[str, np.ndarray]:
    landmarks = rng.uniform(40.0, 216.0, size=(num_frames, 68, 2)).astype(np.float32)
    return {
        "mfcc": (rng.normal(size=(num_frames, 28, 12)) * 3.0 + offset).astype(np.float32),
        "llf": (rng.normal(size=(num_frames, 25)) * 0.5 - offset).astype(np.float32),
        "landmarks": landmarks,
        "landmarks_raw": landmarks * 2.0,
        "detected": np.ones(num_frames, dtype=bool),
        "align_matrix": np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], dtype=np.float32),
        "faces_jpeg": np.zeros(0, dtype=np.uint8),
        "faces_offsets": np.zeros(num_frames + 1, dtype=np.int64),
    }


def write_fake_cache(
    cache_dir: Path,
    *,
    speakers: tuple[str, ...] = ("M001", "M002", "M003", "W001", "W002", "W003"),
    clips_per_speaker: int = 3,
    frame_counts: tuple[int, ...] = (20, 31, 47, 60, 25, 38),
    seed: int = 0,
    dataset: str = "mead",
    labelled: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Write a cache of random clips; returns {clip_id: arrays} for independent checks."""
    rng = np.random.default_rng(seed)
    written = {}
    for s, speaker in enumerate(speakers):
        for c in range(clips_per_speaker):
            k = s * clips_per_speaker + c
            num_frames = frame_counts[k % len(frame_counts)]
            emotion = EMOTIONS[k % len(EMOTIONS)] if labelled else None
            level = 1 + k % 3 if labelled else None
            clip_id = f"{speaker}_{emotion or 'none'}_{c:03d}"
            arrays = fake_clip_arrays(rng, num_frames, offset=float(s) - 2.0 + 0.3 * c)
            meta = {
                "audio_features": AudioFeatureConfig().to_dict(),
                "clip_id": clip_id,
                "dataset": dataset,
                "speaker": speaker,
                "emotion": emotion,
                "level": level,
                "num_frames": num_frames,
            }
            save_clip(cache_dir / "clips" / f"{clip_id}.npz", arrays, meta)
            written[clip_id] = arrays
    return written
