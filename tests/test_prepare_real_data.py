"""prepare on real talking-face clips nobody on this project made (skipped where the media are absent)."""

import numpy as np
import pytest

from eapc_lightning.audio import load_audio
from eapc_lightning.data.cache import load_clip
from eapc_lightning.prepare.run import prepare_dataset
from eapc_lightning.prepare.video import probe_video

CROP = 64
VOXCELEB_CLIPS = 3  # the first three by name: 00002, 00010, 00015 (406 frames); all 14 take ~1 min


@pytest.mark.parametrize("folder, limit", [("voxceleb2", VOXCELEB_CLIPS), ("hdtf", None)])
def test_folder_dataset_landmarks_on_every_frame(shared_data, tmp_path, folder, limit):
    root = shared_data / folder
    summary = prepare_dataset("folder", root, tmp_path / "cache", crop_size=CROP, limit=limit)
    expected = VOXCELEB_CLIPS if limit else 1
    assert summary["counts"] == {"ok": expected, "skipped": 0, "failed": 0}
    for record in summary["items"]:
        [name] = record["clips"]
        clip = load_clip(tmp_path / "cache/clips" / f"{name}.npz")
        source = root / f"{name}.mp4"
        info = probe_video(source)
        frames = info.source_frames  # these sources are 25 fps already: one cached frame per source frame
        assert info.fps == 25 and clip.num_frames == frames and record["warnings"] == []
        arrays = clip.arrays
        assert arrays["landmarks"].shape == arrays["landmarks_raw"].shape == (frames, 68, 2)
        assert np.isfinite(arrays["landmarks"]).all()
        assert arrays["detected"].mean() > 0.95  # real faces: (almost) every frame detected
        raw = arrays["landmarks_raw"]
        assert (
            (raw >= -5).all()
            and (raw[..., 0] <= info.width + 5).all()
            and (raw[..., 1] <= info.height + 5).all()
        )
        # audio features have one row per video frame, and the audio covers the video
        assert arrays["mfcc"].shape == (frames, 28, 12) and arrays["llf"].shape == (frames, 25)
        assert len(load_audio(source)) >= (frames - 1) * 640
        # aligned: the mouth sits below the eyes, inside the canonical 256 frame
        mean = arrays["landmarks"].mean(axis=0)
        assert mean[36:48, 1].mean() < mean[48:68, 1].mean() and (0 < mean).all() and (mean < 256).all()
        assert clip.faces([0, frames - 1]).shape == (2, CROP, CROP, 3)


def test_mead_crops_without_audio_fail_per_clip(shared_data, tmp_path):
    summary = prepare_dataset("mead", shared_data / "mead_crops", tmp_path / "cache")
    assert summary["counts"] == {"ok": 0, "skipped": 0, "failed": 24}
    for record in summary["items"]:
        assert "no audio" in record["reason"] and record["source_video"] in record["reason"]
        speaker, view, emotion, _, level, clip = record["item"].split("_")
        assert (record["speaker"], record["emotion"], record["level"]) == (speaker, emotion, int(level))
    assert {record["speaker"] for record in summary["items"]} == {"M030", "W009", "W011"}
    assert len({record["emotion"] for record in summary["items"]}) == 8
    assert not list((tmp_path / "cache/clips").iterdir())
