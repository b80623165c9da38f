"""The embedded default end to end: `eapc synth` output prepared as MEAD prepares every clip, and the
cached (re-detected) landmarks follow the generator's own targets."""

from pathlib import Path

import numpy as np

from eapc_lightning.constants import MOUTH
from eapc_lightning.data.cache import load_clip
from eapc_lightning.prepare.run import prepare_dataset
from eapc_lightning.synth import generate_dataset

MOUTH_TOLERANCE_PX = 3.0  # mean over mouth points and frames, pixels of the 256x256 synthetic video


def test_prepare_as_mead_takes_every_synthetic_clip_and_matches_its_targets(tmp_path):
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    records = generate_dataset(raw, preset="tiny", seed=0, workers=1)
    summary = prepare_dataset("mead", raw, cache, workers=1, crop_size=64)
    assert summary["counts"]["ok"] == len(records) and summary["counts"]["failed"] == 0

    clips = {path.stem: path for path in (cache / "clips").glob("*.npz")}
    assert len(clips) == len(records)
    errors = []
    for record in records:
        speaker, emotion = record["speaker"], record["emotion"]
        level, number = record["level"], Path(record["video"]).stem
        clip = load_clip(clips[f"{speaker}_front_{emotion}_level_{level}_{number}"])
        assert clip.meta["speaker"] == speaker and clip.meta["emotion"] == emotion
        assert clip.meta["level"] == level
        targets = np.load(record["landmarks"])
        detected = clip.arrays["landmarks_raw"]
        assert detected.shape == targets.shape and clip.arrays["detected"].all()
        assert clip.arrays["mfcc"].shape[0] == clip.arrays["llf"].shape[0] == len(targets)
        errors.append(np.linalg.norm(detected[:, MOUTH] - targets[:, MOUTH], axis=-1).ravel())
    mean_error = float(np.concatenate(errors).mean())
    assert mean_error < MOUTH_TOLERANCE_PX, f"mean mouth error {mean_error:.2f} px"
