"""The synthetic MEAD-layout dataset: layout, determinism, and that its faces and voices carry the
signals the models must learn (MediaPipe re-detection, mouth/voice coupling, emotion and level).

Everything is checked with independent measurements: PyAV decoding, MediaPipe landmarks, librosa's
YIN pitch tracker and plain RMS on the decoded audio.
"""

import json
from pathlib import Path

import av
import librosa
import numpy as np
import pytest

from eapc_lightning.audio.decode import load_audio
from eapc_lightning.cli import main as eapc_main
from eapc_lightning.constants import AUDIO_SAMPLE_RATE, LEFT_EYE, RIGHT_EYE, VIDEO_FPS
from eapc_lightning.synth import SYNTH_PRESETS, generate_dataset
from eapc_lightning.synth.generator import ClipSpec, make_clip

SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // VIDEO_FPS
MOUTH = slice(48, 68)
# Tolerance for MediaPipe's re-detected mouth vs the generator's targets, in pixels of the
# 256x256 video frame (the frame is already face-centred at the canonical scale, so no alignment).
MOUTH_TOLERANCE_PX = 3.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synth_tiny")
    return out, generate_dataset(out, preset="tiny", seed=0, workers=1)


def _decode_video(path) -> tuple[list[np.ndarray], dict]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": float(stream.average_rate),
            "size": (stream.codec_context.width, stream.codec_context.height),
            "audio_streams": len(container.streams.audio),
        }
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return frames, info


def _frame_rms(samples: np.ndarray, num_frames: int) -> np.ndarray:
    usable = samples[: num_frames * SAMPLES_PER_FRAME]
    return np.sqrt(np.mean(usable.reshape(num_frames, SAMPLES_PER_FRAME) ** 2, axis=1))


def _median_f0(samples: np.ndarray) -> float:
    """Median YIN F0 over the voiced, loud frames."""
    f0 = librosa.yin(samples, fmin=60, fmax=600, sr=AUDIO_SAMPLE_RATE, frame_length=1024, hop_length=160)
    rms = librosa.feature.rms(y=samples, frame_length=1024, hop_length=160)[0][: len(f0)]
    return float(np.median(f0[rms > 0.4 * rms.max()]))


def _face_features(landmarks: np.ndarray) -> dict[str, float]:
    """Mean brow height above the eyes and mouth-corner height relative to the lip centre line,
    both in units of the inter-ocular distance (positive = up)."""
    right_eye = landmarks[:, list(RIGHT_EYE)].mean(axis=1)
    left_eye = landmarks[:, list(LEFT_EYE)].mean(axis=1)
    unit = np.linalg.norm(left_eye - right_eye, axis=-1)
    eyes_y = (right_eye[:, 1] + left_eye[:, 1]) / 2
    brow = (eyes_y - landmarks[:, 17:27, 1].mean(axis=1)) / unit
    lip_centre_y = landmarks[:, [51, 57, 62, 66], 1].mean(axis=1)
    corners = (lip_centre_y - landmarks[:, [48, 54], 1].mean(axis=1)) / unit
    return {"brow": float(brow.mean()), "corner": float(corners.mean())}


def test_tiny_preset_layout_and_formats(tiny):
    out, records = tiny
    settings = SYNTH_PRESETS["tiny"]
    expected = settings.speakers * len(settings.emotions) * len(settings.levels) * settings.clips_per_cell
    assert len(records) == expected == 4
    assert {r["status"] for r in records} == {"generated"}
    assert {r["speaker"] for r in records} == {"M101", "W102"}
    assert len(list(out.glob("*/video/front/*/level_*/*.mp4"))) == expected
    assert len(list(out.glob("*/audio/*/level_*/*.m4a"))) == expected
    assert len(list(out.glob("*/landmarks/front/*/level_*/*.npy"))) == expected
    assert not list(out.rglob("*.tmp"))
    for record in records:
        cell = f"{record['emotion']}/level_{record['level']}/{record['clip']}"
        assert record["video"] == str(out / record["speaker"] / "video/front" / f"{cell}.mp4")
        assert record["audio"] == str(out / record["speaker"] / "audio" / f"{cell}.m4a")
        landmarks = np.load(record["landmarks"])
        assert landmarks.dtype == np.float32 and landmarks.shape[1:] == (68, 2)
        frames, info = _decode_video(record["video"])
        assert info == {
            "codec": "h264",
            "pix_fmt": "yuv420p",
            "fps": 25.0,
            "size": (256, 256),
            "audio_streams": 0,
        }
        assert len(frames) == len(landmarks) == record["num_frames"]
        with av.open(record["audio"]) as container:
            stream = container.streams.audio[0]
            assert (stream.codec_context.name, stream.rate, stream.codec_context.channels) == (
                "aac",
                16000,
                1,
            )
        audio = load_audio(record["audio"])
        assert abs(len(audio) - len(landmarks) * SAMPLES_PER_FRAME) < 2048  # AAC pads the last packet
    info = json.loads((out / "synth_info.json").read_text())
    assert info["seed"] == 0 and info["preset"] == "tiny" and len(info["clips"]) == expected
    assert info["clips"][0]["video"] == "M101/video/front/angry/level_3/001.mp4"


def test_rerun_skips_complete_clips_and_repairs_interrupted_ones(tiny, tmp_path):
    out, records = tiny
    again = generate_dataset(out, preset="tiny", seed=0)
    assert [r["status"] for r in again] == ["skipped"] * len(records)
    # simulate an interrupted run: one clip lost its video, a temporary file was left behind
    victim = Path(records[1]["video"])
    landmarks_before = Path(records[1]["landmarks"]).read_bytes()
    victim.unlink()
    leftover = victim.with_name(f".{victim.name}.999.tmp")
    leftover.write_bytes(b"half a file")
    repaired = generate_dataset(out, preset="tiny", seed=0)
    assert [r["status"] for r in repaired] == ["skipped", "generated", "skipped", "skipped"]
    assert victim.is_file() and not leftover.exists()
    assert Path(records[1]["landmarks"]).read_bytes() == landmarks_before


def test_same_seed_is_byte_identical_across_worker_counts(tiny, tmp_path):
    out, records = tiny
    second = generate_dataset(tmp_path / "again", preset="tiny", seed=0, workers=2)
    for first, other in zip(records, second):
        assert Path(first["landmarks"]).read_bytes() == Path(other["landmarks"]).read_bytes()
        np.testing.assert_array_equal(load_audio(first["audio"]), load_audio(other["audio"]))
    changed = generate_dataset(tmp_path / "seed1", preset="tiny", seed=1, speakers=1, emotions=("angry",))
    assert not np.array_equal(np.load(changed[0]["landmarks"]), np.load(records[0]["landmarks"]))


def test_mediapipe_redetects_the_target_mouth(tiny):
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector

    _, records = tiny
    errors = []
    for record in records:
        frames, _ = _decode_video(record["video"])
        with FaceLandmarkDetector(video=True) as detector:
            detected, found = detector.detect_sequence(frames)
        assert found.all(), f"face missed in {record['video']}"
        targets = np.load(record["landmarks"])
        errors.append(np.linalg.norm(detected[:, MOUTH] - targets[:, MOUTH], axis=-1).mean(axis=1))
    mean_error = float(np.concatenate(errors).mean())
    assert mean_error < MOUTH_TOLERANCE_PX, f"mean mouth error {mean_error:.2f} px"


def test_mouth_opening_follows_the_audio_envelope(tiny):
    _, records = tiny
    for record in records:
        targets = np.load(record["landmarks"])
        opening = np.linalg.norm(targets[:, 66] - targets[:, 62], axis=-1)
        rms = _frame_rms(load_audio(record["audio"]), len(targets))
        r = np.corrcoef(opening, rms)[0, 1]
        assert r > 0.5, f"{record['audio']}: r(opening, rms) = {r:.2f}"


def test_emotion_changes_the_voice(tiny):
    _, records = tiny
    by_key = {(r["speaker"], r["emotion"]): r for r in records}
    for speaker in ("M101", "W102"):
        angry = load_audio(by_key[(speaker, "angry")]["audio"])
        sad = load_audio(by_key[(speaker, "sad")]["audio"])
        semitones = 12 * np.log2(_median_f0(angry) / _median_f0(sad))
        assert semitones > 3, f"{speaker}: angry only {semitones:.1f} st above sad"
        assert np.sqrt(np.mean(angry**2)) > 2 * np.sqrt(np.mean(sad**2))


def test_emotion_changes_the_face():
    settings = SYNTH_PRESETS["tiny"]
    features = {
        emotion: _face_features(
            make_clip(ClipSpec(0, emotion, level, 1), settings, 0, render=False).landmarks
        )
        for emotion, level in [("neutral", 1), ("angry", 3), ("happy", 3), ("sad", 3), ("surprised", 3)]
    }
    assert features["surprised"]["brow"] > features["neutral"]["brow"] + 0.05
    assert features["angry"]["brow"] < features["neutral"]["brow"] - 0.03
    assert features["happy"]["corner"] > features["neutral"]["corner"] + 0.03
    assert features["sad"]["corner"] < features["neutral"]["corner"] - 0.03


@pytest.mark.parametrize(
    ("emotion", "feature"), [("surprised", "brow"), ("happy", "corner"), ("sad", "corner")]
)
def test_levels_scale_the_face(emotion, feature):
    settings = SYNTH_PRESETS["tiny"]

    def value(emotion_name, level):
        clip = make_clip(ClipSpec(1, emotion_name, level, 1), settings, 0, render=False)
        return _face_features(clip.landmarks)[feature]

    neutral = value("neutral", 1)
    deviations = [abs(value(emotion, level) - neutral) for level in (1, 2, 3)]
    assert deviations[0] < deviations[1] < deviations[2], deviations


def test_levels_scale_the_voice():
    settings = SYNTH_PRESETS["tiny"]

    def f0(emotion, level):
        return _median_f0(make_clip(ClipSpec(0, emotion, level, 1), settings, 0, render=False).audio)

    neutral = f0("neutral", 1)
    low, high = f0("angry", 1), f0("angry", 3)
    assert abs(np.log2(high / neutral)) > abs(np.log2(low / neutral)) + 1 / 12


@pytest.mark.parametrize("source", ["astronaut", "hopper"])
def test_base_landmarks_table_matches_mediapipe_on_the_photograph(source):
    from eapc_lightning.landmarks.detect import FaceLandmarkDetector
    from eapc_lightning.synth.face import SOURCE_LANDMARKS, source_photo

    with FaceLandmarkDetector(video=False) as detector:
        detected = detector(source_photo(source))
    assert np.abs(detected - SOURCE_LANDMARKS[source]).max() < 1.0


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        generate_dataset(tmp_path, preset="huge")
    with pytest.raises(ValueError, match="unknown synth settings \\['colour'\\]"):
        generate_dataset(tmp_path, preset="tiny", colour=1)
    with pytest.raises(ValueError, match="unknown emotions \\['bored'\\]"):
        generate_dataset(tmp_path, preset="tiny", emotions=("bored",))
    with pytest.raises(ValueError, match="levels"):
        generate_dataset(tmp_path, preset="tiny", levels=(4,))


def test_cli_writes_a_subset_and_summarises(tmp_path, capsys):
    code = eapc_main(
        [
            "synth",
            "--out",
            str(tmp_path),
            "--preset",
            "tiny",
            "--speakers",
            "1",
            "--emotions",
            "neutral,happy",
        ]
        + ["--levels", "2", "--clips-per-cell", "1", "--seconds", "1", "--workers", "1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 clips (2 generated, 0 already complete, 0 failed), 1 speakers (M101)" in printed
    # MEAD has neutral at level_1 only
    assert (tmp_path / "M101/video/front/neutral/level_1/001.mp4").is_file()
    assert (tmp_path / "M101/audio/happy/level_2/001.m4a").is_file()
    assert eapc_main(["synth", "--out", str(tmp_path), "--preset", "tiny", "--emotions", "bored"]) == 2


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def test_warp_mesh_never_folds_at_extreme_poses():
    """The triangulation is fixed per speaker; no pose the generator can produce may flip a triangle."""
    from eapc_lightning.constants import EMOTIONS
    from eapc_lightning.synth.emotion import face_offsets
    from eapc_lightning.synth.face import TRIANGULATION_OPENING, FaceRig, head_matrix
    from eapc_lightning.synth.generator import speaker_profile

    for index in range(6):  # the default preset's speakers, both photographs
        rig = FaceRig(speaker_profile(index, seed=0).identity)
        no_head = head_matrix(0.0, (0.0, 0.0), 1.0, rig.centre)
        half_open = rig.pose(np.zeros((68, 2)), TRIANGULATION_OPENING, 0.0, no_head)
        reference = np.sign(_signed_areas(np.concatenate([half_open, rig.support]), rig.triangles))
        head = head_matrix(3.0, (4.0, -4.0), 1.03, rig.centre)
        support = rig.support @ head[:, :2].T + head[:, 2]
        for emotion in EMOTIONS:
            expression, jaw_bias = face_offsets(emotion, 3)
            for opening in (0.0, 1.3 + jaw_bias):
                for spread in (-1.0, 1.0):
                    targets = rig.pose(expression, opening, spread, head)
                    areas = _signed_areas(np.concatenate([targets, support]), rig.triangles)
                    assert np.all(np.sign(areas) == reference), (index, emotion, opening, spread)
