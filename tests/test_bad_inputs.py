"""Bad inputs each fail their own item with a clear reason while the other items are prepared.

One folder dataset holds every kind of bad (and oddly encoded but good) clip next to a good one and is
prepared once; each test then reads its item from that run's summary.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from eapc_lightning.audio import load_audio
from eapc_lightning.data.cache import load_clip
from eapc_lightning.prepare.run import prepare_dataset
from helpers.prepare_media import RealMedia, noise_frames, write_clip

CROP = 64
FRAMES = 30  # 1.2 s at 25 fps


@pytest.fixture(scope="module")
def media(shared_data) -> RealMedia:
    return RealMedia(shared_data, size=160, seconds=2.0)


@pytest.fixture(scope="module")
def folder_run(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_folder")
    frames = media.frames[:FRAMES]
    speech = media.speech_at(16000, 1, FRAMES / 25)
    good = write_clip(root / "good.mp4", frames, 25, speech)
    (root / "zero_bytes.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is a text file, not a video\n" * 50)
    (root / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # index first ("faststart"): the cut file opens and decodes cleanly, but ends early
    faststart = write_clip(root.parent / "faststart.mp4", media.frames[:50], 25, speech, faststart=True)
    (root / "truncated_faststart.mp4").write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    write_clip(root / "no_audio.mp4", frames)
    write_clip(root / "short_audio.mp4", media.frames[:50], 25, media.speech_at(16000, 1, 1.0))
    write_clip(root / "no_face.mp4", noise_frames(FRAMES, 160), 25, speech)
    write_clip(root / "silent.mp4", frames, 25, np.zeros((1, 19200), np.float32))
    write_clip(root / "rate_8k_mono.mp4", frames, 25, media.speech_at(8000, 1, FRAMES / 25), 8000)
    write_clip(root / "rate_44k_mono.mp4", frames, 25, media.speech_at(44100, 1, FRAMES / 25), 44100)
    write_clip(root / "rate_48k_stereo.mp4", frames, 25, media.speech_at(48000, 2, FRAMES / 25), 48000)
    out = root.parent / f"{root.name}_cache"
    summary = prepare_dataset("folder", root, out, crop_size=CROP)
    return {"root": root, "out": out, "summary": summary, "records": {r["item"]: r for r in summary["items"]}}


def failure(run, item: str) -> str:
    record = run["records"][item]
    assert record["status"] == "failed", record
    assert record["clips"] == [] and not (run["out"] / "clips" / f"{item}.npz").exists()
    return record["reason"]


def test_the_batch_finishes_and_writes_its_summary(folder_run):
    summary = folder_run["summary"]
    assert summary["counts"] == {"ok": 5, "skipped": 0, "failed": 7}
    on_disk = json.loads(Path(summary["summary_path"]).read_text())
    assert on_disk["counts"] == summary["counts"] and len(on_disk["items"]) == 12
    assert folder_run["records"]["good"]["status"] == "ok"


def test_zero_byte_file(folder_run):
    reason = failure(folder_run, "zero_bytes")
    assert "zero_bytes.mp4" in reason and "empty (0 bytes)" in reason


def test_text_file_named_mp4(folder_run):
    reason = failure(folder_run, "text")
    assert "text.mp4" in reason and "not a readable video" in reason


def test_truncated_mp4(folder_run):
    reason = failure(folder_run, "truncated")
    assert "truncated.mp4" in reason and "not a readable video" in reason


def test_truncated_mp4_with_index_first(folder_run):
    reason = failure(folder_run, "truncated_faststart")
    # the index survives, so the damage shows while decoding: in the audio track (whose packets sit at the
    # cut end of the file) or in the video frame count, whichever stage reaches the missing data first
    assert "truncated_faststart.mp4" in reason
    assert "truncated or damaged: decoded" in reason or "cannot decode audio (InvalidDataError" in reason


def test_video_without_audio(folder_run):
    reason = failure(folder_run, "no_audio")
    assert "no_audio.mp4" in reason and "no audio" in reason


def test_video_with_no_face(folder_run):
    reason = failure(folder_run, "no_face")
    assert "no_face.mp4" in reason and reason.endswith("no face detected")


def test_silent_audio(folder_run):
    reason = failure(folder_run, "silent")
    assert "silent.mp4" in reason and "silent audio" in reason


def test_audio_shorter_than_video_truncates_with_a_warning(folder_run):
    record = folder_run["records"]["short_audio"]
    assert record["status"] == "ok"
    clip = load_clip(folder_run["out"] / "clips" / "short_audio.npz")
    # 50 video frames, 1.0 s of audio (+ AAC priming, less than a frame): 25 frames remain
    assert clip.num_frames == 25 == len(clip.arrays["landmarks"]) == len(clip.arrays["mfcc"])
    assert any("shorter than video (50 frames)" in w for w in record["warnings"])
    assert clip.meta["warnings"] == record["warnings"]


@pytest.mark.parametrize("item", ["rate_8k_mono", "rate_44k_mono", "rate_48k_stereo"])
def test_other_sample_rates_and_layouts(folder_run, item):
    record = folder_run["records"][item]
    assert record["status"] == "ok" and record["warnings"] == []
    clips = folder_run["out"] / "clips"
    clip = load_clip(clips / f"{item}.npz")
    reference = load_clip(clips / "good.npz")
    assert clip.num_frames == FRAMES
    assert clip.arrays["mfcc"].shape == (FRAMES, 28, 12) and clip.arrays["llf"].shape == (FRAMES, 25)
    # the same speech at another rate gives nearly the same per-frame loudness (LLF 0 is RMS);
    # 8 kHz loses the band above 4 kHz, so only the shape of the envelope is compared
    correlation = np.corrcoef(clip.arrays["llf"][:, 0], reference.arrays["llf"][:, 0])[0, 1]
    assert correlation > 0.95
    decoded = load_audio(folder_run["root"] / f"{item}.mp4")
    assert abs(len(decoded) / 16000 - FRAMES / 25) < 0.1  # resampled to 16 kHz, same duration


# ------------------------------------------------------------------ labelled layouts


def test_unknown_mead_emotion_folder(media, tmp_path):
    frames30 = media.frames_at(30, 36)  # MEAD records at 30 fps
    speech = media.speech_at(48000, 2, 1.2)  # and 48 kHz stereo .m4a
    for emotion in ("happy", "joyful"):
        write_clip(tmp_path / f"raw/M001/video/front/{emotion}/level_2/001.mp4", frames30, 30)
        write_clip(
            tmp_path / f"raw/M001/audio/{emotion}/level_2/001.m4a", None, audio=speech, audio_rate=48000
        )
    summary = prepare_dataset("mead", tmp_path / "raw", tmp_path / "cache", crop_size=CROP)
    records = {r["item"]: r for r in summary["items"]}
    assert records["M001_front_happy_level_2_001"]["status"] == "ok"
    assert records["M001_front_happy_level_2_001"]["source_audio"].endswith("audio/happy/level_2/001.m4a")
    clip = load_clip(tmp_path / "cache/clips/M001_front_happy_level_2_001.npz")
    assert (clip.meta["speaker"], clip.meta["emotion"], clip.meta["level"]) == ("M001", "happy", 2)
    assert clip.num_frames == 30  # 36 frames at 30 fps = 1.2 s = 30 frames at 25 fps
    bad = records["M001_front_joyful_level_2_001"]
    assert bad["status"] == "failed" and "unknown emotion folder 'joyful'" in bad["reason"]
    assert "M001/video/front/joyful/level_2/001.mp4" in bad["reason"]


def test_malformed_crema_d_name(media, tmp_path):
    frames = media.frames[:FRAMES]
    speech = media.speech_at(16000, 1, 1.2)
    for stem in ("1001_DFA_ANG_XX", "1001_DFA_ANGRY_XX"):
        write_clip(tmp_path / f"raw/VideoFlash/{stem}.flv", frames, 25, video_codec="flv")
        write_clip(tmp_path / f"raw/AudioWAV/{stem}.wav", None, audio=speech)
    summary = prepare_dataset("crema_d", tmp_path / "raw", tmp_path / "cache", crop_size=CROP)
    records = {r["item"]: r for r in summary["items"]}
    good = records["1001_DFA_ANG_XX"]
    assert good["status"] == "ok" and good["source_audio"].endswith("AudioWAV/1001_DFA_ANG_XX.wav")
    clip = load_clip(tmp_path / "cache/clips/1001_DFA_ANG_XX.npz")
    assert (clip.meta["speaker"], clip.meta["emotion"], clip.meta["level"]) == ("1001", "angry", 2)
    bad = records["1001_DFA_ANGRY_XX"]
    assert bad["status"] == "failed" and "malformed CREMA-D name '1001_DFA_ANGRY_XX'" in bad["reason"]
